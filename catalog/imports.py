"""Products CSV import: validate the whole file first, then apply all of it or nothing.

The file is streamed twice (validate, then apply) instead of being held in memory: what is
kept between the passes is each SKU's line number and the variant rows' base SKUs, a few
dozen bytes per row. The apply pass works in chunks of rows, with one query to load the
chunk's existing products and one upsert (INSERT .. ON CONFLICT via bulk_create); rows whose
base product changes get it in a last step, once every row of the file exists, so the order
of rows in the file does not matter and the one-level-base trigger never sees a half state.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.conflicts import version_bump
from audit.models import AuditEntry, Via
from audit.services import actor_parts, audit_record_many, created_changes, via_for
from catalog import csv_format as fmt
from catalog.models import (
    SKU_VALIDATOR,
    AttributeDefinition,
    Brand,
    Category,
    ChangeSource,
    Product,
    ProductChange,
)

CHUNK_SIZE = 2000
#: The audit trail's write path for each catalog history source.
AUDIT_VIA = {
    ChangeSource.ADMIN: Via.FORM,
    ChangeSource.IMPORT: Via.IMPORT,
    ChangeSource.BULK_ACTION: Via.BULK,
    ChangeSource.COMMAND: Via.COMMAND,
    ChangeSource.DEMO: Via.COMMAND,
}
#: Who a catalog change is recorded as when no user made it.
_COMMAND_ACTORS = {ChangeSource.COMMAND: "command:import_products", ChangeSource.DEMO: "command:seed_demo"}


def audit_actor(actor, source: str):
    """The user, else the command that wrote (import_products, seed_demo), else the system."""
    return actor if actor is not None else _COMMAND_ACTORS.get(source)


SAMPLE_SIZE = 100
# Fields an import writes; created_at and sku never change on an existing row.
UPSERT_FIELDS = [
    "name",
    "brand",
    "category",
    "description",
    "unit_price",
    "currency",
    "pack_quantity",
    "unit",
    "base",
    "status",
    "exclude_from_recommendations",
    "attributes",
    "updated_at",
]
MAX_LENGTHS = {"sku": 64, "name": 255, "brand": 100, "unit": 20}


@dataclass
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportResult:
    """What an import found and did (or, for a dry run, would do)."""

    dry_run: bool = False
    applied: bool = False
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    new_brands: list[str] = field(default_factory=list)
    new_categories: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportResult:
        data = dict(data)
        data["errors"] = [RowError(**error) for error in data.get("errors", [])]
        return cls(**data)


@dataclass
class _Header:
    columns: list[str]
    index: dict[str, int]
    attributes: dict[str, AttributeDefinition]  # column name -> definition

    def has(self, column: str) -> bool:
        return column in self.index


def _decoded_lines(source: IO[bytes], bad_lines: set[int]) -> Iterator[str]:
    """The file's lines as text. A line that is not UTF-8 is remembered (and replaced) so the
    row it belongs to can be reported with its number; UTF-8 never has a newline byte inside
    a character, so splitting the bytes on newlines first is safe."""
    for number, raw in enumerate(source, start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            bad_lines.add(number)
            yield raw.decode("utf-8", "replace")


def _records(source: IO[bytes]) -> Iterator[tuple[int, list[str], bool]]:
    """(line number where the record starts, cells, whether it had bad encoding)."""
    source.seek(0)
    bad_lines: set[int] = set()
    reader = csv.reader(_decoded_lines(source, bad_lines), strict=True)
    last_line = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _FileError(RowError(last_line + 1, f"cannot be read as CSV: {exc}")) from None
        start, last_line = last_line + 1, reader.line_num
        bad = any(number in bad_lines for number in range(start, last_line + 1))
        yield start, cells, bad


class _FileError(Exception):
    def __init__(self, error: RowError):
        self.error = error


def _read_header(cells: list[str], bad: bool, errors: list[RowError]) -> _Header | None:
    if bad:
        errors.append(RowError(1, "bad encoding: the file is not UTF-8 text (save it as CSV UTF-8)"))
        return None
    columns = [cell.strip() for cell in cells]
    index: dict[str, int] = {}
    attribute_columns = []
    for position, column in enumerate(columns):
        if column in index:
            errors.append(RowError(1, f"column {column!r} appears twice"))
        index[column] = position
        if column.startswith(fmt.ATTRIBUTE_PREFIX):
            attribute_columns.append(column)
        elif column not in fmt.REQUIRED_COLUMNS and column not in fmt.OPTIONAL_COLUMNS:
            errors.append(RowError(1, f"unknown column {column!r}"))
    missing = [column for column in fmt.REQUIRED_COLUMNS if column not in index]
    if missing:
        errors.append(RowError(1, f"missing required columns: {', '.join(missing)}"))
    codes = [column[len(fmt.ATTRIBUTE_PREFIX) :] for column in attribute_columns]
    definitions = AttributeDefinition.objects.in_bulk(codes, field_name="code")
    for column, code in zip(attribute_columns, codes, strict=True):
        if code not in definitions:
            errors.append(RowError(1, f"unknown attribute {code!r} in column {column!r}"))
    if errors:
        return None
    return _Header(
        columns=columns,
        index=index,
        attributes={column: definitions[code] for column, code in zip(attribute_columns, codes, strict=True)},
    )


def _parse_row(header: _Header, cells: list[str]) -> dict[str, Any]:
    """Typed values of one row, for the columns the file has; raise CellError on the first
    bad cell of the row."""

    def cell(column: str) -> str:
        return fmt.unescape_formula(cells[header.index[column]]).strip()

    row: dict[str, Any] = {}
    sku = cell("sku")
    if not sku:
        raise fmt.CellError("sku is empty")
    for column, limit in MAX_LENGTHS.items():
        if len(cell(column)) > limit:
            raise fmt.CellError(f"{column} is longer than {limit} characters")
    try:
        SKU_VALIDATOR(sku)
    except Exception:  # noqa: BLE001 - Django's ValidationError; the message is ours
        raise fmt.CellError(fmt.sku_problem(sku) or f"sku {sku!r} is not a valid SKU") from None
    row["sku"] = sku
    row["name"] = cell("name")
    if not row["name"]:
        raise fmt.CellError("name is empty")
    row["brand"] = cell("brand")
    row["category"] = fmt.parse_category_path(cell("category"))
    row["unit_price"] = fmt.parse_price(cell("unit_price"))
    row["pack_quantity"] = fmt.parse_pack_quantity(cell("pack_quantity"))
    row["unit"] = cell("unit")
    if not row["unit"]:
        raise fmt.CellError("unit is empty (e.g. pcs, box, m, kg, l)")
    row["status"] = fmt.parse_status(cell("status"))
    if header.has("base_sku"):
        row["base_sku"] = cell("base_sku")
        if row["base_sku"] == sku:
            raise fmt.CellError(f"base_sku {sku!r} is the product itself")
    if header.has("description"):
        # Descriptions keep their inner layout; only the formula escape is undone.
        row["description"] = fmt.unescape_formula(cells[header.index["description"]])
    if header.has("exclude_from_recommendations"):
        row["exclude_from_recommendations"] = fmt.parse_bool(
            cell("exclude_from_recommendations"), "exclude_from_recommendations"
        )
    attributes: dict[str, Any] = {}
    for column, definition in header.attributes.items():
        value = cell(column)
        attributes[definition.code] = None if value == "" else fmt.parse_attribute(definition, value)
    row["attributes"] = attributes
    return row


class _Lookups:
    """Brands and categories by case-insensitive name/path, loaded once (they are few)."""

    def __init__(self) -> None:
        self.brands = {name.lower(): (pk, name) for pk, name in Brand.objects.values_list("id", "name")}
        self.categories = {path.lower(): (pk, path) for pk, path in Category.objects.values_list("id", "path")}

    def brand_name(self, name: str) -> str:
        return self.brands.get(name.lower(), (None, name))[1] if name else ""

    def category_path(self, parts: tuple[str, ...]) -> str:
        """The canonical path: existing levels keep their spelling."""
        canonical: list[str] = []
        for depth in range(1, len(parts) + 1):
            text = fmt.category_path_text(parts[:depth])
            existing = self.categories.get(text.lower())
            canonical.append(existing[1].split(" > ")[-1] if existing else parts[depth - 1])
        return fmt.category_path_text(tuple(canonical))


def _validate(source: IO[bytes], result: ImportResult) -> tuple[_Header | None, dict]:
    """Pass 1: every row checked, every problem reported with its line number."""
    errors = result.errors
    records = _records(source)
    try:
        first = next(records, None)
    except _FileError as exc:
        errors.append(exc.error)
        return None, {}
    if first is None:
        errors.append(RowError(1, "the file is empty (expected a header row)"))
        return None, {}
    header = _read_header(first[1], first[2], errors)
    if header is None:
        return None, {}

    first_line: dict[str, int] = {}  # sku -> line, for duplicates and as "the file's SKUs"
    variant_base: dict[str, str] = {}  # variant sku -> base sku (rows with a base_sku)
    brands: dict[str, str] = {}
    categories: dict[tuple[str, ...], None] = {}
    try:
        for line, cells, bad in records:
            if not cells or all(not c.strip() for c in cells):
                continue  # blank line
            result.rows += 1
            if bad:
                errors.append(RowError(line, "bad encoding: this row is not UTF-8 text"))
                continue
            if len(cells) != len(header.columns):
                errors.append(RowError(line, f"has {len(cells)} cells, the header has {len(header.columns)}"))
                continue
            try:
                row = _parse_row(header, cells)
            except fmt.CellError as exc:
                errors.append(RowError(line, str(exc)))
                continue
            sku = row["sku"]
            if sku in first_line:
                errors.append(RowError(line, f"duplicate SKU {sku!r} (first on line {first_line[sku]})"))
                continue
            first_line[sku] = line
            if row.get("base_sku"):
                variant_base[sku] = row["base_sku"]
            if row["brand"]:
                brands.setdefault(row["brand"].lower(), row["brand"])
            if row["category"]:
                categories[row["category"]] = None
    except _FileError as exc:
        errors.append(exc.error)
        return None, {}
    if header.has("base_sku"):
        _validate_bases(header, first_line, variant_base, errors)
    errors.sort(key=lambda error: error.line)
    return header, {"brands": brands, "categories": categories}


def _validate_bases(
    header: _Header, first_line: dict[str, int], variant_base: dict[str, str], errors: list[RowError]
) -> None:
    """Base products must exist and not be variants, after the import (file rows win over
    the database); a product that keeps variants cannot become one."""
    referenced = set(variant_base.values())
    outside = sorted(referenced - first_line.keys())
    in_db: dict[str, int | None] = {}
    for start in range(0, len(outside), CHUNK_SIZE):
        chunk = outside[start : start + CHUNK_SIZE]
        in_db.update(Product.objects.filter(sku__in=chunk).values_list("sku", "base_id"))
    # Database products outside the file that stay variants of a product in the file.
    kept_variants: dict[str, str] = {}
    file_skus = sorted(first_line)
    for start in range(0, len(file_skus), CHUNK_SIZE):
        chunk = file_skus[start : start + CHUNK_SIZE]
        # Ids first, then the indexed base_id: a join on base__sku made PostgreSQL scan the table per chunk.
        ids = dict(Product.objects.filter(sku__in=chunk).values_list("id", "sku"))
        for variant_sku, base_id in Product.objects.filter(base_id__in=list(ids)).values_list("sku", "base_id"):
            if variant_sku not in first_line:
                kept_variants.setdefault(ids[base_id], variant_sku)
    file_variant_of: dict[str, str] = {}
    for variant_sku, base_sku in variant_base.items():
        file_variant_of.setdefault(base_sku, variant_sku)

    for sku, base_sku in variant_base.items():
        line = first_line[sku]
        if base_sku in first_line:
            if base_sku in variant_base:
                errors.append(
                    RowError(line, f"base_sku {base_sku!r} is itself a pack variant (line {first_line[base_sku]})")
                )
        elif base_sku not in in_db:
            errors.append(RowError(line, f"base_sku {base_sku!r} does not exist"))
        elif in_db[base_sku] is not None:
            errors.append(RowError(line, f"base_sku {base_sku!r} is itself a pack variant"))
        if sku in file_variant_of:
            other = file_variant_of[sku]
            errors.append(
                RowError(
                    line,
                    f"{sku!r} has pack variants ({other!r}, line {first_line[other]}) so it cannot be a variant itself",
                )
            )
        elif sku in kept_variants:
            errors.append(
                RowError(line, f"{sku!r} has pack variants ({kept_variants[sku]!r}) so it cannot be a variant itself")
            )


def _category_values(category: Category) -> dict[str, Any]:
    return {"name": category.name, "parent": category.parent_id, "path": category.path}


def _ensure_brands_and_categories(
    found: dict, lookups: _Lookups, result: ImportResult, dry_run: bool, *, actor=None, change_source: str = ""
) -> None:
    """List (and unless dry-running, create) the brands and categories the file names that do not exist."""
    new_brands = sorted(name for key, name in found["brands"].items() if key not in lookups.brands)
    result.new_brands = new_brands
    paths: dict[str, tuple[str, ...]] = {}
    for parts in found["categories"]:
        for depth in range(1, len(parts) + 1):
            prefix = parts[:depth]
            paths.setdefault(fmt.category_path_text(prefix).lower(), prefix)
    missing = sorted((key for key in paths if key not in lookups.categories), key=lambda key: (key.count(">"), key))
    result.new_categories = [lookups.category_path(paths[key]) for key in sorted(missing)]
    if dry_run:
        return
    if new_brands:
        created = Brand.objects.bulk_create([Brand(name=name) for name in new_brands])
        if created and created[0].pk is None:  # a database that returns no ids
            created = list(Brand.objects.filter(name__in=new_brands))
        audit_record_many(
            model=Brand,
            rows=[(brand.pk, brand.name, created_changes({"name": brand.name})) for brand in created],
            action=AuditEntry.Action.CREATE,
            actor=audit_actor(actor, change_source),
            via=AUDIT_VIA[change_source],
        )
    from catalog.services import category_path_for  # local: services import this module

    for key in missing:  # parents first: sorted by depth
        parts = paths[key]
        parent = lookups.categories.get(fmt.category_path_text(parts[:-1]).lower()) if len(parts) > 1 else None
        category = Category(name=parts[-1], parent_id=parent[0] if parent else None)
        category.path = category_path_for(name=category.name, parent_path=parent[1] if parent else None)
        category.save()
        lookups.categories[key] = (category.pk, category.path)
        audit_record_many(
            model=Category,
            rows=[(category.pk, category.path, created_changes(_category_values(category)))],
            action=AuditEntry.Action.CREATE,
            actor=audit_actor(actor, change_source),
            via=AUDIT_VIA[change_source],
        )
    lookups.brands = {name.lower(): (pk, name) for pk, name in Brand.objects.values_list("id", "name")}


def _diff(existing: dict[str, Any] | None, row: dict[str, Any], lookups: _Lookups) -> dict[str, list]:
    """{field: [old, new]} for the columns the file has; [None, new] for a new product."""
    wanted: dict[str, Any] = {
        "name": row["name"],
        "brand": lookups.brand_name(row["brand"]),
        "category": lookups.category_path(row["category"]) if row["category"] else "",
        "unit_price": row["unit_price"],
        "pack_quantity": row["pack_quantity"],
        "unit": row["unit"],
        "status": row["status"],
    }
    for optional in fmt.OPTIONAL_COLUMNS:
        if optional in row:
            wanted[optional] = row[optional]
    old_attributes = existing["attributes"] if existing else {}
    new_attributes = dict(old_attributes)
    for code, value in row["attributes"].items():
        if value is None:
            new_attributes.pop(code, None)
        else:
            new_attributes[code] = value
    wanted["attributes"] = new_attributes
    changes: dict[str, list] = {}
    for name, new in wanted.items():
        old = existing[name] if existing else None
        if existing is None:
            if new not in ("", None, {}, False) or name in ("status", "unit_price", "pack_quantity"):
                changes[name] = [None, fmt.history_value(new)]
        elif old != new:
            changes[name] = [fmt.history_value(old), fmt.history_value(new)]
    return changes


def _chunks(source: IO[bytes], header: _Header) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    records = _records(source)
    next(records)  # header
    for _line, cells, _bad in records:
        if not cells or all(not c.strip() for c in cells):
            continue
        chunk.append(_parse_row(header, cells))
        if len(chunk) >= CHUNK_SIZE:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _apply_chunk(
    rows: list[dict[str, Any]],
    lookups: _Lookups,
    result: ImportResult,
    *,
    dry_run: bool,
    now,
    actor,
    change_source: str,
    reference: str,
    pending_bases: dict[str, str],
    only_new: bool,
) -> None:
    # Plain values, not model instances with three related objects each: loading is most of
    # the time of a re-import (measured: 8.2 s -> 1.5 s per 100k rows on SQLite).
    existing = {
        values["sku"]: values
        for values in Product.objects.filter(sku__in=[row["sku"] for row in rows]).values(
            "id", *EXISTING_FIELDS, "brand__name", "category__path", "base__sku"
        )
    }
    to_write: list[Product] = []
    histories: list[tuple[Product, str, dict]] = []
    for row in rows:
        product = existing.get(row["sku"])
        if product is not None and only_new:
            result.skipped += 1
            continue
        before = _values_for_diff(product) if product else None
        changes = _diff(before, row, lookups)
        action = ProductChange.Action.CREATED if product is None else ProductChange.Action.UPDATED
        if product is not None and not changes:
            result.unchanged += 1
            continue
        if product is None:
            result.created += 1
        else:
            result.updated += 1
        if len(result.sample) < SAMPLE_SIZE:
            result.sample.append({"sku": row["sku"], "action": action.value, "changes": changes})
        if dry_run:
            continue
        target = Product(sku=row["sku"]) if product is None else _unsaved_copy(product)

        _assign(target, row, lookups, changes)
        if "base_sku" in changes:
            # Bases are set in a last pass, once every row of the file exists (see module doc).
            target.base_id = None
            if row["base_sku"]:
                pending_bases[row["sku"]] = row["base_sku"]
        target.updated_at = now
        to_write.append(target)
        histories.append((target, action, changes))
    if dry_run or not to_write:
        return
    Product.objects.bulk_create(
        to_write, update_conflicts=True, unique_fields=["sku"], update_fields=UPSERT_FIELDS, batch_size=500
    )
    ids = {values["sku"]: values["id"] for values in existing.values()}
    # The upsert leaves ``version`` alone (it cannot add one to the stored value); the rows it
    # changed get it raised here, so an edit form opened before the import is refused on save.
    updated_ids = [ids[target.sku] for target in to_write if target.sku in ids]
    if updated_ids:
        Product.objects.filter(pk__in=updated_ids).update(**version_bump())
    missing_ids = [p.sku for p in to_write if p.pk is None and p.sku not in ids]
    if missing_ids:  # databases that do not return ids from an upsert
        ids.update(Product.objects.filter(sku__in=missing_ids).values_list("sku", "id"))
    written = ProductChange.objects.bulk_create(
        [
            ProductChange(
                product_id=target.pk or ids[target.sku],
                sku=target.sku,
                changed_at=now,
                actor=actor,
                source=change_source,
                reference=reference,
                action=action,
                changes=changes,
            )
            for target, action, changes in histories
        ],
        batch_size=1000,
    )
    # Both supported databases return the new ids from a bulk insert (SQLite 3.35+, PostgreSQL).
    _audit_chunk([change.pk for change in written], actor=actor, change_source=change_source, reference=reference)


def _audit_chunk(change_ids: list[int], *, actor, change_source: str, reference: str) -> None:
    """The chunk's audit rows, one per product written, with the same diff: copied in the
    database from the ProductChange rows just written (INSERT ... SELECT, 500 ids a
    statement): building them as model instances made a big import much slower (the figures
    are in benchmarks/README.md)."""
    user, label = actor_parts(audit_actor(actor, change_source))
    via = via_for(label=label, user=user, via=AUDIT_VIA[change_source])
    quote = connection.ops.quote_name
    json_param = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    head = (
        f"INSERT INTO {quote(AuditEntry._meta.db_table)} (content_type_id, object_pk, object_id, object_repr, "
        "action, changes_text, changes, timestamp, additional_data, actor_id, actor_label, via) "
        f"SELECT %s, CAST(product_id AS TEXT), product_id, sku, CASE action WHEN %s THEN %s ELSE %s END, '', "
        f"changes, changed_at, {json_param}, actor_id, %s, %s FROM {quote(ProductChange._meta.db_table)} "
    )
    fixed = [
        ContentType.objects.get_for_model(Product).pk,
        ProductChange.Action.CREATED,
        AuditEntry.Action.CREATE,
        AuditEntry.Action.UPDATE,
        json.dumps({"reference": reference}) if reference else None,
        label,
        via,
    ]
    with connection.cursor() as cursor:
        for start in range(0, len(change_ids), 500):
            part = change_ids[start : start + 500]
            where = f"WHERE id IN ({', '.join(['%s'] * len(part))}) ORDER BY id"
            cursor.execute(head + where, [*fixed, *part])


EXISTING_FIELDS = [f.attname for f in Product._meta.concrete_fields if f.attname not in ("id", "version")]


def _values_for_diff(values: dict[str, Any]) -> dict[str, Any]:
    """The shape of csv_format.product_values, from a .values() row."""
    return {
        "sku": values["sku"],
        "name": values["name"],
        "brand": values["brand__name"] or "",
        "category": values["category__path"] or "",
        "unit_price": values["unit_price"],
        "pack_quantity": values["pack_quantity"],
        "unit": values["unit"],
        "status": values["status"],
        "base_sku": values["base__sku"] or "",
        "description": values["description"],
        "exclude_from_recommendations": values["exclude_from_recommendations"],
        "attributes": dict(values["attributes"] or {}),
    }


def _unsaved_copy(values: dict[str, Any]) -> Product:
    """A new Product carrying an existing row's values, for the upsert (no pk: the upsert
    matches on sku)."""
    return Product(**{name: values[name] for name in EXISTING_FIELDS})


def _assign(target: Product, row: dict[str, Any], lookups: _Lookups, changes: dict) -> None:
    target.name = row["name"]
    target.brand_id = lookups.brands[row["brand"].lower()][0] if row["brand"] else None
    target.category_id = (
        lookups.categories[fmt.category_path_text(row["category"]).lower()][0] if row["category"] else None
    )
    target.unit_price = row["unit_price"]
    target.pack_quantity = row["pack_quantity"]
    target.unit = row["unit"]
    target.status = row["status"]
    if "description" in row:
        target.description = row["description"]
    if "exclude_from_recommendations" in row:
        target.exclude_from_recommendations = row["exclude_from_recommendations"]
    if "attributes" in changes:
        target.attributes = changes["attributes"][1]


def _apply_bases(pending_bases: dict[str, str]) -> None:
    """Set the base products of the variant rows whose base changed.

    A parametrised UPDATE run with executemany rather than bulk_update: bulk_update builds a
    CASE WHEN with one branch per row, measured at 9-10 s per 45k variants on SQLite against
    1.7 s for this (psycopg 3 pipelines executemany on PostgreSQL).
    """
    table = connection.ops.quote_name(Product._meta.db_table)
    statement = f"UPDATE {table} SET base_id = (SELECT b.id FROM {table} b WHERE b.sku = %s) WHERE sku = %s"
    with connection.cursor() as cursor:
        cursor.executemany(statement, [(base_sku, sku) for sku, base_sku in sorted(pending_bases.items())])


def products_import(
    *,
    source: IO[bytes],
    actor=None,
    dry_run: bool = False,
    change_source: str = ChangeSource.IMPORT,
    reference: str = "",
    only_new: bool = False,
) -> ImportResult:
    """Import a products CSV (docs/catalog.md). Nothing is written if any row is bad or on a
    dry run; re-importing the same file changes nothing. ``source`` is a seekable binary file.
    With ``only_new``, rows whose SKU exists are skipped (counted in ``skipped``), not updated."""
    result = ImportResult(dry_run=dry_run)
    header, found = _validate(source, result)
    if header is None or result.errors:
        return result
    lookups = _Lookups()
    now = timezone.now()
    pending_bases: dict[str, str] = {}
    try:
        with transaction.atomic():
            _ensure_brands_and_categories(found, lookups, result, dry_run, actor=actor, change_source=change_source)
            for rows in _chunks(source, header):
                _apply_chunk(
                    rows,
                    lookups,
                    result,
                    dry_run=dry_run,
                    now=now,
                    actor=actor,
                    change_source=change_source,
                    reference=reference,
                    pending_bases=pending_bases,
                    only_new=only_new,
                )
            if not dry_run:
                _apply_bases(pending_bases)
    except DatabaseError as exc:
        # Validation passed but the database refused (e.g. a concurrent edit): nothing was kept.
        result.errors.append(RowError(0, f"the database refused the import, nothing was written: {exc}"))
        result.created = result.updated = result.unchanged = 0
        return result
    result.applied = not dry_run
    return result
