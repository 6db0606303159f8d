"""The products CSV format (a fixed interface, see docs/catalog.md): parsing and formatting
of single cells, shared by the import, the export and the change history."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from catalog.models import CATEGORY_SEPARATOR, AttributeDefinition, AttributeType, Product, ProductStatus

REQUIRED_COLUMNS = ("sku", "name", "brand", "category", "unit_price", "pack_quantity", "unit", "status")
OPTIONAL_COLUMNS = ("base_sku", "description", "exclude_from_recommendations")
ATTRIBUTE_PREFIX = "attr:"
EXPORT_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

# Cells starting with these are formulas to a spreadsheet (CSV injection, OWASP): the export
# prefixes them with an apostrophe, the import removes it again.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

MAX_PRICE = Decimal("99999999.9999")
MAX_NUMBER = Decimal("1e15")  # number attributes: beyond this a value is a typo, not a measurement
MAX_CATEGORY_PATH = 500  # Category.path
TRUE_WORDS = {"true", "yes", "1", "y"}
FALSE_WORDS = {"false", "no", "0", "n", ""}


class CellError(ValueError):
    """A cell that cannot be read; the message is shown to the user next to the line number."""


SKU_PUNCTUATION = "._/-"  # what a SKU may hold besides ASCII letters and digits (catalog.models.SKU_VALIDATOR)
_CHARACTER_NAMES = {" ": "the space", "\t": "the tab", "\u00a0": "the no-break space (U+00A0)"}


def _character(char: str) -> str:
    if char in _CHARACTER_NAMES:
        return _CHARACTER_NAMES[char]
    if char.isascii() and char.isprintable():
        return repr(char)
    return f"{char!r} (U+{ord(char):04X})" if char.isprintable() else f"U+{ord(char):04X}"


def sku_problem(sku: str) -> str | None:
    """What is wrong with a SKU that SKU_VALIDATOR refuses, naming exactly the characters to
    replace (ERP codes such as 'BANK CHARGES'); None if it is a valid SKU."""
    bad = dict.fromkeys(char for char in sku if not (char.isascii() and char.isalnum()) and char not in SKU_PUNCTUATION)
    if bad:
        names = [_character(char) for char in bad]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return f"sku {sku!r} may only hold letters, digits and . _ / -: replace {listed}"
    if sku[:1] in tuple(SKU_PUNCTUATION):
        return f"sku {sku!r} must start with a letter or digit, not {sku[0]!r}"
    return None


def escape_formula(value: str) -> str:
    """Prefix formula-like cells with an apostrophe; a cell that already starts with one gets
    another, so that unescape_formula gives every value back exactly."""
    return "'" + value if value.startswith((*FORMULA_PREFIXES, "'")) else value


def unescape_formula(value: str) -> str:
    if value.startswith("'") and value[1:].startswith((*FORMULA_PREFIXES, "'")):
        return value[1:]
    return value


def parse_price(value: str) -> Decimal:
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise CellError(f"unit_price {value!r} is not a number (use a dot as decimal separator, e.g. 12.50)") from None
    if not price.is_finite():
        raise CellError(f"unit_price {value!r} is not a number")
    if price < 0:
        raise CellError(f"unit_price {value} is negative")
    if price > MAX_PRICE:
        raise CellError(f"unit_price {value} is too large (at most {MAX_PRICE})")
    if price.as_tuple().exponent < -4:
        raise CellError(f"unit_price {value} has more than 4 decimals")
    return price


def format_price(price: Decimal) -> str:
    """12.5000 -> "12.50", 0.1250 -> "0.125": at least two decimals, no trailing noise."""
    two = price.quantize(Decimal("0.01"))
    if two == price:
        return f"{two:f}"
    return f"{price.normalize():f}"


def parse_pack_quantity(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CellError(f"pack_quantity {value!r} is not a whole number") from None
    if number < 1:
        raise CellError(f"pack_quantity {number} is below 1")
    if number > 2_147_483_647:
        raise CellError(f"pack_quantity {number} is too large")
    return number


STATUSES = frozenset(ProductStatus.values)


def parse_status(value: str) -> str:
    status = value.strip().lower()
    if status not in STATUSES:
        raise CellError(f"status {value!r} is unknown (use one of: {', '.join(ProductStatus.values)})")
    return status


def parse_bool(value: str, column: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise CellError(f"{column} {value!r} is not true/false")


def format_bool(value: bool) -> str:
    return "true" if value else "false"


def parse_category_path(value: str) -> tuple[str, ...]:
    if not value.strip():
        return ()
    parts = tuple(part.strip() for part in value.split(">"))
    if any(not part for part in parts):
        raise CellError(f"category {value!r} has an empty level (write paths as 'Tools > Drills')")
    if any(len(part) > 100 for part in parts):
        raise CellError(f"category {value!r} has a level longer than 100 characters")
    if len(category_path_text(parts)) > MAX_CATEGORY_PATH:
        raise CellError(f"category path is longer than {MAX_CATEGORY_PATH} characters")
    return parts


def category_path_text(parts: tuple[str, ...]) -> str:
    return CATEGORY_SEPARATOR.join(parts)


def parse_attribute(definition: AttributeDefinition, value: str) -> Any:
    """The typed value of an attribute cell; raise CellError if it does not fit the definition."""
    column = ATTRIBUTE_PREFIX + definition.code
    if definition.type == AttributeType.NUMBER:
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise CellError(f"{column} {value!r} is not a number") from None
        if not number.is_finite():
            raise CellError(f"{column} {value!r} is not a number")
        if abs(number) >= MAX_NUMBER:
            raise CellError(f"{column} {value!r} is too large (at most {MAX_NUMBER:.0e})")
        if number == number.to_integral_value():
            return int(number)
        as_float = float(number)
        if as_float == 0.0 or Decimal(repr(as_float)) != number.normalize():
            raise CellError(f"{column} {value!r} has more precision than a number attribute keeps")
        return as_float
    if definition.type == AttributeType.BOOLEAN:
        return parse_bool(value, column)
    if definition.type == AttributeType.CHOICE and value not in definition.choices:
        raise CellError(f"{column} {value!r} is not one of: {', '.join(definition.choices)}")
    return value


def format_attribute(value: Any) -> str:
    if isinstance(value, bool):
        return format_bool(value)
    return str(value)


def clean_attributes(values: dict, definitions: dict[str, AttributeDefinition]) -> dict:
    """Validate a product's attribute dict against the definitions (for forms and services)."""
    cleaned = {}
    for code, value in values.items():
        definition = definitions.get(code)
        if definition is None:
            raise CellError(f"unknown attribute {code!r}")
        if value is None or value == "":
            continue  # no value: the attribute is not set
        if isinstance(value, bool) or not isinstance(value, str):
            value = format_attribute(value)
        cleaned[code] = parse_attribute(definition, value)
    return cleaned


def product_values(product: Product) -> dict[str, Any]:
    """A product as the CSV sees it: natural keys instead of ids, typed values.

    Needs ``brand``, ``category`` and ``base`` loaded (``Product.objects.with_relations()``).
    """
    return {
        "sku": product.sku,
        "name": product.name,
        "brand": product.brand.name if product.brand_id else "",
        "category": product.category.path if product.category_id else "",
        "unit_price": product.unit_price,
        "pack_quantity": product.pack_quantity,
        "unit": product.unit,
        "status": product.status,
        "base_sku": product.base.sku if product.base_id else "",
        "description": product.description,
        "exclude_from_recommendations": product.exclude_from_recommendations,
        "attributes": dict(product.attributes or {}),
    }


def history_value(value: Any) -> Any:
    """A value as stored in ProductChange.changes (JSON)."""
    if isinstance(value, Decimal):
        return format_price(value)
    return value


def product_row(product: Product, attribute_codes: list[str]) -> list[str]:
    """One export row, formula-escaped, in EXPORT_COLUMNS + attr:<code> order."""
    values = product_values(product)
    cells = [
        values["sku"],
        values["name"],
        values["brand"],
        values["category"],
        format_price(values["unit_price"]),
        str(values["pack_quantity"]),
        values["unit"],
        values["status"],
        values["base_sku"],
        values["description"],
        format_bool(values["exclude_from_recommendations"]),
    ]
    attributes = values["attributes"]
    cells.extend(format_attribute(attributes[code]) if code in attributes else "" for code in attribute_codes)
    return [escape_formula(cell) for cell in cells]
