"""Reads for the links pages: a product's links (both directions) with their publish state,
its link history, the needs-attention list and the publish diff with SKUs. No writes here
(see merchandising/services/links.py). Each function issues a fixed number of queries,
whatever the number of links."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from audit.conflicts import FIRST_VERSION
from catalog.models import Product
from merchandising.models import LINK_LABELS, Link, LinkChange, LinkList, LinkType, PublishedLink
from merchandising.services.links import PUBLISHED_FIELDS, PublishDiff

# The fields whose difference makes a link "waiting for publish" on the product page.
_SHOWN_PUBLISHED_FIELDS = ("target_id", "type", "position", "valid_from", "valid_until")


@dataclass
class LinkGroup:
    """The links of one type, in position order, under a label; ``version``: the list's
    version, which the reorder form sends back (the edit-conflict check)."""

    type: str
    label: str
    links: list[Link] = field(default_factory=list)
    version: int = FIRST_VERSION


def product_lookup(*, query: str, limit: int = 20, exclude_id: int | None = None) -> list[dict[str, str]]:
    """Products whose SKU starts with, or whose name contains, ``query`` (for the target
    autocomplete): SKU matches first."""
    query = query.strip()
    if not query:
        return []
    base = Product.objects.select_related("brand").order_by("sku")
    if exclude_id is not None:
        base = base.exclude(pk=exclude_id)
    by_sku = list(base.filter(sku__istartswith=query)[:limit])
    seen = {product.pk for product in by_sku}
    rest = [] if len(by_sku) >= limit else list(base.filter(name__icontains=query).exclude(pk__in=seen)[:limit])
    products = (by_sku + rest)[:limit]
    return [
        {
            "sku": product.sku,
            "name": product.name,
            "brand": product.brand.name if product.brand_id else "",
            "status": product.status,
        }
        for product in products
    ]


def _published_by_link(link_ids: list[int]) -> dict[int, dict[str, Any]]:
    if not link_ids:
        return {}
    rows = PublishedLink.objects.published().filter(link_id__in=link_ids).order_by()
    return {row["link_id"]: row for row in rows.values("link_id", *_SHOWN_PUBLISHED_FIELDS)}


def _mark_published(links: list[Link]) -> None:
    """Set ``link.is_published``: the webshop sees this link as it is now (same target,
    position and window); False means it waits for the next (batch) publish."""
    published = _published_by_link([link.pk for link in links])
    for link in links:
        row = published.get(link.pk)
        link.is_published = row is not None and all(
            row[name] == getattr(link, name) for name in _SHOWN_PUBLISHED_FIELDS
        )


def product_links(*, product: Product) -> list[LinkGroup]:
    """The product's active links grouped by type (in the order of LinkType), each group in
    position order, under the forward label ("Has accessory"). Types without links are left out."""
    links = list(
        Link.objects.active()
        .filter(source=product)
        .select_related("target__brand", "created_by", "suggestion")
        .order_by("type", "position", "id")
    )
    _mark_published(links)
    groups = _grouped(links, inverse=False)
    versions = dict(LinkList.objects.filter(source=product).values_list("type", "version"))
    for group in groups:
        group.version = versions.get(group.type, FIRST_VERSION)
    return groups


def product_inverse_links(*, product: Product) -> list[LinkGroup]:
    """Active links whose target is the product, under the inverse label ("Accessory of")."""
    links = list(
        Link.objects.active()
        .filter(target=product)
        .select_related("source__brand")
        .order_by("type", "source__sku", "id")
    )
    return _grouped(links, inverse=True)


def _grouped(links: list[Link], *, inverse: bool) -> list[LinkGroup]:
    groups = {
        link_type: LinkGroup(type=link_type, label=LINK_LABELS[link_type][int(inverse)]) for link_type in LinkType
    }
    for link in links:
        groups[link.type].links.append(link)
    return [group for group in groups.values() if group.links]


def product_link_history(*, product: Product) -> QuerySet[LinkChange]:
    """The product's link changes (as the source), newest first; paginate it and pass the
    page to ``history_products`` for the SKUs of reorders."""
    return LinkChange.objects.filter(product=product).select_related("actor", "target").order_by("-created_at", "-id")


def history_rows(changes: list[LinkChange]) -> list[dict[str, Any]]:
    """The history entries with their details made readable (SKUs instead of product ids)."""
    ids: set[int] = set()
    for change in changes:
        details = change.details or {}
        ids.update(pk for pk in details.get("before", []) + details.get("after", []) if isinstance(pk, int))
        if isinstance(details.get("successor"), int):
            ids.add(details["successor"])
    skus = dict(Product.objects.filter(pk__in=ids).values_list("pk", "sku")) if ids else {}
    rows = []
    for change in changes:
        details = change.details or {}
        parts = []
        if "after" in details:
            before = ", ".join(skus.get(pk, f"#{pk}") for pk in details.get("before", []))
            after = ", ".join(skus.get(pk, f"#{pk}") for pk in details["after"])
            parts.append(f"{before} → {after}")
        if "position" in details:
            parts.append(f"at position {details['position']}")
        if details.get("reason"):
            parts.append(f"reason: {details['reason']}")
        if "successor" in details:
            parts.append(f"successor: {skus.get(details['successor'], '#' + str(details['successor']))}")
        rows.append({"change": change, "details": "; ".join(parts)})
    return rows


# --- needs attention ----------------------------------------------------------------------------


def attention_links() -> QuerySet[Link]:
    """Links that need attention (see ``LinkQuerySet.needs_attention``) with what the page
    shows, oldest source first."""
    return (
        Link.objects.needs_attention()
        .select_related("source__brand", "target__brand", "suggestion")
        .order_by("source__sku", "type", "position", "id")
    )


def attach_successors(links: list[Link]) -> None:
    """Set ``link.successor`` (the target's replacement, as ``successor_of`` picks it, or
    None) on each link, in one query."""
    targets = {link.target_id for link in links if getattr(link, "reason_successor", False)}
    successors: dict[int, Product] = {}
    if targets:
        rows = (
            Link.objects.active()
            .filter(source_id__in=targets, type=LinkType.SUCCESSOR)
            .select_related("target")
            .order_by("source_id", "position", "id")
        )
        for row in rows:
            successors.setdefault(row.source_id, row.target)
    for link in links:
        link.successor = successors.get(link.target_id)


# --- publishing ---------------------------------------------------------------------------------


def diff_rows(diff: PublishDiff, *, limit: int = 500) -> dict[str, list[dict[str, Any]]]:
    """The diff's entries per kind with source/target SKUs, type label and positions, for the
    publish page (at most ``limit`` per kind; the counts say how many there are)."""
    ids: set[int] = set()
    for kind in ("added", "removed", "reordered", "changed"):
        for item in getattr(diff, kind)[:limit]:
            row = item.get("new") or item["old"]
            ids.update((row["source_id"], row["target_id"]))
            if item.get("old"):
                ids.add(item["old"]["target_id"])
    skus = dict(Product.objects.filter(pk__in=ids).values_list("pk", "sku")) if ids else {}
    labels = dict(LinkType.choices)
    result: dict[str, list[dict[str, Any]]] = {}
    for kind in ("added", "removed", "reordered", "changed"):
        rows = []
        for item in getattr(diff, kind)[:limit]:
            new, old = item.get("new"), item.get("old")
            row = new or old
            changed_fields = []
            if new and old:
                changed_fields = [name for name in PUBLISHED_FIELDS if name != "source_id" and new[name] != old[name]]
            rows.append(
                {
                    "link_id": item["link_id"],
                    "source_sku": skus.get(row["source_id"], ""),
                    "target_sku": skus.get(row["target_id"], ""),
                    "type": labels.get(row["type"], row["type"]),
                    "old_position": old["position"] if old else None,
                    "new_position": new["position"] if new else None,
                    "changed_fields": ", ".join(name.removesuffix("_id") for name in changed_fields),
                }
            )
        result[kind] = rows
    return result
