"""Every write to the catalog goes through these functions, so the admin, imports, bulk
actions and commands behave alike and all leave a change history."""

from __future__ import annotations

import io
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.conflicts import VersionedModel, version_bump, version_claim
from audit.models import AuditEntry
from audit.services import (
    audit_record,
    audit_record_many,
    created_changes,
    deleted_changes,
    instance_values,
    values_diff,
)
from catalog import csv_format as fmt
from catalog.imports import AUDIT_VIA, ImportResult, audit_actor, products_import
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
    "attribute_definition_save",
    "attribute_definitions_delete",
    "brand_save",
    "brands_delete",
    "categories_delete",
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


def _save_audited(
    *, obj, actor, via: str | None, fields=None, expected_version: int | None = None
) -> None:
    """full_clean, the version check of a versioned model (``expected_version``: the version
    the edit form loaded; see audit.conflicts), save, and a history row with what changed."""
    creating = obj.pk is None
    stored = None if creating else type(obj).objects.select_for_update().get(pk=obj.pk)
    before = {} if creating else instance_values(stored, fields)
    obj.full_clean()
    if not creating and instance_values(stored) == instance_values(obj):
        return  # an unchanged form saved: nothing written, no version raised (see product_save)
    if not creating and isinstance(obj, VersionedModel):
        version_claim(obj=obj, expected_version=expected_version)
    obj.save()
    changes = values_diff(before, instance_values(obj, fields))
    if changes:
        action = AuditEntry.Action.CREATE if creating else AuditEntry.Action.UPDATE
        audit_record(obj=obj, action=action, actor=actor, via=via, changes=changes)


def _delete_audited(*, queryset: QuerySet, actor, via: str | None) -> int:
    """Delete with a history row per object holding its last values (PROTECT refuses the
    whole deletion, history rows included, when something still points at one)."""
    doomed = list(queryset.select_for_update())
    audit_record_many(
        model=queryset.model,
        rows=[(obj.pk, str(obj), deleted_changes(instance_values(obj))) for obj in doomed],
        action=AuditEntry.Action.DELETE,
        actor=actor,
        via=via,
    )
    queryset.model.objects.filter(pk__in=[obj.pk for obj in doomed]).delete()
    return len(doomed)


@transaction.atomic
def brand_save(*, brand: Brand, actor, expected_version: int | None = None, via: str | None = None) -> Brand:
    """Create or update a brand. ``expected_version``: the version the edit form loaded; if the
    brand was saved since, EditConflict (audit.conflicts) and nothing is written."""
    _save_audited(obj=brand, actor=actor, via=via, fields=["name"], expected_version=expected_version)
    return brand


@transaction.atomic
def brands_delete(*, brands: QuerySet[Brand], actor, via: str | None = None) -> int:
    return _delete_audited(queryset=brands, actor=actor, via=via)


@transaction.atomic
def attribute_definition_save(*, definition: AttributeDefinition, actor, via: str | None = None) -> AttributeDefinition:
    _save_audited(obj=definition, actor=actor, via=via)
    return definition


@transaction.atomic
def attribute_definitions_delete(*, definitions: QuerySet[AttributeDefinition], actor, via: str | None = None) -> int:
    return _delete_audited(queryset=definitions, actor=actor, via=via)


@transaction.atomic
def categories_delete(*, categories: QuerySet[Category], actor, via: str | None = None) -> int:
    return _delete_audited(queryset=categories, actor=actor, via=via)


CATEGORY_AUDITED = ("name", "parent", "path")


@transaction.atomic
def category_save(
    *, category: Category, actor=None, expected_version: int | None = None, via: str | None = None
) -> Category:
    """Save a category and keep the paths of it and everything below it right.
    ``expected_version`` as for ``brand_save``."""
    parent = Category.objects.get(pk=category.parent_id) if category.parent_id else None
    category_check_parent(category=category, parent=parent)
    parent_path = parent.path if parent else None
    category.path = category_path_for(name=category.name, parent_path=parent_path)
    _save_audited(obj=category, actor=actor, via=via, fields=CATEGORY_AUDITED, expected_version=expected_version)
    moved = _refresh_descendant_paths(category)
    audit_record_many(
        model=Category,
        rows=[(pk, new, {"path": [old, new]}) for pk, old, new in moved],
        action=AuditEntry.Action.UPDATE,
        actor=actor,
        via=via,
    )
    return category


def _refresh_descendant_paths(category: Category) -> list[tuple[int, str, str]]:
    """Set the paths below ``category``; returns (id, old path, new path) of those that moved."""
    moved, changed = [], []
    for child in Category.objects.filter(parent=category):
        path = category_path_for(name=child.name, parent_path=category.path)
        if path != child.path:  # an unchanged path leaves the child and everything below it as it is
            moved.append((child.pk, child.path, path))
            child.path = path
            child.version = version_bump()["version"]  # an open form of the child shows the old path
            changed.append(child)
    Category.objects.bulk_update(changed, ["path", "version"])
    for child in changed:
        moved += _refresh_descendant_paths(child)
    return moved


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
        stored = Product.objects.select_for_update(of=("self",)).get(pk=product.pk)
        if instance_values(stored) == instance_values(product):
            # An unchanged form saved: nothing to write, and no version raised (that would
            # refuse everyone else's open form for a change that did not happen).
            return product
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
        audit_record(
            obj=product,
            action=AuditEntry.Action.CREATE if before is None else AuditEntry.Action.UPDATE,
            actor=audit_actor(actor, source),
            via=AUDIT_VIA[source],
            changes=changes,
            object_repr=product.sku,
            extra={"reference": reference} if reference else None,
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
    rows = [
        (
            product.pk,
            product.sku,
            ProductChange.Action.DELETED,
            {k: [fmt.history_value(v), None] for k, v in fmt.product_values(product).items() if k != "sku"},
        )
        for product in doomed
    ]
    _record(products_changes=rows, actor=actor, source=source, when=now)
    audit_record_many(
        model=Product,
        rows=[(pk, sku, changes) for pk, sku, _action, changes in rows],
        action=AuditEntry.Action.DELETE,
        actor=audit_actor(actor, source),
        via=AUDIT_VIA[source],
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
        rows = [
            (pk, sku, ProductChange.Action.UPDATED, {field: [fmt.history_value(old), fmt.history_value(value)]})
            for pk, sku, old in changing
        ]
        _record(products_changes=rows, actor=actor, source=source, reference=reference, when=now)
        audit_record_many(
            model=Product,
            rows=[(pk, sku, changes) for pk, sku, _action, changes in rows],
            action=AuditEntry.Action.UPDATE,
            actor=audit_actor(actor, source),
            via=AUDIT_VIA[source],
            extra={"reference": reference} if reference else None,
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
    with transaction.atomic():
        upload = ProductImport.objects.create(
            file_name=file_name[:255],
            content=content,
            created_by=actor,
            status=ProductImport.Status.PREVIEWED if result.ok else ProductImport.Status.REJECTED,
            summary=result.to_dict(),
        )
        audit_record(
            obj=upload,
            action=AuditEntry.Action.CREATE,
            actor=actor,
            via=AUDIT_VIA[ChangeSource.IMPORT],
            changes=created_changes({"file_name": upload.file_name, "status": upload.status}),
            extra=_import_counts(result),
        )
    return upload


def _import_counts(result: ImportResult) -> dict[str, int]:
    return {
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "errors": len(result.errors),
    }


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
    with transaction.atomic():
        if result.ok:
            ProductImport.objects.filter(pk=product_import.pk).update(summary=result.to_dict())
        else:
            ProductImport.objects.filter(pk=product_import.pk).update(
                status=ProductImport.Status.REJECTED, summary=result.to_dict()
            )
        new_status = ProductImport.Status.APPLIED if result.ok else ProductImport.Status.REJECTED
        audit_record(
            obj=product_import,
            action=AuditEntry.Action.UPDATE,
            actor=actor,
            via=AUDIT_VIA[ChangeSource.IMPORT],
            changes={"status": [ProductImport.Status.PREVIEWED, new_status]},
            extra=_import_counts(result),
        )
    return result


class ImportAlreadyHandled(Exception):
    pass
