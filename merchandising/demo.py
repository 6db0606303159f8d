"""Demo review state for ``seed_demo``: a few decisions, published links, manual links and a
successor, so that the review queue, the links pages, "needs attention" and the dashboard
show something right after ``make run``. Everything goes through the services, as a
specialist would do it; idempotent (nothing happens once any decision or link exists)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from catalog.models import Product, ProductStatus
from merchandising.models import Decision, Link, LinkType, RejectReason, Suggestion, SuggestionStatus
from merchandising.services import link_add, suggestion_approve, suggestion_reject

APPROVALS = 30  # best-scored pending suggestions of the planted anchors
REJECTIONS = 8
MANUAL_LINKS = 10
REJECT_CYCLE = [RejectReason.UNRELATED, RejectReason.WRONG_BRAND, RejectReason.COMPETITOR, RejectReason.INCOMPATIBLE]
APPROVE_CYCLE = [LinkType.CROSS_SELL, LinkType.CROSS_SELL, LinkType.ACCESSORY, LinkType.CONSUMABLE]


def demo_review_seed(*, anchors: list[str]) -> dict[str, Any]:
    """Decide some suggestions of the planted ``anchors`` (SKUs) and add some manual links."""
    if Decision.objects.exists() or Link.objects.exists():
        return {"approved": 0, "rejected": 0, "manual_links": 0}
    actor = get_user_model().objects.filter(username="specialist").first()
    pending = Suggestion.objects.pending_review().select_related("source", "target").order_by("-score", "id")
    approved = rejected = 0
    for suggestion in pending.filter(source__sku__in=anchors)[:APPROVALS]:
        link_type = APPROVE_CYCLE[approved % len(APPROVE_CYCLE)]
        suggestion_approve(suggestion_id=suggestion.pk, actor=actor, link_type=link_type)
        approved += 1
    # Low-lift pairs of bestsellers: what a specialist rejects first.
    for suggestion in Suggestion.objects.filter(status=SuggestionStatus.PENDING, stale=False).order_by("lift", "id")[
        :REJECTIONS
    ]:
        reason = REJECT_CYCLE[rejected % len(REJECT_CYCLE)]
        suggestion_reject(suggestion_id=suggestion.pk, actor=actor, reason=reason)
        rejected += 1
    # Manual links: a service and a spare part for some active products of the demo catalog,
    # and a successor for a discontinued product linked from elsewhere (so it needs attention).
    active = list(Product.objects.filter(status=ProductStatus.ACTIVE, base__isnull=True).order_by("sku")[:40])
    manual = 0
    for source, target in zip(active[0:MANUAL_LINKS], active[MANUAL_LINKS : 2 * MANUAL_LINKS], strict=True):
        link_type = LinkType.SERVICE if manual % 2 else LinkType.SPARE_PART
        link_add(source=source, target=target, link_type=link_type, actor=actor)
        manual += 1
    discontinued = Product.objects.filter(status=ProductStatus.DISCONTINUED, base__isnull=True).order_by("sku").first()
    if discontinued is not None and len(active) >= 2 * MANUAL_LINKS + 2:
        replacement = active[2 * MANUAL_LINKS]
        link_add(source=discontinued, target=replacement, link_type=LinkType.SUCCESSOR, actor=actor)
        link_add(source=active[2 * MANUAL_LINKS + 1], target=discontinued, link_type=LinkType.ACCESSORY, actor=actor)
        manual += 2
    return {"approved": approved, "rejected": rejected, "manual_links": manual}
