"""The webshop preview: for a product (and optionally a customer account, a touchpoint and a
limit), the exact JSON body the webshop gets from GET /api/v1/products/{sku}/recommendations/
and a rendering of it, for the current publish and, when publishing in batches, for the next
one (what the Publish button would make it).

Read only; every back-office role may use it. The JSON shown is built by the API's own
selector (``merchandising.selectors.api``), not re-created here, so it is the webshop's body
exactly (pretty-printed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_GET

from catalog.models import Product
from config.access import role_required
from merchandising.api.tokens import TOUCHPOINTS
from merchandising.models import LINK_LABELS, LinkType, PublishState
from merchandising.selectors.api import (
    BadParameter,
    ProductNotFound,
    recommendations_build,
    recommendations_build_next,
    recommendations_request,
)
from merchandising.services import publish_diff

TOUCHPOINT_LABELS = {
    "product_page": "Product page",
    "cart": "Cart",
    "checkout": "Checkout",
    "category_page": "Category page",
}


class PreviewForm(forms.Form):
    sku = forms.CharField(
        label="Product SKU", max_length=64, help_text="Type a SKU or part of a name and pick from the list."
    )
    account = forms.CharField(
        label="Customer account",
        max_length=64,
        required=False,
        help_text="Optional: the account id; its brand preferences apply. An unknown id gets the generic answer.",
    )
    touchpoint = forms.ChoiceField(
        label="Touchpoint",
        choices=[(value, TOUCHPOINT_LABELS.get(value, value)) for value in TOUCHPOINTS],
        initial="product_page",
        required=False,
    )
    limit = forms.IntegerField(
        label="Limit per type",
        min_value=1,
        max_value=settings.API_MAX_LIMIT,
        required=False,
        help_text=f"Empty = the API's default ({settings.API_DEFAULT_LIMIT}).",
    )

    def clean_sku(self) -> str:
        return self.cleaned_data["sku"].strip()

    def clean_account(self) -> str | None:
        return self.cleaned_data["account"].strip() or None

    def clean_touchpoint(self) -> str:
        return self.cleaned_data["touchpoint"] or "product_page"


@dataclass
class Shown:
    """One side of the page: a body, its pretty-printed JSON and its cards."""

    title: str
    payload: dict[str, Any]
    json: str
    groups: list[dict[str, Any]]


def _groups(payload: dict[str, Any], other: dict[str, Any] | None = None, *, new_label: str = "") -> list[dict]:
    """The body's link types in the body's order, each with a label and its items; an item
    not in ``other`` (same type) is flagged with ``new_label``."""
    other_skus = {
        link_type: {item["sku"] for item in items} for link_type, items in ((other or {}).get("links") or {}).items()
    }
    groups = []
    for link_type, items in payload["links"].items():
        label = LINK_LABELS.get(link_type, (link_type,))[0]
        type_label = LinkType(link_type).label if link_type in LinkType.values else link_type
        rows = []
        for item in items:
            flag = ""
            if other is not None and item["sku"] not in other_skus.get(link_type, set()):
                flag = new_label
            rows.append({"item": item, "flag": flag})
        groups.append({"type": link_type, "label": label, "type_label": type_label, "rows": rows})
    return groups


def _pretty(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False)


def _difference_count(current: dict[str, Any], upcoming: dict[str, Any]) -> int:
    """Items of the two bodies that differ (added, removed, moved or changed), tokens and the
    generation aside: what a person reading the two sides would see change."""

    def keyed(payload: dict[str, Any]) -> dict[tuple[str, str], dict]:
        return {
            (link_type, item["sku"]): {key: value for key, value in item.items() if key != "token"}
            for link_type, items in payload["links"].items()
            for item in items
        }

    before, after = keyed(current), keyed(upcoming)
    return sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def _api_path(data: dict[str, Any]) -> str:
    params = {"touchpoint": data["touchpoint"]}
    if data.get("account"):
        params["account"] = data["account"]
    if data.get("limit"):
        params["limit"] = data["limit"]
    return reverse("api:recommendations", args=[data["sku"]]) + "?" + urlencode(params)


@require_GET
@role_required()
def preview(request: HttpRequest) -> HttpResponse:
    form = PreviewForm(request.GET or None)
    state = PublishState.load()
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "is_nav_sidebar_enabled": False,
        "bo_section": "preview",
        "title": "Webshop preview",
        "form": form,
        "state": state,
        "lookup_url": reverse("merchandising:product_lookup"),
    }
    status = 200
    if form.is_bound and not form.is_valid():
        status = 400
    elif form.is_bound:
        data = form.cleaned_data
        params = {
            "sku": data["sku"],
            "account": data["account"],
            "touchpoint": data["touchpoint"],
            "limit": data["limit"],
        }
        try:
            # recommendations_payload() in two steps, so that both sides share one resolved
            # request (the same product, account rules and day).
            resolved = recommendations_request(**params)
        except ProductNotFound:
            context["error"] = f"No product has the SKU “{data['sku']}”. Check the SKU or pick one from the list."
            status = 404
        except BadParameter as exc:
            context["error"] = str(exc)
            status = 400
        else:
            current = recommendations_build(resolved)
            upcoming = recommendations_build_next(resolved) if state.batch_mode else None
            product = Product.objects.select_related("brand").filter(sku=data["sku"]).first()
            sides = [
                Shown(
                    title=f"Current publish (generation {current['generation']})",
                    payload=current,
                    json=_pretty(current),
                    groups=_groups(current, upcoming, new_label="leaves at the next publish"),
                )
            ]
            if upcoming is not None:
                sides.append(
                    Shown(
                        title="Next publish (what Publish would make it)",
                        payload=upcoming,
                        json=_pretty(upcoming),
                        groups=_groups(upcoming, current, new_label="new at the next publish"),
                    )
                )
                waiting = publish_diff(sources=[product.pk]).counts
                context.update(
                    differences=_difference_count(current, upcoming),
                    waiting=waiting,
                    waiting_total=sum(waiting.values()),
                )
            context.update(product=product, sides=sides, api_path=_api_path(params), params=params)
    return render(request, "merchandising/preview/preview.html", context, status=status)


urlpatterns = [
    path("", preview, name="preview"),
]
