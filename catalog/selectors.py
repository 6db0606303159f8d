"""Reads of the catalog that pages and commands share."""

from __future__ import annotations

from django.db.models import Count, Q

from catalog.models import Brand, Category, Product, ProductImport, ProductStatus


def catalog_overview() -> dict:
    """Counts for the front page, in a constant number of queries."""
    counts = Product.objects.aggregate(
        total=Count("id"),
        active=Count("id", filter=Q(status=ProductStatus.ACTIVE)),
        draft=Count("id", filter=Q(status=ProductStatus.DRAFT)),
        discontinued=Count("id", filter=Q(status=ProductStatus.DISCONTINUED)),
        excluded=Count("id", filter=Q(exclude_from_recommendations=True)),
        variants=Count("id", filter=Q(base__isnull=False)),
        uncategorised=Count("id", filter=Q(category__isnull=True)),
    )
    counts["brands"] = Brand.objects.count()
    counts["categories"] = Category.objects.count()
    counts["recent_imports"] = list(ProductImport.objects.select_related("created_by").defer("content")[:5])
    return counts
