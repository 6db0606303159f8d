"""The review queue (/review/): product specialists decide mined suggestions, one at a time
with the keyboard or in bulk; marketing sees the same page read-only.

Every decision is an htmx POST answered with the row's new HTML (decided, or the conflict
"Already approved by X at T" when someone else was first), never a full page reload. Undo,
bulk decisions and exclusion rules change several rows: they answer with a status message
and out-of-band swaps of the rows that the page shows (the ``visible`` ids it sends).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import ADMINISTRATOR, MARKETING, PRODUCT_SPECIALIST
from config.access import role_required
from merchandising.models import (
    REVIEW_REJECT_REASONS,
    Decision,
    ExclusionRule,
    LinkType,
    ReviewPreference,
    Suggestion,
    SuggestionStatus,
)
from merchandising.selectors.review import (
    FILTER_KEYS,
    latest_run_id,
    parse_filters,
    published_links,
    queue_row,
    queue_rows,
    review_queue,
    sample_orders,
)
from merchandising.services import (
    AlreadyDecided,
    ReviewError,
    decision_undo,
    exclusion_rule_create,
    exclusion_rule_preview,
    review_filters_save,
    suggestion_approve,
    suggestion_reject,
    suggestion_snooze,
    suggestions_bulk_decide,
    suggestions_bulk_preview,
)

READERS = (PRODUCT_SPECIALIST, MARKETING, ADMINISTRATOR)
DECIDERS = (PRODUCT_SPECIALIST, ADMINISTRATOR)
#: The link types a suggestion can be approved as (the rest are curated by hand).
APPROVE_TYPES = [LinkType.CROSS_SELL, LinkType.ACCESSORY, LinkType.SPARE_PART, LinkType.SERVICE, LinkType.CONSUMABLE]
#: The exclusions offered from a row (see _exclusion_rule).
EXCLUDE_CHOICES = ("target", "source", "brand", "category_pair")
#: How many ids a bulk action or an out-of-band refresh takes at most.
MAX_IDS = 1000


def _ids(values: list[str]) -> list[int]:
    ids = []
    for value in values[:MAX_IDS]:
        try:
            ids.append(int(value))
        except ValueError:
            continue
    return ids


def _trend_label(row: Suggestion) -> str:
    trend = row.trend
    if trend is None:
        return "new"
    if trend == 0:
        return "="
    return f"{trend:+d}"


def _decorate(rows: list[Suggestion], latest: int | None, published: dict) -> list[Suggestion]:
    """Template helpers on each row: trend label, review state, the source's published links."""
    for row in rows:
        row.trend_label = _trend_label(row)
        row.published_groups = published.get(row.source_id, [])
        if row.status != SuggestionStatus.PENDING:
            row.state = row.status
        elif latest is not None and row.snoozed_run_id == latest:
            row.state = "snoozed"
        else:
            row.state = "pending"
    return rows


def _context(request: HttpRequest, **extra) -> dict:
    return {
        "can_decide": request.user.has_role(*DECIDERS),
        # Rows build their URLs from this prefix: reversing six URLs per row costs ~15 ms a page.
        "review_url": reverse("merchandising:review"),
        "approve_types": [(value, LinkType(value).label) for value in APPROVE_TYPES],
        "reject_reasons": [(key, reason.value, reason.label) for key, reason in enumerate(REVIEW_REJECT_REASONS, 1)],
        **extra,
    }


# --- the page ---------------------------------------------------------------------------------


def _saved_filters(user) -> dict:
    return ReviewPreference.objects.filter(user=user).values_list("filters", flat=True).first() or {}


def _save_filters(user, filters: dict, saved: dict | None = None) -> None:
    if saved is None or saved != filters:
        review_filters_save(user=user, filters=filters)


def _options(choices: list[tuple[int, str]], current: int | None) -> list[tuple[str, str, bool]]:
    return [(str(pk), label, pk == current) for pk, label in choices]


@require_GET
@role_required(*READERS)
def review(request: HttpRequest) -> HttpResponse:
    """The queue. Filters given in the URL are saved for the user; the page opened without
    any shows the saved ones; ``reset`` clears them."""
    if "reset" in request.GET:
        _save_filters(request.user, {})
        return redirect("merchandising:review")
    given = "applied" in request.GET or any(key in request.GET for key in FILTER_KEYS)
    if given:
        filters = parse_filters(request.GET).as_params()
        _save_filters(request.user, filters, _saved_filters(request.user))
    else:
        filters = parse_filters(_saved_filters(request.user)).as_params()
    params = {**filters, "page": request.GET.get("page", ""), "size": request.GET.get("size", "")}
    page = review_queue(request.user, params)
    _decorate(page.rows, page.latest_run, page.published)
    query = "&".join(f"{key}={value}" for key, value in {**filters, "applied": "1"}.items())
    return render(
        request,
        "merchandising/review/queue.html",
        _context(
            request,
            page=page,
            filters=page.filters,
            # Option lists as (value, label, selected) strings: hundreds of brands and
            # categories, rendered without a template lookup and localisation per option.
            brands=_options(page.brands, page.filters.brand),
            categories=_options(page.categories, page.filters.category),
            runs=_options(page.runs, page.filters.run),
            query=query,
            title="Review queue",
            bo_section="review",
        ),
    )


@require_GET
@role_required(*READERS)
def review_sample_orders(request: HttpRequest, pk: int) -> HttpResponse:
    suggestion = Suggestion.objects.filter(pk=pk).first()
    if suggestion is None:
        raise Http404("No such suggestion.")
    return render(
        request, "merchandising/review/_orders.html", {"orders": sample_orders(suggestion), "suggestion": suggestion}
    )


# --- single decisions -------------------------------------------------------------------------


def _row_response(request: HttpRequest, pk: int, **extra) -> HttpResponse:
    row = queue_row(pk)
    if row is None:
        return HttpResponse(
            f'<li class="review-row review-row--gone" id="s-{pk}" tabindex="-1">This suggestion no longer exists.</li>'
        )
    _decorate([row], latest_run_id(), published_links([row.source_id]))
    context = _context(request, row=row, **extra)
    return render(request, "merchandising/review/_row.html", context)


def _decide(request: HttpRequest, pk: int, action) -> HttpResponse:
    """Run one decision; answer with the row as it is now, a conflict or an error in it."""
    if not request.user.has_role(*DECIDERS):
        raise PermissionDenied("Marketing sees the queue read-only.")
    try:
        outcome = action()
    except AlreadyDecided as exc:
        return _row_response(request, pk, conflict=exc.messages[0])
    except ReviewError as exc:
        return _row_response(request, pk, error=exc.messages[0])
    return _row_response(request, pk, decision=outcome.decision, reverse=outcome.reverse, undo_hint=True)


@require_POST
@role_required(*DECIDERS)
def review_approve(request: HttpRequest, pk: int) -> HttpResponse:
    link_type = request.POST.get("link_type") or LinkType.CROSS_SELL
    return _decide(request, pk, lambda: suggestion_approve(suggestion_id=pk, actor=request.user, link_type=link_type))


@require_POST
@role_required(*DECIDERS)
def review_reject(request: HttpRequest, pk: int) -> HttpResponse:
    reason = request.POST.get("reason", "")
    note = request.POST.get("note", "")
    return _decide(
        request, pk, lambda: suggestion_reject(suggestion_id=pk, actor=request.user, reason=reason, note=note)
    )


@require_POST
@role_required(*DECIDERS)
def review_snooze(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, lambda: suggestion_snooze(suggestion_id=pk, actor=request.user))


@require_POST
@role_required(*DECIDERS)
def review_approve_reverse(request: HttpRequest, pk: int) -> HttpResponse:
    """ "Also approve b -> a": approve the reverse pair (``reverse``) with the same link type;
    answers with the note in the offering row and the reverse row out of band."""
    reverse_id = _ids([request.POST.get("reverse", "")])
    link_type = request.POST.get("link_type") or LinkType.CROSS_SELL
    if not reverse_id:
        return HttpResponse("Nothing to approve.", status=400)
    reverse_id = reverse_id[0]
    try:
        suggestion_approve(suggestion_id=reverse_id, actor=request.user, link_type=link_type)
        message = "Also approved the reverse pair."
    except ReviewError as exc:
        message = exc.messages[0]
    return _multi_response(request, message, [reverse_id], _ids(request.POST.getlist("visible")))


# --- several rows at once: undo, bulk, exclusion rules ----------------------------------------


def _multi_response(
    request: HttpRequest, message: str, changed: list[int], visible: list[int], *, restored: list[int] = ()
) -> HttpResponse:
    """A status message plus the changed rows that the page shows, swapped out of band."""
    shown = [pk for pk in changed if pk in set(visible)]
    rows = queue_rows(shown) if shown else []
    if rows:
        _decorate(rows, latest_run_id(), published_links(row.source_id for row in rows))
    context = _context(request, message=message, rows=rows, restored=list(restored))
    return render(request, "merchandising/review/_status.html", context)


@require_POST
@role_required(*DECIDERS)
def review_undo(request: HttpRequest) -> HttpResponse:
    outcome = decision_undo(actor=request.user)
    if outcome is None:
        return _multi_response(request, "Nothing to undo.", [], [])
    visible = _ids(request.POST.getlist("visible"))
    return _multi_response(request, outcome.message, outcome.suggestions, visible, restored=outcome.suggestions)


def _bulk_action(request: HttpRequest) -> tuple[str, str, str, str]:
    action = request.POST.get("action", "")
    if action not in (Decision.Action.APPROVE, Decision.Action.REJECT):
        raise ReviewError("Bulk decisions are approve or reject.")
    return (
        action,
        request.POST.get("link_type") or LinkType.CROSS_SELL,
        request.POST.get("reason", ""),
        (request.POST.get("note", "")),
    )


@require_POST
@role_required(*DECIDERS)
def review_bulk_preview(request: HttpRequest) -> HttpResponse:
    ids = _ids(request.POST.getlist("ids"))
    try:
        action, link_type, reason, note = _bulk_action(request)
    except ReviewError as exc:
        return render(request, "merchandising/review/_bulk.html", {"error": exc.messages[0]})
    if not ids:
        return render(request, "merchandising/review/_bulk.html", {"error": "Select suggestions first (x on a row)."})
    preview = suggestions_bulk_preview(suggestion_ids=ids)
    reason_label = dict((r.value, r.label) for r in REVIEW_REJECT_REASONS).get(reason, "")
    return render(
        request,
        "merchandising/review/_bulk.html",
        {
            "preview": preview,
            "ids": ids,
            "action": action,
            "link_type": link_type,
            "link_type_label": LinkType(link_type).label if link_type in LinkType.values else link_type,
            "reason": reason,
            "reason_label": reason_label,
            "note": note,
        },
    )


@require_POST
@role_required(*DECIDERS)
def review_bulk(request: HttpRequest) -> HttpResponse:
    ids = _ids(request.POST.getlist("ids"))
    try:
        action, link_type, reason, note = _bulk_action(request)
        outcome = suggestions_bulk_decide(
            suggestion_ids=ids, action=action, actor=request.user, link_type=link_type, reason=reason, note=note
        )
    except ReviewError as exc:
        return _multi_response(request, exc.messages[0], [], [])
    verb = "Approved" if action == Decision.Action.APPROVE else "Rejected"
    message = f"{verb} {len(outcome.decided)} suggestion{'s' if len(outcome.decided) != 1 else ''}"
    if outcome.skipped:
        message += f"; {len(outcome.skipped)} skipped (decided meanwhile)"
    message += ". Undo (u) undoes the whole batch."
    return _multi_response(request, message, ids, _ids(request.POST.getlist("visible")))


def _exclusion_rule(suggestion: Suggestion, kind: str, reason: str) -> ExclusionRule:
    """The unsaved rule a row's exclude dialog describes."""
    if kind == "target":
        return ExclusionRule(kind=ExclusionRule.Kind.PRODUCT, product_id=suggestion.target_id, reason=reason)
    if kind == "source":
        return ExclusionRule(kind=ExclusionRule.Kind.PRODUCT, product_id=suggestion.source_id, reason=reason)
    if kind == "brand" and suggestion.target.brand_id:
        return ExclusionRule(kind=ExclusionRule.Kind.BRAND, brand_id=suggestion.target.brand_id, reason=reason)
    if kind == "category_pair" and suggestion.source.category_id and suggestion.target.category_id:
        return ExclusionRule(
            kind=ExclusionRule.Kind.CATEGORY_PAIR,
            category=suggestion.source.category,
            other_category=suggestion.target.category,
            reason=reason,
        )
    raise ReviewError("Pick what to exclude.")


def _exclusion_suggestion(pk: int) -> Suggestion:
    suggestion = (
        Suggestion.objects.select_related("source__brand", "source__category", "target__brand", "target__category")
        .filter(pk=pk)
        .first()
    )
    if suggestion is None:
        raise Http404("No such suggestion.")
    return suggestion


@require_http_methods(["GET", "POST"])
@role_required(*DECIDERS)
def review_exclude(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the exclude dialog for a row (with the preview count of the first choice);
    POST: save the rule, which rejects every pending suggestion it covers."""
    suggestion = _exclusion_suggestion(pk)
    if request.method == "GET":
        kind = "target"
        count = exclusion_rule_preview(rule=_exclusion_rule(suggestion, kind, ""))
        return render(
            request,
            "merchandising/review/_exclude.html",
            {"suggestion": suggestion, "kind": kind, "count": count},
        )
    try:
        rule = _exclusion_rule(suggestion, request.POST.get("kind", ""), request.POST.get("reason", "").strip())
        outcome = exclusion_rule_create(rule=rule, actor=request.user)
    except ReviewError as exc:
        return _multi_response(request, exc.messages[0], [], [])
    noun = "suggestion" if outcome.rejected == 1 else "suggestions"
    message = f"Exclusion saved ({rule.get_kind_display().lower()}): {outcome.rejected} pending {noun} rejected."
    visible = _ids(request.POST.getlist("visible"))
    rejected = list(
        Suggestion.objects.filter(pk__in=visible).exclude(status=SuggestionStatus.PENDING).values_list("pk", flat=True)
    )
    return _multi_response(request, message, rejected, visible)


@require_POST
@role_required(*DECIDERS)
def review_exclude_preview(request: HttpRequest, pk: int) -> HttpResponse:
    suggestion = _exclusion_suggestion(pk)
    try:
        count = exclusion_rule_preview(rule=_exclusion_rule(suggestion, request.POST.get("kind", ""), ""))
    except ReviewError as exc:
        return HttpResponse(exc.messages[0])
    return render(request, "merchandising/review/_exclude_count.html", {"count": count})


urlpatterns = [
    path("", review, name="review"),
    path("undo/", review_undo, name="review_undo"),
    path("bulk/preview/", review_bulk_preview, name="review_bulk_preview"),
    path("bulk/", review_bulk, name="review_bulk"),
    path("<int:pk>/approve/", review_approve, name="review_approve"),
    path("<int:pk>/approve-reverse/", review_approve_reverse, name="review_approve_reverse"),
    path("<int:pk>/reject/", review_reject, name="review_reject"),
    path("<int:pk>/snooze/", review_snooze, name="review_snooze"),
    path("<int:pk>/exclude/", review_exclude, name="review_exclude"),
    path("<int:pk>/exclude/preview/", review_exclude_preview, name="review_exclude_preview"),
    path("<int:pk>/orders/", review_sample_orders, name="review_orders"),
]
