"""Every write to the catalog goes through these functions, so the admin, imports, bulk
actions and commands behave alike and all leave a change history."""

from __future__ import annotations

import io
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.conflicts import version_bump, version_claim
from catalog import csv_format as fmt
from catalog.imports import ImportResult, products_import
from catalog.models import (
    CATEGORY_SEPARATOR,
    AttributeDefinition,
    Brand,
    Category,
    ChangeSource,
    Product,
    ProductChange,
    ProductImport,
    ProductStatus,
)

__all__ = [
    "brand_save",
    "category_path_for",
    "category_save",
    "product_save",
    "products_set_status",
    "products_set_excluded",
    "products_import",
    "products_delete",
    "product_import_preview",
    "product_import_apply",
]


def category_path_for(*, name: str, parent_path: str | None) -> str:
    return f"{parent_path}{CATEGORY_SEPARATOR}{name}" if parent_path else name


def category_check_parent(*, category: Category, parent: Category | None) -> None:
    """Raise ValidationError if ``parent`` is the category itself or one of its descendants."""
    ancestor = parent
    while ancestor is not None and category.pk is not None:
        if ancestor.pk == category.pk:
            raise ValidationError({"parent": "A category cannot be placed below itself or its own sub-categories."})
        ancestor = ancestor.parent


@transaction.atomic
def brand_save(*, brand: Brand, actor=None, expected_version: int | None = None) -> Brand:
    """Create or update a brand. ``expected_version``: the version the edit form loaded; if the
    brand was saved since, EditConflict (audit.conflicts) and nothing is written."""
    brand.full_clean()
    if brand.pk is not None:
        version_claim(obj=brand, expected_version=expected_version)
    brand.save()
    return brand


@transaction.atomic
def category_save(*, category: Category, expected_version: int | None = None) -> Category:
    """Save a category and keep the paths of it and everything below it right.
    ``expected_version`` as for ``brand_save``."""
    parent = Category.objects.get(pk=category.parent_id) if category.parent_id else None
    category_check_parent(category=category, parent=parent)
    parent_path = parent.path if parent else None
    category.path = category_path_for(name=category.name, parent_path=parent_path)
    category.full_clean(validate_unique=True)
    if category.pk is not None:
        version_claim(obj=category, expected_version=expected_version)
    category.save()
    _refresh_descendant_paths(category)
    return category


def _refresh_descendant_paths(category: Category) -> None:
    children = list(Category.objects.filter(parent=category))
    for child in children:
        child.path = category_path_for(name=child.name, parent_path=category.path)
        child.version = version_bump()["version"]  # an open form of the child is based on the old path
    Category.objects.bulk_update(children, ["path", "version"])
    for child in children:
        _refresh_descendant_paths(child)


def _record(
    *, products_changes: list[tuple[int | None, str, str, dict]], actor, source: str, reference: str = "", when=None
) -> None:
    """Write history rows: (product id, sku, action, {field: [old, new]})."""
    when = when or timezone.now()
    ProductChange.objects.bulk_create(
        [
            ProductChange(
                product_id=product_id,
                sku=sku,
                changed_at=when,
                actor=actor,
                source=source,
                reference=reference,
                action=action,
                changes=changes,
            )
            for product_id, sku, action, changes in products_changes
        ]
    )


def attributes_clean(values: dict[str, Any]) -> dict[str, Any]:
    """Typed attribute values checked against the definitions; raises ValidationError."""
    if not isinstance(values, dict):
        raise ValidationError({"attributes": 'Attributes are an object such as {"length_mm": 40}.'})
    definitions = AttributeDefinition.objects.in_bulk(list(values), field_name="code")
    try:
        return fmt.clean_attributes(values, definitions)
    except fmt.CellError as exc:
        raise ValidationError({"attributes": str(exc)}) from None


@transaction.atomic
def product_save(
    *,
    product: Product,
    actor=None,
    source: str = ChangeSource.ADMIN,
    reference: str = "",
    expected_version: int | None = None,
) -> Product:
    """Create or update one product (validated) and record what changed.

    ``expected_version``: the version the edit form loaded; if the product was saved since
    (by a form, an import, a bulk action), EditConflict (audit.conflicts) and nothing is
    written. None (imports, commands): no check, but the version is raised all the same."""
    product.attributes = attributes_clean(product.attributes or {})
    product.full_clean()
    before = None
    if product.pk is not None:
        version_claim(obj=product, expected_version=expected_version)
        before = fmt.product_values(Product.objects.with_relations().select_for_update(of=("self",)).get(pk=product.pk))
    product.save()
    after = fmt.product_values(Product.objects.with_relations().get(pk=product.pk))
    if before is None:
        changes = {key: [None, fmt.history_value(value)] for key, value in after.items() if key != "sku"}
        action = ProductChange.Action.CREATED
    else:
        changes = {
            key: [fmt.history_value(before[key]), fmt.history_value(value)]
            for key, value in after.items()
            if before[key] != value
        }
        action = ProductChange.Action.UPDATED
    if changes:
        _record(
            products_changes=[(product.pk, product.sku, action, changes)],
            actor=actor,
            source=source,
            reference=reference,
        )
    return product


@transaction.atomic
def products_delete(*, products: QuerySet[Product], actor=None, source: str = ChangeSource.ADMIN) -> int:
    """Delete products, keeping a "deleted" history row with their last values (the history
    survives the product). Products that are the base of variants are refused by the database
    (PROTECT), and so is the whole deletion."""
    doomed = list(products.select_related("brand", "category", "base").select_for_update(of=("self",)))
    if not doomed:
        return 0
    now = timezone.now()
    _record(
        products_changes=[
            (
                product.pk,
                product.sku,
                ProductChange.Action.DELETED,
                {k: [fmt.history_value(v), None] for k, v in fmt.product_values(product).items() if k != "sku"},
            )
            for product in doomed
        ],
        actor=actor,
        source=source,
        when=now,
    )
    Product.objects.filter(pk__in=[product.pk for product in doomed]).delete()
    return len(doomed)


def _bulk_set(*, products: QuerySet[Product], field: str, value: Any, actor, source: str, reference: str) -> int:
    """Set one field on many products, recording history for those that really changed.
    Returns the number changed (rows that already had the value are left alone)."""
    with transaction.atomic():
        changing = list(
            products.exclude(**{field: value}).select_for_update(of=("self",)).values_list("pk", "sku", field)
        )
        if not changing:
            return 0
        now = timezone.now()
        ids = [pk for pk, _sku, _old in changing]
        changed = (
            Product.objects.filter(pk__in=ids)
            .exclude(**{field: value})
            .update(**{field: value, "updated_at": now}, **version_bump())
        )
        _record(
            products_changes=[
                (pk, sku, ProductChange.Action.UPDATED, {field: [fmt.history_value(old), fmt.history_value(value)]})
                for pk, sku, old in changing
            ],
            actor=actor,
            source=source,
            reference=reference,
            when=now,
        )
        return changed


def products_set_status(
    *, products: QuerySet[Product], status: str, actor=None, source: str = ChangeSource.BULK_ACTION, reference: str = ""
) -> int:
    if status not in ProductStatus.values:
        raise ValueError(f"unknown status {status!r}")
    return _bulk_set(products=products, field="status", value=status, actor=actor, source=source, reference=reference)


def products_set_excluded(
    *,
    products: QuerySet[Product],
    excluded: bool,
    actor=None,
    source: str = ChangeSource.BULK_ACTION,
    reference: str = "",
) -> int:
    return _bulk_set(
        products=products,
        field="exclude_from_recommendations",
        value=excluded,
        actor=actor,
        source=source,
        reference=reference,
    )


def product_import_preview(*, file_name: str, content: bytes, actor) -> ProductImport:
    """Keep an uploaded file and its dry-run result until someone confirms it."""
    result = products_import(source=io.BytesIO(content), actor=actor, dry_run=True)
    return ProductImport.objects.create(
        file_name=file_name[:255],
        content=content,
        created_by=actor,
        status=ProductImport.Status.PREVIEWED if result.ok else ProductImport.Status.REJECTED,
        summary=result.to_dict(),
    )


def product_import_apply(*, product_import: ProductImport, actor) -> ImportResult:
    """Apply a previewed upload (validated again: the catalog may have changed meanwhile).

    Only one confirmation wins: the status moves from previewed to applied in a conditional
    update inside the same transaction as the import.
    """
    with transaction.atomic():
        claimed = ProductImport.objects.filter(pk=product_import.pk, status=ProductImport.Status.PREVIEWED).update(
            status=ProductImport.Status.APPLIED, applied_at=timezone.now()
        )
        if not claimed:
            raise ImportAlreadyHandled(f"Import {product_import.pk} was already applied or rejected.")
        content = bytes(ProductImport.objects.values_list("content", flat=True).get(pk=product_import.pk))
        result = products_import(
            source=io.BytesIO(content),
            actor=actor,
            reference=f"import #{product_import.pk} {product_import.file_name}",
        )
        if not result.ok:
            transaction.set_rollback(True)
    if result.ok:
        ProductImport.objects.filter(pk=product_import.pk).update(summary=result.to_dict())
    else:
        ProductImport.objects.filter(pk=product_import.pk).update(
            status=ProductImport.Status.REJECTED, summary=result.to_dict()
        )
    return result


class ImportAlreadyHandled(Exception):
    pass
