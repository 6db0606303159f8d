"""Reading an orders CSV (docs/orders.md): the header, the column map, and every row's cells
to typed values. No Django here: the caller passes the time zone for naive times and a sink
for the rows, so this part is plain Python and the same for every database.

Line numbers count physical lines of the file, the header being line 1; a row whose quoted
cell spans several lines is reported at the line where it starts (as the products import does).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import IO, Any

COLUMNS = ("order_id", "account_id", "ordered_at", "sku", "quantity", "unit_price")
MAX_ID_LENGTH = 64  # Order.external_id, CustomerAccount.external_id, Product.sku
MAX_QUANTITY = 2_147_483_647  # OrderLine.quantity (a 32-bit integer column)
MAX_PRICE = Decimal("99999999.9999")  # OrderLine.unit_price: 12 digits, 4 decimals
BAD_ENCODING = "bad encoding: this row is not UTF-8 text (save the file as CSV UTF-8)"

PRICE_CACHE_SIZE = 100_000  # distinct price texts remembered (a catalog has few prices per SKU)
_SURROGATE = re.compile("[\udc80-\udcff]").search


class CellError(ValueError):
    """A cell that cannot be read; the message is shown next to the line number."""


class FileError(Exception):
    """The file cannot be read on (not CSV, not UTF-8 in the header, ...); nothing is imported."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


def parse_column_map(text: str) -> dict[str, str]:
    """``"InvoiceNo=order_id,StockCode=sku"`` -> ``{"InvoiceNo": "order_id", "StockCode": "sku"}``.

    Raises ValueError with a message for the user on a malformed item, a target that is not
    one of COLUMNS, or a source or target named twice."""
    mapping: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        source, equals, target = item.partition("=")
        source, target = source.strip(), target.strip()
        if not equals or not source or not target:
            raise ValueError(f"--map item {item.strip()!r} is not source=target (e.g. InvoiceNo=order_id)")
        if source in mapping:
            raise ValueError(f"--map names column {source!r} twice")
        mapping[source] = target
    check_column_map(mapping)
    return mapping


def check_column_map(mapping: dict[str, str]) -> None:
    unknown = sorted({target for target in mapping.values() if target not in COLUMNS})
    if unknown:
        raise ValueError(
            f"--map target {', '.join(map(repr, unknown))} is not a column of the orders format "
            f"(use one of: {', '.join(COLUMNS)})"
        )
    targets = list(mapping.values())
    twice = sorted({target for target in targets if targets.count(target) > 1})
    if twice:
        raise ValueError(f"--map renames several columns to {', '.join(map(repr, twice))}")


@dataclass
class Header:
    cells: list[str]  # as in the file, for the reject file
    positions: tuple[int, ...]  # where each of COLUMNS is in a row
    ignored: list[str] = field(default_factory=list)  # columns the import does not use

    @property
    def width(self) -> int:
        return len(self.cells)


def read_header(cells: list[str], column_map: dict[str, str]) -> tuple[Header | None, list[str]]:
    """The header, or None and the problems with it (all of them, for line 1)."""
    if any(_SURROGATE(cell) for cell in cells):
        return None, ["bad encoding: the file is not UTF-8 text (save it as CSV UTF-8)"]
    names = [cell.strip() for cell in cells]
    problems = []
    unknown_sources = [source for source in column_map if source not in names]
    if unknown_sources:
        problems.append(
            f"--map names column {', '.join(map(repr, unknown_sources))}, which the file does not have "
            f"(its columns: {', '.join(names)})"
        )
    renamed = [column_map.get(name, name) for name in names]
    seen: set[str] = set()
    for original, name in zip(names, renamed, strict=True):
        if name in COLUMNS and name in seen:
            via = f" (after --map renamed {original!r})" if original != name else ""
            problems.append(f"column {name!r} appears twice{via}")
        seen.add(name)
    missing = [column for column in COLUMNS if column not in seen]
    if missing:
        problems.append(f"missing required columns: {', '.join(missing)}")
    if problems:
        return None, problems
    positions = tuple(renamed.index(column) for column in COLUMNS)
    ignored = [original for original, name in zip(names, renamed, strict=True) if name not in COLUMNS]
    return Header(cells=list(cells), positions=positions, ignored=ignored), []


def text_stream(source: IO[bytes]) -> io.TextIOWrapper:
    """The file as text from its start. Bytes that are not UTF-8 become lone surrogates, so the
    row holding them can be reported instead of the whole file failing; a BOM is dropped."""
    source.seek(0)
    return io.TextIOWrapper(source, encoding="utf-8-sig", errors="surrogateescape", newline="")


def records(text: IO[str]) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, cells); raises FileError where the CSV cannot be read."""
    reader = csv.reader(text, strict=True)
    last = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileError(last + 1, f"cannot be read as CSV: {exc}") from None
        start, last = last + 1, reader.line_num
        yield start, cells


def has_bad_encoding(cells: list[str]) -> bool:
    return any(_SURROGATE(cell) for cell in cells)


def clean_cells(cells: list[str]) -> list[str]:
    """Cells fit for writing as UTF-8 (undecodable bytes become U+FFFD)."""
    return [cell.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for cell in cells]


# Where an order has no customer: the way out is an option of the command (docs/orders.md).
EMPTY_ACCOUNT = "account_id is empty; orders without a customer use --anonymous ACCOUNT_ID"


def _parse_id(value: str, column: str) -> str:
    text = value.strip()
    if not text:
        raise CellError(EMPTY_ACCOUNT if column == "account_id" else f"{column} is empty")
    if _SURROGATE(text):
        raise CellError(BAD_ENCODING)
    if len(text) > MAX_ID_LENGTH:
        raise CellError(f"{column} is longer than {MAX_ID_LENGTH} characters")
    if not text.isprintable():
        bad = next(char for char in text if not char.isprintable())
        raise CellError(f"{column} {text!r} contains an invisible or control character (U+{ord(bad):04X})")
    return text


def parse_account_id(value: str) -> str:
    """An account id as the file's cells are checked (for ``--anonymous``); CellError if not."""
    return _parse_id(value, "account_id")


def parse_codes(text: str) -> frozenset[str]:
    """``"POST, M,BANK CHARGES"`` -> the SKUs, as matched against a row's (stripped) sku cell."""
    return frozenset(code.strip() for code in text.split(",") if code.strip())


def _order_id_or_none(cells: list[str], position: int) -> str | None:
    try:
        return _parse_id(cells[position], "order_id") if position < len(cells) else None
    except CellError:
        return None


def parse_quantity(value: str) -> int:
    """A whole number; 0 and negative numbers are returned as they are (returns)."""
    text = value.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()):
        raise CellError(f"quantity {value!r} is not a whole number")
    number = int(text)
    if number > MAX_QUANTITY:
        raise CellError(f"quantity {number} is too large (at most {MAX_QUANTITY})")
    return number


def parse_price(value: str) -> int:
    """The price in ten-thousandths (12.5 -> 125000): exact integers are staged, compared and
    summed alike on every database; CellError if it is not a price."""
    text = value.strip()
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise CellError(f"unit_price {value!r} is not a number (use a dot as decimal separator, e.g. 12.50)") from None
    if not price.is_finite() or not text.isascii():
        raise CellError(f"unit_price {value!r} is not a number")
    if price < 0:
        raise CellError(f"unit_price {text} is negative")
    if price > MAX_PRICE:
        raise CellError(f"unit_price {text} is too large (at most {MAX_PRICE})")
    scaled = price.scaleb(4)
    if scaled != scaled.to_integral_value():
        raise CellError(f"unit_price {text} has more than 4 decimals")
    return int(scaled)


def parse_ordered_at(value: str, tz: tzinfo) -> datetime:
    """An ISO 8601 date or date and time, in UTC; a time without offset is in ``tz``."""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CellError(
            f"ordered_at {value!r} is not an ISO 8601 date and time (e.g. 2024-03-01T14:30:00 or 2024-03-01 14:30)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise CellError(f"ordered_at {value!r} is out of range") from None


@dataclass
class Counts:
    rows: int = 0
    credit_note_rows: int = 0
    return_rows: int = 0
    non_product_rows: int = 0
    staged_rows: int = 0
    error_rows: int = 0


def parse_rows(
    lines: Iterator[tuple[int, list[str]]],
    header: Header,
    *,
    tz: tzinfo,
    credit_prefix: str,
    moment_value: Callable[[datetime], Any],
    stage: Callable[[tuple], Any],
    reject: Callable[[int, str | None, str], Any],
    end_chunk: Callable[[], Any] | None = None,
    chunk_rows: int = 0,
    anonymous: str | None = None,
    non_products: frozenset[str] = frozenset(),
) -> Counts:
    """Read every row after the header: skipped rows are counted, good ones go to ``stage`` as
    (line, order_id, account_id, ordered_at, sku, quantity, price in ten-thousandths), bad ones
    to ``reject`` as (line, order_id or None, message); a row gets the first problem found in it.

    A row is only read as far as needed to know it is skipped: a credit note's cells after the
    order id, a non-product row's (its sku is one of ``non_products``: postage, fees) other
    cells, and a return line's cells after the quantity, are not checked. An empty account id
    is ``anonymous`` if given (the placeholder account), an error if not.

    With ``end_chunk``, the staged rows are cut into chunks: ``end_chunk`` is called where an
    order id changes once at least ``chunk_rows`` rows were staged since the last cut (so that
    an order's consecutive rows are usually in one chunk), and after 4 x ``chunk_rows`` rows
    in any case (a huge order is cut too: the caller must not hold more than that).

    This loop is the import's hot path, hence the caches: the lines of an order usually follow
    each other and share order id, account and time, which are then checked once, and a
    catalog has few distinct prices."""
    counts = Counts()
    width = header.width
    i_order, i_account, i_at, i_sku, i_quantity, i_price = header.positions
    prices: dict[str, int] = {}
    last_order = last_account = last_at_text = None
    last_order_id = account = ""
    last_credit = False
    last_at_value: Any = None
    rows = staged = credit_notes = returns = non_product_rows = errors = 0
    # Where the next chunk may end (at an order's first row), and where it must.
    cut = chunk_rows if end_chunk else -1
    hard_cut = 4 * chunk_rows if end_chunk else -1
    for line, cells in lines:
        if not cells:
            continue  # an empty line
        order_id = None
        try:
            if len(cells) != width:
                if not any(cell.strip() for cell in cells):
                    continue  # a line of empty cells
                rows += 1
                # The order id is probably still in its place: reject the order with the row.
                order_id = _order_id_or_none(cells, i_order)
                raise CellError(f"has {len(cells)} cells, the header has {width}")
            rows += 1
            text = cells[i_order]
            if text != last_order:
                if not text.strip() and not any(cell.strip() for cell in cells):
                    rows -= 1
                    continue  # a line of empty cells
                last_order_id = _parse_id(text, "order_id")
                last_credit = bool(credit_prefix) and last_order_id.startswith(credit_prefix)
                last_order = text
                if staged >= cut >= 0:
                    end_chunk()
                    cut, hard_cut = staged + chunk_rows, staged + 4 * chunk_rows
            order_id = last_order_id
            if last_credit:
                credit_notes += 1
                continue
            if non_products and cells[i_sku].strip() in non_products:
                non_product_rows += 1
                continue
            text = cells[i_quantity]
            quantity = int(text) if text.isdigit() and text.isascii() and len(text) < 10 else parse_quantity(text)
            if quantity <= 0:
                returns += 1
                continue
            text = cells[i_account]
            if text != last_account:
                account = anonymous if anonymous is not None and not text.strip() else _parse_id(text, "account_id")
                last_account = text
            text = cells[i_at]
            if text != last_at_text:
                last_at_value = moment_value(parse_ordered_at(text, tz))
                last_at_text = text
            sku = cells[i_sku].strip()
            if not sku or len(sku) > MAX_ID_LENGTH or not sku.isprintable():
                sku = _parse_id(sku, "sku")
            text = cells[i_price]
            price = prices.get(text)
            if price is None:
                if len(prices) >= PRICE_CACHE_SIZE:
                    prices.clear()
                price = prices[text] = parse_price(text)
            if staged == hard_cut:
                end_chunk()
                cut, hard_cut = staged + chunk_rows, staged + 4 * chunk_rows
            stage((line, order_id, account, last_at_value, sku, quantity, price))
            staged += 1
        except CellError as exc:
            errors += 1
            used = [cells[position] for position in header.positions if position < len(cells)]
            message = BAD_ENCODING if has_bad_encoding(used) else str(exc)
            reject(line, order_id, message)
            # A failure may leave a cache half set: forget it all.
            last_order = last_account = last_at_text = None
    counts.rows, counts.staged_rows, counts.error_rows = rows, staged, errors
    counts.credit_note_rows, counts.return_rows, counts.non_product_rows = credit_notes, returns, non_product_rows
    return counts
