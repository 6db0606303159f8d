"""Products CSV export: the import's format, so an export re-imports unchanged."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO

from django.db.models import QuerySet

from catalog import csv_format as fmt
from catalog.models import AttributeDefinition, Product


class _Echo:
    """A file-like that hands back what is written, for streaming responses."""

    def write(self, value: str) -> str:
        return value


def export_header() -> tuple[list[str], list[str]]:
    codes = list(AttributeDefinition.objects.order_by("code").values_list("code", flat=True))
    return list(fmt.EXPORT_COLUMNS) + [fmt.ATTRIBUTE_PREFIX + code for code in codes], codes


def products_export_rows(*, queryset: QuerySet[Product]) -> Iterator[list[str]]:
    """Header, then one row per product, streamed from the database in chunks."""
    header, codes = export_header()
    yield header
    products = queryset.select_related("brand", "category", "base").order_by("sku")
    for product in products.iterator(chunk_size=2000):
        yield fmt.product_row(product, codes)


def products_export(*, queryset: QuerySet[Product], out: IO[str]) -> int:
    """Write the CSV to ``out``; returns the number of products written."""
    writer = csv.writer(out, lineterminator="\r\n")
    count = -1
    for count, row in enumerate(products_export_rows(queryset=queryset)):  # noqa: B007
        writer.writerow(row)
    return count


def products_export_stream(*, queryset: QuerySet[Product]) -> Iterator[str]:
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    for row in products_export_rows(queryset=queryset):
        yield writer.writerow(row)
