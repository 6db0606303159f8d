"""Reads of the webshop API (/api/v1/): the exact JSON bodies the webshop gets, built from
``PublishedLink.objects.visible()`` only, so nothing unpublished, retired, out of its date
window or of an inactive product can leave through here.

Speed matters (every product page of the webshop calls this): each function issues a fixed
number of queries whatever the number of links, reads rows with ``values()`` and builds plain
dicts. The product answer is split in two steps so that a conditional request is answered
from the cheap first step alone: ``recommendations_request`` (the publish generation, the
catalog version, the source product and the account's brand rules: two queries at most) gives
the ETag; ``recommendations_build`` runs the links query and builds the body.

Account rules (also in docs/api.md): for a known account, a target of an excluded brand is
never shown; with brand mode "only" and at least one preferred brand, only targets of
preferred brands are shown; with "prefer", targets of preferred brands come first and the
order is otherwise kept. An unknown account gets the generic answer.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Q, Value
from django.utils import timezone

from accounts.models import CustomerAccount
from catalog.models import Product, ProductChange
from merchandising.api.tokens import TOUCHPOINTS, tracking_token
from merchandising.models import LinkType, PublishedLink, PublishState, shown_on

#: Raised with any change to the bodies' format, so that cached ETags do not survive a deploy
#: that changes what the same data looks like.
PAYLOAD_VERSION = 1
CART_TOUCHPOINTS = ("cart", "checkout")
_TYPE_ORDER = {value: index for index, value in enumerate(LinkType.values)}

_LINK_FIELDS = (
    "link_id",
    "source_id",
    "source__sku",
    "target_id",
    "target__sku",
    "target__name",
    "target__brand_id",
    "target__brand__name",
    "target__unit_price",
    "target__currency",
    "target__pack_quantity",
    "target__unit",
    "type",
    "position",
    "origin",
    "co_count",
    "confidence",
    "lift",
    "run_number",
    "approved_at",
    "approved_by_role",
)


class ProductNotFound(LookupError):
    """No product has this SKU (the API answers 404)."""


class BadParameter(ValueError):
    """A parameter out of range (the API answers 400); the views validate first, this guards
    the other callers (the back office's webshop preview)."""


# --- small helpers -------------------------------------------------------------------------------


def _iso(value: datetime.datetime | datetime.date | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _price(value: Decimal) -> str:
    """A price as a string (exact, unlike a JSON number), with at least two decimals."""
    text = format(value.normalize(), "f")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def _limit(limit: int | None) -> int:
    if limit is None:
        return settings.API_DEFAULT_LIMIT
    if not 1 <= limit <= settings.API_MAX_LIMIT:
        raise BadParameter(f"limit must be between 1 and {settings.API_MAX_LIMIT}.")
    return limit


def _touchpoint(touchpoint: str, allowed: Iterable[str] = TOUCHPOINTS) -> str:
    allowed = tuple(allowed)
    if touchpoint not in allowed:
        raise BadParameter(f"touchpoint must be one of {', '.join(allowed)}.")
    return touchpoint


# --- account rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRules:
    """A customer account's brand preferences as brand ids."""

    mode: str
    preferred: frozenset[int]
    excluded: frozenset[int]

    @property
    def version(self) -> list:
        return [self.mode, sorted(self.preferred), sorted(self.excluded)]

    def apply(self, rows: list[dict]) -> list[dict]:
        """The rows this account may see, preferred brands first for "prefer" (stable)."""
        rows = [row for row in rows if row["target__brand_id"] not in self.excluded]
        if not self.preferred:
            return rows
        if self.mode == CustomerAccount.BrandMode.ONLY:
            return [row for row in rows if row["target__brand_id"] in self.preferred]
        return sorted(rows, key=lambda row: row["target__brand_id"] not in self.preferred)


def account_rules(external_id: str | None) -> AccountRules | None:
    """The brand rules of the account with this id; None for no account, an unknown one, the
    placeholder of orders without a customer, or one whose preferences change nothing (all
    get the generic answer). One query."""
    if not external_id:
        return None
    accounts = CustomerAccount.objects.customers().filter(external_id=external_id).order_by()
    preferred = accounts.annotate(kind=Value("p")).values_list("brand_mode", "kind", "preferred_brands")
    excluded = accounts.annotate(kind=Value("e")).values_list("brand_mode", "kind", "excluded_brands")
    rows = list(preferred.union(excluded, all=True))
    if not rows:
        return None
    brands: dict[str, set[int]] = {"p": set(), "e": set()}
    for _mode, kind, brand_id in rows:
        if brand_id is not None:
            brands[kind].add(brand_id)
    if not brands["p"] and not brands["e"]:
        return None
    return AccountRules(mode=rows[0][0], preferred=frozenset(brands["p"]), excluded=frozenset(brands["e"]))


# --- the publish head: generation, catalog version, source product --------------------------------


@dataclass(frozen=True)
class PublishHead:
    generation: int
    #: Changes with any product change (status, name, price, deletion): these change answers
    #: without a new publish generation.
    catalog_version: list
    source_id: int | None = None


def aware_utc(value) -> datetime.datetime | None:
    """A datetime read by raw SQL as the ORM would give it: aware, in UTC (SQLite returns text
    and naive values, PostgreSQL aware ones)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if timezone.is_naive(value):
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


_head_sql: dict[tuple[str, bool], str] = {}


def _publish_head_sql(vendor: str, with_sku: bool) -> str:
    """The head query, composed once per process: a fixed statement costs no ORM compilation
    (which was a third of a cached answer's CPU). Same result as the ORM form
    ``PublishState.objects.filter(pk=1).annotate(Subquery(...))``: the latest product change,
    the latest product update, the source product's id."""
    key = (vendor, with_sku)
    if key not in _head_sql:
        quote = connection.ops.quote_name
        state, change, product = (quote(model._meta.db_table) for model in (PublishState, ProductChange, Product))
        sku_column = quote(Product._meta.get_field("sku").column)
        updated_column = quote(Product._meta.get_field("updated_at").column)
        source = f", (SELECT id FROM {product} WHERE {sku_column} = %s LIMIT 1)" if with_sku else ""
        _head_sql[key] = (
            f"SELECT {quote(PublishState._meta.get_field('generation').column)}, "
            f"(SELECT MAX(id) FROM {change}), (SELECT MAX({updated_column}) FROM {product}){source} "
            f"FROM {state} WHERE id = 1"
        )
    return _head_sql[key]


def publish_head(*, sku: str | None = None) -> PublishHead:
    """The current publish generation and catalog version (and the id of the product ``sku``):
    one query."""
    sql = _publish_head_sql(connection.vendor, sku is not None)
    params = [] if sku is None else [sku]
    for _attempt in range(2):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is not None:
            break
        PublishState.load()  # a fresh database: nothing was ever published
    return PublishHead(
        generation=row[0],
        catalog_version=[row[1], _iso(aware_utc(row[2]))],
        source_id=row[3] if sku is not None else None,
    )


# --- items -------------------------------------------------------------------------------------------


def _item(row: dict, *, generation: int, touchpoint: str) -> dict[str, Any]:
    return {
        "sku": row["target__sku"],
        "name": row["target__name"],
        "brand": row["target__brand__name"],
        "price": _price(row["target__unit_price"]),
        "currency": row["target__currency"],
        "pack_quantity": row["target__pack_quantity"],
        "unit": row["target__unit"],
        "type": row["type"],
        "position": row["position"],
        "provenance": _provenance(row),
        "token": _token(row["link_id"], generation, row["source_id"], row["target_id"], touchpoint),
    }


def _provenance(row: dict) -> dict[str, Any]:
    return {
        "origin": row["origin"],
        "co_count": row["co_count"],
        "confidence": row["confidence"],
        "lift": row["lift"],
        "approved_by_role": row["approved_by_role"],
        "approved_at": _iso(row["approved_at"]),
        "run_id": row["run_number"],
    }


_TOKEN_MEMO_SIZE = 20_000
_token_memo: dict[tuple, str] = {}


def _token(link_id: int, generation: int, source_id: int, target_id: int, touchpoint: str) -> str:
    """``tracking_token``, remembered per process: signing is most of an item's CPU, and a
    token is a pure function of these values and SECRET_KEY (part of the memo's key, so a
    changed key never gives out old tokens). Cleared when full (one generation's links)."""
    memo_key = (settings.SECRET_KEY, link_id, generation, source_id, target_id, touchpoint)
    token = _token_memo.get(memo_key)
    if token is None:
        if len(_token_memo) >= _TOKEN_MEMO_SIZE:
            _token_memo.clear()
        token = _token_memo[memo_key] = tracking_token(
            link_id=link_id, generation=generation, source_id=source_id, target_id=target_id, touchpoint=touchpoint
        )
    return token


def _visible_rows(on: datetime.date):
    return PublishedLink.objects.visible(on).values(*_LINK_FIELDS)


def _source_rows_queryset(on: datetime.date, source_id: int):
    """The ORM form of ``_source_rows``: one source's visible links, in display order."""
    return _visible_rows(on).filter(source_id=source_id).order_by("type", "position", "id")


#: Placeholder values to find, in the ORM's parameters, where the day and the source go.
_ON_MARK, _SOURCE_MARK = datetime.date(1901, 2, 3), -987_654_321


@dataclass(frozen=True)
class _FixedQuery:
    sql: str
    params: tuple
    on_slots: tuple[int, ...]
    source_slots: tuple[int, ...]
    #: (column index, converters, expression) as the ORM's compiler applies them (SQLite:
    #: decimals, datetimes, booleans; PostgreSQL: usually none).
    converters: tuple


_source_sql: dict[tuple[str, str], _FixedQuery] = {}


def _source_rows_query() -> _FixedQuery:
    """``_source_rows_queryset`` compiled once per process and database (like the head query:
    ORM compilation was most of an uncached answer's CPU). The SQL and its parameters are the
    ORM's own (``sql_with_params`` with placeholder values, then the placeholders' slots are
    refilled per call), so it cannot drift from ``PublishedLink.objects.visible``."""
    key = (connection.alias, connection.vendor)
    fixed = _source_sql.get(key)
    if fixed is None:
        queryset = _source_rows_queryset(_ON_MARK, _SOURCE_MARK)
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        on_values = {_ON_MARK, connection.ops.adapt_datefield_value(_ON_MARK)}
        on_slots = tuple(index for index, value in enumerate(params) if value in on_values)
        source_slots = tuple(index for index, value in enumerate(params) if value == _SOURCE_MARK)
        if len(on_slots) != 2 or len(source_slots) != 1:  # pragma: no cover - a changed ``visible``
            raise RuntimeError(f"Unexpected parameters of the links query: {params!r}")
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        fixed = _source_sql[key] = _FixedQuery(
            sql=sql,
            params=tuple(params),
            on_slots=on_slots,
            source_slots=source_slots,
            converters=tuple((index, tuple(convs), expression) for index, (convs, expression) in converters.items()),
        )
    return fixed


def _source_rows(on: datetime.date, source_id: int) -> list[tuple]:
    """The rows of ``_source_rows_queryset`` as tuples in ``_LINK_FIELDS`` order: one fixed
    statement, no ORM compilation."""
    fixed = _source_rows_query()
    params = list(fixed.params)
    day = connection.ops.adapt_datefield_value(on)
    for slot in fixed.on_slots:
        params[slot] = day
    for slot in fixed.source_slots:
        params[slot] = source_id
    with connection.cursor() as cursor:
        cursor.execute(fixed.sql, params)
        rows = cursor.fetchall()
    if fixed.converters:
        converted = []
        for row in rows:
            row = list(row)
            for index, convs, expression in fixed.converters:
                value = row[index]
                for converter in convs:
                    value = converter(value, expression, connection)
                row[index] = value
            converted.append(tuple(row))
        rows = converted
    return rows


# --- product recommendations -----------------------------------------------------------------------


@dataclass(frozen=True)
class RecommendationsRequest:
    """Everything a product's answer depends on, known after two cheap queries."""

    sku: str
    touchpoint: str
    limit: int
    on: datetime.date
    head: PublishHead
    rules: AccountRules | None

    @property
    def etag(self) -> str:
        """A strong ETag (quoted), the same for the same answer."""
        parts = [
            PAYLOAD_VERSION,
            self.head.generation,
            self.head.catalog_version,
            self.sku,
            self.touchpoint,
            self.limit,
            self.on.isoformat(),
            self.rules.version if self.rules else None,
        ]
        digest = hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()
        return f'"{digest[:32]}"'


def recommendations_request(
    *,
    sku: str,
    account: str | None = None,
    touchpoint: str = "product_page",
    limit: int | None = None,
    on: datetime.date | None = None,
) -> RecommendationsRequest:
    """Validate and resolve a product request (raises ProductNotFound, BadParameter); one
    query, two with an account."""
    touchpoint = _touchpoint(touchpoint)
    limit = _limit(limit)
    head = publish_head(sku=sku)
    if head.source_id is None:
        raise ProductNotFound(f"No product has the SKU {sku!r}.")
    return RecommendationsRequest(
        sku=sku,
        touchpoint=touchpoint,
        limit=limit,
        on=on or timezone.localdate(),
        head=head,
        rules=account_rules(account),
    )


def recommendations_build(request: RecommendationsRequest) -> dict[str, Any]:
    """The body for a resolved request: one query (a fixed statement, see ``_source_rows``)."""
    rows = (dict(zip(_LINK_FIELDS, values, strict=True)) for values in _source_rows(request.on, request.head.source_id))
    return _product_body(request, rows, generation=request.head.generation)


def _product_body(request: RecommendationsRequest, rows: Iterable[dict], *, generation: int) -> dict[str, Any]:
    """A product's body from its link rows in display order: grouped by type, the account
    rules applied, each type cut at the limit."""
    by_type: dict[str, list[dict]] = {}
    for row in rows:
        by_type.setdefault(row["type"], []).append(row)
    links: dict[str, list[dict]] = {}
    for link_type in sorted(by_type, key=lambda value: _TYPE_ORDER.get(value, len(_TYPE_ORDER))):
        shown = request.rules.apply(by_type[link_type]) if request.rules else by_type[link_type]
        if shown:
            links[link_type] = [
                _item(row, generation=generation, touchpoint=request.touchpoint) for row in shown[: request.limit]
            ]
    # Later issues add "tiers" and "specials" next to "links" (top-level keys; clients ignore
    # keys they do not know, see docs/api.md).
    return {"sku": request.sku, "generation": generation, "touchpoint": request.touchpoint, "links": links}


def recommendations_payload(
    *,
    sku: str,
    account: str | None = None,
    touchpoint: str = "product_page",
    limit: int | None = None,
    on: datetime.date | None = None,
) -> dict[str, Any]:
    """The exact JSON body of GET /api/v1/products/{sku}/recommendations/ (the back office's
    webshop preview shows it). Raises ProductNotFound for an unknown SKU, BadParameter for a
    touchpoint or limit out of range. Three queries (four with an account)."""
    request = recommendations_request(sku=sku, account=account, touchpoint=touchpoint, limit=limit, on=on)
    return recommendations_build(request)


# --- cart recommendations ------------------------------------------------------------------------------


@dataclass
class _Merged:
    """One target of the cart answer: the best-placed link to it and the cart items suggesting it."""

    row: dict
    sources: set[str] = field(default_factory=set)


def cart_recommendations_payload(
    *,
    skus: list[str],
    account: str | None = None,
    touchpoint: str = "cart",
    limit: int | None = None,
    on: datetime.date | None = None,
) -> dict[str, Any]:
    """The body of POST /api/v1/cart/recommendations/: the links of every cart item merged per
    type, without the items already in the cart. A target suggested by several cart items
    comes first (ranked by how many suggest it, then by its best position, then by the cart
    order), the account rules apply, and each type is cut at ``limit``. SKUs we do not know are
    ignored (a cart may hold items that are not in the catalog). Three queries (two without an
    account)."""
    touchpoint = _touchpoint(touchpoint, CART_TOUCHPOINTS)
    limit = _limit(limit)
    skus = list(dict.fromkeys(skus))
    if not 1 <= len(skus) <= settings.API_MAX_CART_SKUS:
        raise BadParameter(f"skus must list between 1 and {settings.API_MAX_CART_SKUS} SKUs.")
    on = on or timezone.localdate()
    generation = publish_head().generation
    rules = account_rules(account)
    rows = _visible_rows(on).filter(source__sku__in=skus).exclude(target__sku__in=skus).order_by()
    cart_order = {sku: index for index, sku in enumerate(skus)}

    merged: dict[str, dict[int, _Merged]] = {}
    for row in rows:
        entry = merged.setdefault(row["type"], {}).get(row["target_id"])
        if entry is None:
            entry = merged[row["type"]][row["target_id"]] = _Merged(row=row)
        elif (row["position"], cart_order[row["source__sku"]]) < (
            entry.row["position"],
            cart_order[entry.row["source__sku"]],
        ):
            entry.row = row  # the best-placed link speaks for the merged item (token, provenance)
        entry.sources.add(row["source__sku"])

    def rank(entry: _Merged) -> tuple:
        row = entry.row
        return (-len(entry.sources), row["position"], cart_order[row["source__sku"]], row["target__sku"])

    links: dict[str, list[dict]] = {}
    for link_type in sorted(merged, key=lambda value: _TYPE_ORDER.get(value, len(_TYPE_ORDER))):
        ranked = sorted(merged[link_type].values(), key=rank)
        by_row = {id(entry.row): entry for entry in ranked}
        rows_in_order = [entry.row for entry in ranked]
        shown = rules.apply(rows_in_order) if rules else rows_in_order
        if shown:
            items = []
            for row in shown[:limit]:
                item = _item(row, generation=generation, touchpoint=touchpoint)
                item["suggested_by"] = sorted(by_row[id(row)].sources, key=cart_order.__getitem__)
                items.append(item)
            links[link_type] = items
    return {"skus": skus, "generation": generation, "touchpoint": touchpoint, "links": links}


# --- bulk sync -------------------------------------------------------------------------------------------


def _cursor_encode(updated_at: datetime.datetime, pk: int) -> str:
    raw = json.dumps([updated_at.isoformat(), pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[datetime.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, pk = json.loads(raw)
        updated_at = datetime.datetime.fromisoformat(stamp)
        if updated_at.tzinfo is None or not isinstance(pk, int):
            raise ValueError
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadParameter("cursor is not a cursor this API gave out; start again without it.") from exc
    return updated_at, pk


@dataclass
class LinksPage:
    results: list[dict]
    next_cursor: str | None


def links_sync_page(
    *,
    link_type: str | None = None,
    source: str | None = None,
    updated_since: datetime.datetime | None = None,
    cursor: str | None = None,
    limit: int | None = None,
    on: datetime.date | None = None,
) -> LinksPage:
    """One page of GET /api/v1/links/ in (updated_at, id) order: one query.

    Without ``updated_since``: the links visible today (a full sync). With it: every published
    link changed since then, and those that are not visible today (retired, out of their date
    window, a product not active, a target excluded from recommendations) come as
    ``{"removed": true}`` rows with no details, so the
    webshop can delete them. A date window starting or ending, or a product's status changing,
    moves a link's ``updated_at`` at the next scheduled ``published_links_refresh``."""
    limit = settings.API_SYNC_PAGE_SIZE if limit is None else limit
    if not 1 <= limit <= settings.API_SYNC_MAX_PAGE_SIZE:
        raise BadParameter(f"limit must be between 1 and {settings.API_SYNC_MAX_PAGE_SIZE}.")
    if link_type is not None and link_type not in LinkType.values:
        raise BadParameter(f"type must be one of {', '.join(LinkType.values)}.")
    on = on or timezone.localdate()
    if updated_since is None:
        rows = PublishedLink.objects.visible(on).annotate(live=Value(True))
    else:
        live = Q(removed_generation__isnull=True) & shown_on(on)
        rows = PublishedLink.objects.filter(updated_at__gte=updated_since).annotate(
            live=ExpressionWrapper(live, output_field=BooleanField())
        )
    if link_type is not None:
        rows = rows.filter(type=link_type)
    if source is not None:
        rows = rows.filter(source__sku=source)
    if cursor:
        after_at, after_id = _cursor_decode(cursor)
        rows = rows.filter(Q(updated_at__gt=after_at) | Q(updated_at=after_at, id__gt=after_id))
    page = list(
        rows.order_by("updated_at", "id").values(
            "id",
            "link_id",
            "live",
            "source__sku",
            "target__sku",
            "type",
            "position",
            "origin",
            "co_count",
            "confidence",
            "lift",
            "run_number",
            "approved_at",
            "approved_by_role",
            "valid_from",
            "valid_until",
            "updated_at",
        )[: limit + 1]
    )
    more = len(page) > limit
    page = page[:limit]
    results = []
    for row in page:
        item: dict[str, Any] = {
            "id": row["link_id"],
            "source": row["source__sku"],
            "target": row["target__sku"],
            "type": row["type"],
            "updated_at": _iso(row["updated_at"]),
            "removed": not row["live"],
        }
        if row["live"]:
            item.update(
                position=row["position"],
                valid_from=_iso(row["valid_from"]),
                valid_until=_iso(row["valid_until"]),
                provenance=_provenance(row),
            )
        results.append(item)
    next_cursor = _cursor_encode(page[-1]["updated_at"], page[-1]["id"]) if more else None
    return LinksPage(results=results, next_cursor=next_cursor)


# --- caching ---------------------------------------------------------------------------------------------

_max_age_memo: tuple[float, int] | None = None
_MAX_AGE_MEMO_SECONDS = 60


def _crontab_period(crontab) -> int:
    """The shortest gap a crontab can have, roughly: the coarsest field that is not "*"."""
    if crontab.minute.strip() == "*" or "/" in crontab.minute:
        return 60
    if crontab.hour.strip() == "*" or "/" in crontab.hour:
        return 3600
    if crontab.day_of_week.strip() == "*" and crontab.day_of_month.strip() == "*":
        return 86400
    return 7 * 86400


def recompute_interval() -> int | None:
    """Seconds between scheduled recomputes, from the beat schedule; None when there is no
    enabled schedule."""
    from django_celery_beat.models import PeriodicTask

    from merchandising.management.commands.setup_mining_schedule import SCHEDULE_NAME

    task = PeriodicTask.objects.filter(name=SCHEDULE_NAME, enabled=True).select_related("interval", "crontab").first()
    if task is None:
        return None
    if task.interval_id:
        return int(task.interval.schedule.run_every.total_seconds())
    if task.crontab_id:
        return _crontab_period(task.crontab)
    return None


def cache_max_age() -> int:
    """Cache-Control max-age of the read endpoints: the recompute interval, bounded by
    API_CACHE_MAX_AGE (also the value without a schedule), because approvals publish at any
    time; a revalidation with If-None-Match is cheap. Looked up at most once a minute per
    process (a memo, not shared state: every process reads the same schedule)."""
    global _max_age_memo
    now = time.monotonic()
    if _max_age_memo is not None and _max_age_memo[0] > now:
        return _max_age_memo[1]
    interval = recompute_interval()
    bound = settings.API_CACHE_MAX_AGE
    value = bound if interval is None else max(0, min(interval, bound))
    _max_age_memo = (now + _MAX_AGE_MEMO_SECONDS, value)
    return value


def cache_max_age_reset() -> None:
    """Forget the memo (tests, and after changing the schedule in the same process)."""
    global _max_age_memo
    _max_age_memo = None


# --- the next publish (the back office's webshop preview) --------------------------------------------


def _working_visible_rows(on: datetime.date):
    """The working links (``Link.objects.active()``) that the webshop would see on day ``on``
    once published, as rows with the same keys as ``_visible_rows`` (a Link maps to published
    fields as ``merchandising.services.links._working_rows`` copies them) and the same read-time
    checks (``shown_on``) as ``PublishedLinkQuerySet.visible``."""
    from django.db.models import F

    from merchandising.models import Link

    common = [name for name in _LINK_FIELDS if name not in ("link_id", "run_number", "approved_at", "approved_by_role")]
    return (
        Link.objects.active()
        .filter(shown_on(on))
        .values(
            *common,
            link_id=F("id"),
            run_number=F("run_id"),
            approved_at=F("created_at"),
            approved_by_role=F("created_by_role"),
        )
    )


def recommendations_build_next(request: RecommendationsRequest) -> dict[str, Any]:
    """Like ``recommendations_build``, from the working links as if published now: the
    generation (and so the tracking tokens) is the current one plus one, the number that
    publish would make. One query."""
    rows = _working_visible_rows(request.on).filter(source_id=request.head.source_id).order_by("type", "position", "id")
    return _product_body(request, rows, generation=request.head.generation + 1)


def recommendations_payload_next(
    *,
    sku: str,
    account: str | None = None,
    touchpoint: str = "product_page",
    limit: int | None = None,
    on: datetime.date | None = None,
) -> dict[str, Any]:
    """What ``recommendations_payload`` would answer right after a publish now (batch mode: the
    working links, not yet published), built with the same steps, so the shape, order, account
    rules, limit and visibility are identical; the generation and tokens are those of the next
    generation (if nothing at all is waiting, Publish makes no new generation and the answer
    stays the current one). Raises ProductNotFound / BadParameter like
    ``recommendations_payload``. Three queries (four with an account)."""
    request = recommendations_request(sku=sku, account=account, touchpoint=touchpoint, limit=limit, on=on)
    return recommendations_build_next(request)
