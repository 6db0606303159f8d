"""The links pages: a product's links (add, reorder, retire; inverse links; history), the
needs-attention list and the publish page. Views parse the request, call a service or a
selector (merchandising/selectors/links.py) and render; every write is a service call.

Everyone with a back-office role sees these pages; product specialists and administrators
change links and publish; only administrators switch batch publishing on or off."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import ADMINISTRATOR, PRODUCT_SPECIALIST
from audit.conflicts import EditConflict
from catalog.models import Product
from config.access import role_required
from merchandising.models import Link, LinkChange, LinkType, PublishEvent, PublishState
from merchandising.selectors import links as selectors
from merchandising.services import (
    PublishConflict,
    link_add,
    link_keep,
    link_replace_by_successor,
    link_retire,
    links_publish,
    links_reorder,
    publish_diff,
    publish_settings_update,
)

EDITORS = (PRODUCT_SPECIALIST, ADMINISTRATOR)
HISTORY_PER_PAGE = 25
ATTENTION_PER_PAGE = 50


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _page_context(request: HttpRequest, **context) -> dict:
    """The admin's page context (site header, user tools) around ours; the admin's app
    sidebar stays off, these pages have the back-office navigation."""
    return {**admin.site.each_context(request), "is_nav_sidebar_enabled": False, **context}


def _can_edit(request: HttpRequest) -> bool:
    return request.user.has_role(*EDITORS)


# --- forms ---------------------------------------------------------------------------------------


class LinkAddForm(forms.Form):
    target = forms.CharField(
        label="Target SKU", max_length=64, help_text="Type a SKU or part of a name and pick from the list."
    )
    type = forms.ChoiceField(label="Type", choices=LinkType.choices, initial=LinkType.CROSS_SELL)
    position = forms.IntegerField(
        label="Position", min_value=1, required=False, help_text="1 = first; empty = at the end."
    )
    valid_from = forms.DateField(label="Valid from", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    valid_until = forms.DateField(label="Valid until", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean_target(self) -> Product:
        sku = self.cleaned_data["target"].strip()
        product = Product.objects.filter(sku=sku).first()
        if product is None:
            raise ValidationError(f"No product with SKU {sku!r}.")
        return product

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("valid_from"), cleaned.get("valid_until")
        if start and end and end < start:
            self.add_error("valid_until", "The window must end on or after its start.")
        return cleaned


class RetireForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False)


# --- product links page ------------------------------------------------------------------------


@require_GET
@role_required()
def product_links(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(Product.objects.select_related("brand"), sku=sku)
    return _render_product_links(request, product, LinkAddForm())


def _render_product_links(
    request: HttpRequest,
    product: Product,
    add_form: LinkAddForm,
    status: int = 200,
    kept_order: tuple[str, list[int]] | None = None,
    conflict: str = "",
):
    """The page; after a refused reorder, ``kept_order`` (type, link ids) shows that list in
    the order the user asked for, on top of the stored list and its current version, with the
    ``conflict`` message next to it."""
    history = Paginator(selectors.product_link_history(product=product), HISTORY_PER_PAGE)
    history_page = history.get_page(request.GET.get("page"))
    state = PublishState.load()
    groups = selectors.product_links(product=product)
    if kept_order is not None:
        _keep_order(groups, *kept_order)
    context = _page_context(
        request,
        bo_section="links",
        title=f"Links of {product.sku}",
        product=product,
        groups=groups,
        conflict_type=kept_order[0] if kept_order else "",
        conflict=conflict,
        inverse_groups=selectors.product_inverse_links(product=product),
        history_page=history_page,
        history_rows=selectors.history_rows(list(history_page.object_list)),
        state=state,
        can_edit=_can_edit(request),
        add_form=add_form,
    )
    return render(request, "merchandising/links/product_links.html", context, status=status)


def _keep_order(groups: list, link_type: str, link_ids: list[int]) -> None:
    """Order the group's links as the user asked; links they did not see go last."""
    rank = {link_id: index for index, link_id in enumerate(link_ids)}
    for group in groups:
        if group.type == link_type:
            group.links.sort(key=lambda link: (rank.get(link.pk, len(rank)), link.position))
            for position, link in enumerate(group.links, start=1):
                link.form_position = position


def _back_to(product: Product) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("merchandising:product_links", args=[product.sku]))


def _published_note(state: PublishState) -> str:
    return " It waits for the next publish (batch mode)." if state.batch_mode else " Published."


@require_POST
@role_required(*EDITORS)
def link_add_view(request: HttpRequest, product_id: int) -> HttpResponse:
    product = get_object_or_404(Product.objects.select_related("brand"), pk=product_id)
    form = LinkAddForm(request.POST)
    if not form.is_valid():
        return _render_product_links(request, product, form, status=400)
    data = form.cleaned_data
    try:
        link = link_add(
            source=product,
            target=data["target"],
            link_type=data["type"],
            actor=request.user,
            position=data["position"],
            valid_from=data["valid_from"],
            valid_until=data["valid_until"],
        )
    except ValidationError as exc:
        form.add_error(None, _error_text(exc))
        return _render_product_links(request, product, form, status=400)
    label = LinkType(link.type).label.lower()
    note = _published_note(PublishState.load())
    messages.success(request, f"Added {link.target.sku} as {label} at position {link.position}.{note}")
    return _back_to(product)


def _new_order(post, link_ids: list[int]) -> list[int]:
    """The order the form asks for: by the position fields; a row whose position was edited
    goes before an unedited row with the same number (so "move to 1" moves it to the top);
    otherwise the rows keep the order they were posted in (the dragged order)."""

    def number(name: str, default: int) -> int:
        try:
            return int(post.get(name, default))
        except (TypeError, ValueError):
            return default

    keyed = []
    for index, link_id in enumerate(link_ids):
        position = number(f"position-{link_id}", index + 1)
        was = number(f"was-{link_id}", position)
        keyed.append((position, 0 if position != was else 1, index, link_id))
    return [item[-1] for item in sorted(keyed)]


def _shown_order(post, link_ids: list[int]) -> list[int]:
    """The order the page showed: by the positions the rows had when it was loaded."""

    def was(link_id: int) -> int:
        try:
            return int(post.get(f"was-{link_id}", 0))
        except (TypeError, ValueError):
            return 0

    return sorted(link_ids, key=was)


@require_POST
@role_required(*EDITORS)
def links_reorder_view(request: HttpRequest, product_id: int) -> HttpResponse:
    product = get_object_or_404(Product, pk=product_id)
    link_type = request.POST.get("type", "")
    try:
        link_ids = [int(value) for value in request.POST.getlist("order")]
    except ValueError:
        link_ids = []
    if link_type not in LinkType.values or not link_ids:
        messages.error(request, "Nothing to reorder: reload the page and try again.")
        return _back_to(product)
    try:
        version = int(request.POST.get("version", ""))
    except ValueError:
        messages.error(request, "The form was incomplete (no version): reload the page and try again.")
        return _back_to(product)
    ordered = _new_order(request.POST, link_ids)
    try:
        links_reorder(
            source=product,
            link_type=link_type,
            link_ids=ordered,
            actor=request.user,
            expected_version=version,
            shown_ids=_shown_order(request.POST, link_ids),
        )
    except EditConflict as conflict:
        # The page showed an older list: show the stored one, in the order this user asked
        # for, with the message; "Save order" then applies it to the stored list.
        product = get_object_or_404(Product.objects.select_related("brand"), pk=product_id)
        return _render_product_links(
            request, product, LinkAddForm(), status=409, kept_order=(link_type, ordered), conflict=conflict.message_text
        )
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return _back_to(product)
    note = _published_note(PublishState.load())
    messages.success(request, f"Saved the order of the {LinkType(link_type).label.lower()} links.{note}")
    return _back_to(product)


@require_POST
@role_required(*EDITORS)
def link_retire_view(request: HttpRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(Link.objects.select_related("source", "target"), pk=pk)
    form = RetireForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        link_retire(link_id=link.pk, actor=request.user, reason=reason)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return _back_to(link.source)
    note = _published_note(PublishState.load())
    messages.success(request, f"Retired the link to {link.target.sku}.{note}")
    return _back_to(link.source)


@require_GET
@role_required()
def product_lookup(request: HttpRequest) -> JsonResponse:
    """The target autocomplete: ?q=part of a SKU or name (&exclude=product id)."""
    try:
        exclude = int(request.GET.get("exclude", ""))
    except ValueError:
        exclude = None
    return JsonResponse({"results": selectors.product_lookup(query=request.GET.get("q", ""), exclude_id=exclude)})


# --- needs attention ---------------------------------------------------------------------------


@require_GET
@role_required()
def attention(request: HttpRequest) -> HttpResponse:
    paginator = Paginator(selectors.attention_links(), ATTENTION_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    links = list(page.object_list)
    selectors.attach_successors(links)
    context = _page_context(
        request,
        bo_section="attention",
        title="Links that need attention",
        page=page,
        links=links,
        count=paginator.count,
        can_edit=_can_edit(request),
    )
    return render(request, "merchandising/links/attention.html", context)


ATTENTION_ACTIONS = ("retire", "keep", "replace")


@require_POST
@role_required(*EDITORS)
def attention_action(request: HttpRequest, pk: int) -> HttpResponse:
    """One click on the needs-attention list: retire, keep or replace by successor. With htmx
    the answer replaces the row (and the count in the heading); without, back to the list."""
    action = request.POST.get("action", "")
    link = get_object_or_404(Link.objects.select_related("source", "target"), pk=pk)
    error = ""
    message = ""
    try:
        if action == "retire":
            reason = request.POST.get("reason", "").strip()[:200] or "needs attention"
            link_retire(link_id=link.pk, actor=request.user, reason=reason, via=LinkChange.Via.ATTENTION)
            message = f"Retired {link.source.sku} → {link.target.sku}."
        elif action == "keep":
            link_keep(link_id=link.pk, actor=request.user)
            message = f"Kept {link.source.sku} → {link.target.sku}."
        elif action == "replace":
            new = link_replace_by_successor(link_id=link.pk, actor=request.user)
            message = f"Replaced {link.source.sku} → {link.target.sku} by {new.target.sku} (position {new.position})."
        else:
            error = "Unknown action."
    except ValidationError as exc:
        error = _error_text(exc)
    if not _is_htmx(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, message)
        return HttpResponseRedirect(reverse("merchandising:attention"))
    context = {
        "link": link,
        "message": message,
        "error": error,
        "count": Link.objects.needs_attention().count(),
    }
    response = render(request, "merchandising/links/_attention_done.html", context)
    # links.js updates the count in the heading from this event (no inline script allowed).
    response["HX-Trigger"] = json.dumps({"attentionCount": context["count"]})
    return response


# --- publishing --------------------------------------------------------------------------------


@require_GET
@role_required()
def publish(request: HttpRequest) -> HttpResponse:
    state = PublishState.load()
    context = _page_context(
        request,
        bo_section="publish",
        title="Publish links",
        state=state,
        events=PublishEvent.objects.select_related("actor").order_by("-generation")[:10],
        can_edit=_can_edit(request),
        is_administrator=request.user.has_role(ADMINISTRATOR),
    )
    if state.batch_mode:
        diff = publish_diff()
        context.update(
            diff=diff,
            counts=diff.counts,
            diff_rows=selectors.diff_rows(diff),
            fingerprint=diff.fingerprint,
        )
    return render(request, "merchandising/links/publish.html", context)


@require_POST
@role_required(*EDITORS)
def publish_apply(request: HttpRequest) -> HttpResponse:
    """The Publish button: publishes the diff the page showed, or nothing. The shown
    generation and diff digest come with the form; if another publish happened, or the
    waiting changes differ from what was shown, nothing is published and the page shows the
    current diff again."""
    back = HttpResponseRedirect(reverse("merchandising:publish"))
    try:
        shown_generation = int(request.POST.get("generation", ""))
    except ValueError:
        messages.error(request, "Reload the page: the form was incomplete.")
        return back
    shown_fingerprint = request.POST.get("fingerprint", "")
    if PublishState.load().batch_mode is False:
        messages.info(request, "Batch publishing is off: changes are published as they are made.")
        return back
    try:
        result = links_publish(
            actor=request.user,
            batch=True,
            expected_generation=shown_generation,
            expected_fingerprint=shown_fingerprint,
        )
    except PublishConflict as exc:
        messages.error(request, exc.messages[0])
        return back
    if result.event is None:
        messages.info(request, "Nothing to publish.")
        return back
    counts = result.counts
    messages.success(
        request,
        f"Published generation {result.generation}: {counts['added']} added, {counts['removed']} removed, "
        f"{counts['reordered']} reordered, {counts['changed']} changed.",
    )
    return back


@require_POST
@role_required(ADMINISTRATOR)
def publish_settings(request: HttpRequest) -> HttpResponse:
    batch_mode = request.POST.get("batch_mode") == "on"
    before = PublishState.load().generation
    state = publish_settings_update(batch_mode=batch_mode, actor=request.user)
    if batch_mode:
        messages.success(request, "Publishing in batches: changes now wait for the Publish button.")
    else:
        published = " (what was waiting is published)" if state.generation != before else ""
        messages.success(request, f"Batch publishing is off: changes are published as they are made{published}.")
    return HttpResponseRedirect(reverse("merchandising:publish"))


urlpatterns = [
    path("products/<path:sku>/links/", product_links, name="product_links"),
    path("links/lookup/", product_lookup, name="product_lookup"),
    path("links/add/<int:product_id>/", link_add_view, name="link_add"),
    path("links/reorder/<int:product_id>/", links_reorder_view, name="links_reorder"),
    path("links/<int:pk>/retire/", link_retire_view, name="link_retire"),
    path("attention/", attention, name="attention"),
    path("attention/<int:pk>/", attention_action, name="attention_action"),
    path("publish/", publish, name="publish"),
    path("publish/apply/", publish_apply, name="publish_apply"),
    path("publish/settings/", publish_settings, name="publish_settings"),
]
