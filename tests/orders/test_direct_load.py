"""The direct load (orders.imports.direct): a big load of new orders streamed straight into the
order and line tables on PostgreSQL. It must give exactly the staged import's result, write
nothing when it gives up, and give up on everything the staged import reports."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import CustomerAccount
from orders.imports import direct as direct_module
from orders.imports import orders_import
from orders.imports import staging as staging_module
from orders.models import Order, OrderLine
from tests.factories import ProductFactory
from tests.orders.factories import CustomerAccountFactory, OrderFactory, OrderLineFactory
from tests.orders.test_imports import BULK_FILE, HEADER, counts, history, line_table_schema, make_csv, run

pytestmark = pytest.mark.django_db

SKUS = ("DRILL", "BITS", "BATTERY", "GLOVES")


@pytest.fixture
def products():
    return {sku: ProductFactory(sku=sku) for sku in SKUS}


@pytest.fixture
def big(monkeypatch):
    """Every load is a big load, written in chunks of about 2 rows with order ids taken 2 at a
    time, so that the tests' small files go through every step several times."""
    monkeypatch.setattr(staging_module, "BULK_LOAD_MIN_LINES", 1)
    monkeypatch.setattr(staging_module, "BULK_LOAD_MIN_SHARE", 0)
    monkeypatch.setattr(staging_module, "CHUNK_ROWS", 2)
    monkeypatch.setattr(direct_module, "KEY_BLOCK", 2)


def staged_only(monkeypatch):
    monkeypatch.setattr(direct_module, "wanted", lambda staging, source: False)


def comparable(result) -> dict:
    """What both ways must agree on: everything but the timings and the way taken."""
    return {k: v for k, v in result.to_dict().items() if k not in {"timings", "direct_load"}}


def placeholders() -> list[str]:
    return list(CustomerAccount.objects.placeholders().values_list("external_id", flat=True))


def run_both(data: bytes, monkeypatch, **kwargs):
    """(direct-first result, its rejects, its history, its counts and placeholder accounts; the
    staged import's, the same), each in a transaction of its own that is rolled back, so both
    start from the same database."""
    outcomes = []
    for direct_first in (True, False):
        with monkeypatch.context() as patch:
            if not direct_first:
                staged_only(patch)
            with transaction.atomic():
                rejects = io.StringIO()
                result = orders_import(source=io.BytesIO(data), rejects=rejects, **kwargs)
                outcomes.append((result, rejects.getvalue(), history(), counts(), placeholders()))
                transaction.set_rollback(True)
    return outcomes


GOOD = make_csv(
    "SO-1,ACME,2024-03-01T10:00,DRILL,1,129.00",
    "SO-1,ACME,2024-03-01T10:00,BITS,2,12.50",
    "SO-1,ACME,2024-03-01T10:00,DRILL,2,128.50",
    "SO-2,BUILDCO,2024-03-02,GLOVES,10,2.3456",
    "SO-3,ACME,2024-03-03 09:00,BATTERY,4,19.99",
    "SO-3,ACME,2024-03-03 09:00,GLOVES,1,2.3456",
    "SO-4,NEWCO,2024-03-04,BITS,1,12.5",
    "SO-5,NEWCO,2024-03-05,DRILL,1,129",
    "SO-5,NEWCO,2024-03-05,DRILL,3,129",
)


@pytest.mark.postgres
def test_a_clean_big_load_goes_straight_into_the_tables(products, big):
    CustomerAccountFactory(external_id="ACME")
    before_schema = line_table_schema()

    result = run(GOOD)

    assert (result.direct_load, result.bulk_load, result.applied, result.error_count) == (True, True, True, 0)
    assert (result.orders_created, result.lines_created, result.lines_merged, result.accounts_created) == (5, 7, 2, 2)
    assert set(result.timings) == {"read_and_write", "rebuild", "constraints", "commit", "total"}
    assert line_table_schema() == before_schema
    assert history() == [
        (
            "SO-1",
            "ACME",
            "2024-03-01T09:00:00+00:00",
            [("BITS", 2, Decimal("12.5")), ("DRILL", 3, Decimal("128.6667"))],
        ),
        ("SO-2", "BUILDCO", "2024-03-01T23:00:00+00:00", [("GLOVES", 10, Decimal("2.3456"))]),
        (
            "SO-3",
            "ACME",
            "2024-03-03T08:00:00+00:00",
            [("BATTERY", 4, Decimal("19.99")), ("GLOVES", 1, Decimal("2.3456"))],
        ),
        ("SO-4", "NEWCO", "2024-03-03T23:00:00+00:00", [("BITS", 1, Decimal("12.5"))]),
        ("SO-5", "NEWCO", "2024-03-04T23:00:00+00:00", [("DRILL", 4, Decimal("129"))]),
    ]
    # The exact merged price (quantity-weighted, rounded half up), not a float near it.
    assert str(OrderLine.objects.get(order__external_id="SO-1", product__sku="DRILL").unit_price) == "128.6667"
    assert sorted(CustomerAccount.objects.values_list("external_id", flat=True)) == ["ACME", "BUILDCO", "NEWCO"]


@pytest.mark.postgres
def test_the_order_ids_taken_and_not_used_go_back_to_the_sequence(products, big, monkeypatch):
    monkeypatch.setattr(direct_module, "KEY_BLOCK", 4)  # 5 orders: 8 ids taken, 3 not used

    result = run(GOOD)

    keys = sorted(Order.objects.values_list("id", flat=True))
    assert result.direct_load is True
    assert keys == list(range(keys[0], keys[0] + 5))
    assert OrderFactory(external_id="SO-9").id == keys[-1] + 1


@pytest.mark.postgres
def test_the_direct_load_gives_the_staged_imports_result_on_a_clean_file(products, big, monkeypatch):
    (direct, direct_rejects, *direct_rest), staged = run_both(GOOD, monkeypatch, skip_invalid=True)

    assert (direct.direct_load, staged[0].direct_load) == (True, False)
    assert comparable(direct) == comparable(staged[0])
    assert (direct_rejects, *direct_rest) == staged[1:]
    assert direct_rejects == HEADER + ",line,reason\n"


# ERP habits that the direct load takes itself: rows at different times (the order gets the
# earliest), repeated rows (skipped), rows without an account (the placeholder with --anonymous).
HABITS = make_csv(
    "SO-1,ACME,2024-03-01T10:02,DRILL,1,129.00",
    "SO-1,ACME,2024-03-01T10:00,BITS,2,12.50",
    "SO-1,ACME,2024-03-01T10:02,DRILL,1,129.00",
    "SO-1,ACME,2024-03-01T10:01,DRILL,1,129.00",
    "SO-2,,2024-03-02,GLOVES,10,2.3456",
    "SO-2,,2024-03-02,GLOVES,10,2.3456",
    "SO-2,,2024-03-02,BITS,1,12.5",
    "SO-3,,2024-03-03 09:00,BATTERY,4,19.99",
    "SO-4,NEWCO,2024-03-04,BITS,1,12.5",
)


@pytest.mark.postgres
def test_spread_out_times_repeated_rows_and_anonymous_orders_go_direct(products, big, monkeypatch):
    (direct, *direct_rest), staged = run_both(HABITS, monkeypatch, anonymous="ANON")

    assert (direct.direct_load, staged[0].direct_load, direct.error_count) == (True, False, 0)
    assert comparable(direct) == comparable(staged[0])
    assert direct_rest == list(staged[1:])
    assert (direct.orders_created, direct.lines_created, direct.lines_merged, direct.repeated_rows) == (4, 6, 1, 2)
    assert (direct.orders_spread, direct.orders_anonymous, direct.accounts_created) == (1, 2, 3)
    assert direct_rest[1] == [
        ("SO-1", "ACME", "2024-03-01T09:00:00+00:00", [("BITS", 2, Decimal("12.5")), ("DRILL", 2, Decimal("129"))]),
        (
            "SO-2",
            "ANON",
            "2024-03-01T23:00:00+00:00",
            [("BITS", 1, Decimal("12.5")), ("GLOVES", 10, Decimal("2.3456"))],
        ),
        ("SO-3", "ANON", "2024-03-03T08:00:00+00:00", [("BATTERY", 4, Decimal("19.99"))]),
        ("SO-4", "NEWCO", "2024-03-03T23:00:00+00:00", [("BITS", 1, Decimal("12.5"))]),
    ]
    assert direct_rest[3] == ["ANON"]


# Each is something the staged import reports or must compare, so the direct load gives up.
FALLBACKS = {
    "unreadable time": ("SO-2,BUILDCO,yesterday,GLOVES,1,2",),
    "duplicate row": ("SO-2,BUILDCO,2024-03-02,GLOVES,10,2.3456",),
    "unknown SKU": ("SO-6,ACME,2024-03-06,NOPE,1,1",),
    "unknown SKU among merged rows": ("SO-6,ACME,2024-03-06,NOPE,1,1", "SO-6,ACME,2024-03-06,NOPE,2,1"),
    "account differs": ("SO-6,ACME,2024-03-06,DRILL,1,1", "SO-6,OTHER,2024-03-06,BITS,1,1"),
    "merged quantity too large": ("SO-6,ACME,2024-03-06,DRILL,2147483647,1", "SO-6,ACME,2024-03-06,DRILL,1,1"),
    "rows of an order apart": ("SO-1,ACME,2024-03-01T10:00,GLOVES,1,2",),
    "rows of an order apart, later": ("SO-7,ACME,2024-03-07,DRILL,1,1", "SO-2,BUILDCO,2024-03-02,BITS,1,2"),
    # More rows than 4 chunks (of 2 rows here): the staged import holds no more at a time.
    "an order of 12 rows": tuple(f"SO-8,ACME,2024-03-08,{sku},{n},1" for n in (1, 2, 3) for sku in SKUS),
}


@pytest.mark.postgres
@pytest.mark.parametrize("skip_invalid", [False, True], ids=["all-or-nothing", "skip-invalid"])
@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_the_direct_load_gives_up_where_the_staged_import_must_do_the_work(
    products, big, monkeypatch, case, skip_invalid
):
    data = GOOD + "\n".join(FALLBACKS[case]).encode() + b"\n"

    (direct, *direct_rest), staged = run_both(data, monkeypatch, skip_invalid=skip_invalid)

    assert direct.direct_load is False
    assert "direct_load_given_up" in direct.timings
    assert comparable(direct) == comparable(staged[0])
    assert direct_rest == list(staged[1:])


@pytest.mark.postgres
def test_a_stored_order_makes_the_direct_load_give_up(products, big, monkeypatch):
    OrderLineFactory(order=OrderFactory(external_id="SO-4"), product=products["BITS"], quantity=1)

    (direct, *direct_rest), staged = run_both(GOOD, monkeypatch)

    assert (direct.direct_load, direct.orders_existing, direct.orders_created) == (False, 1, 4)
    assert comparable(direct) == comparable(staged[0])
    assert direct_rest == list(staged[1:])


@pytest.mark.postgres
def test_a_file_of_stored_orders_is_handed_over_before_any_key_is_dropped(products, big, monkeypatch):
    run(GOOD)
    drop = staging_module.Staging.bulk_load_drop
    drops = []

    def spy(self, *args, **kwargs):
        drops.append(args)
        return drop(self, *args, **kwargs)

    monkeypatch.setattr(staging_module.Staging, "bulk_load_drop", spy)

    again = run(GOOD)

    assert (again.direct_load, again.orders_existing, again.orders_created) == (False, 5, 0)
    assert "direct_load_given_up" in again.timings
    assert drops == []  # nor by the staged import: it creates nothing


@pytest.mark.postgres
def test_what_the_direct_load_wrote_before_giving_up_is_gone(products, big):
    """Three chunks went in before the order apart is found: none of their orders stays twice,
    and the keys and indexes are those of before."""
    before_schema = line_table_schema()
    data = GOOD + b"SO-1,ACME,2024-03-01T10:00,GLOVES,1,2\n"

    result = run(data)

    assert (result.direct_load, result.error_count, result.orders_created) == (False, 0, 5)
    assert Order.objects.count() == 5
    assert sorted(OrderLine.objects.filter(order__external_id="SO-1").values_list("product__sku", flat=True)) == [
        "BITS",
        "DRILL",
        "GLOVES",
    ]
    assert line_table_schema() == before_schema


@pytest.mark.postgres
def test_a_copy_that_the_database_refuses_refuses_the_import_and_the_connection_goes_on(products, big, monkeypatch):
    """The lines of a chunk are sent without waiting for the server; its refusal is found
    when the connection is used next: the import is refused, nothing is written, the keys
    and indexes are back, and the connection is usable."""
    before_schema = line_table_schema()
    send_copy = staging_module.Staging.send_copy
    sent = []

    def spoil_the_second_chunk(self, sql, data):
        sent.append(data)
        return send_copy(self, sql, data + b"1\tnot a number\t1\t1.0000\n" if len(sent) == 2 else data)

    monkeypatch.setattr(staging_module.Staging, "send_copy", spoil_the_second_chunk)

    result = run(GOOD)

    assert (result.refused, result.applied, result.orders_created) == (True, False, 0)
    assert 'invalid input syntax for type bigint: "not a number"' in result.errors[0].message
    assert len(sent) == 2
    assert counts() == {"orders": 0, "lines": 0, "accounts": 0}
    assert line_table_schema() == before_schema
    assert Order.objects.count() == 0  # the connection goes on


@pytest.mark.postgres
def test_a_dry_run_of_a_direct_load_writes_nothing(products, big):
    result = run(GOOD, dry_run=True)

    assert (result.direct_load, result.applied, result.orders_created, result.lines_created) == (True, False, 5, 7)
    assert counts() == {"orders": 0, "lines": 0, "accounts": 0}


def test_only_postgresql_takes_the_direct_load(products, big):
    result = run(BULK_FILE)

    assert result.direct_load is (connection.vendor == "postgresql")
    assert result.lines_created == 3


def test_the_file_size_estimates_its_rows(monkeypatch):
    small = make_csv("a,b,c,d,e,f", "g,h,i,j,k,l")
    assert direct_module.estimated_rows(io.BytesIO(small)) == 3

    monkeypatch.setattr(direct_module, "SAMPLE_BYTES", 4096)
    rows = [f"SO-{n:05d},ACME,2024-03-01,DRILL,1,1.5" for n in range(1000)]  # 38 bytes a line
    source = io.BytesIO(make_csv(*rows))
    source.seek(100)

    assert 900 <= direct_module.estimated_rows(source) <= 1100
    assert source.tell() == 0


# --- the same result on random files ----------------------------------------------------------

ORDER_IDS = ("SO-1", "SO-2", "SO-3", "SO-4", "SO-5", "SO-6", "C-7")  # "C": a credit note
ACCOUNTS = ("ACME", "BUILDCO")
TIMES = ("2024-03-01T10:00", "2024-03-01T09:00:00+00:00", "2024-03-02")  # the first two: one instant
QUANTITIES = tuple(str(quantity) for quantity in range(1, 13))
PRICES = ("1", "1.5", "12.3456", "99.99", "0.5", "7")
# Any cells: bad ones too (a missing account, a time or number that cannot be read, an unknown
# SKU, a return, a quantity that overflows when merged, a price with 5 decimals).
ANY = (
    (*ACCOUNTS, ""),
    (*TIMES, "soon"),
    (*SKUS, "NOPE"),
    ("1", "2", "0", "-1", "2147483647", "x"),
    ("1", "1.5", "2.00005", "-1"),
)


@st.composite
def files(draw):
    """Orders of 1 to 4 rows, mostly good and in one piece: about one row in 15 has any cells
    (a bad one, another account, an empty account, ...), one order in 5 has its rows at
    different times, one order in 8 repeats a row (another one in 10 its first), one file in 5
    has its rows shuffled. The cells come from a Random that Hypothesis seeds: its own choices
    lean to the first and smallest values, which here would make nearly every file a bad one."""
    odds = draw(st.randoms(use_true_random=True))
    rows = []
    for order_id in draw(st.lists(st.sampled_from(ORDER_IDS), min_size=1, max_size=6, unique=True)):
        account, moment = odds.choice(ACCOUNTS), odds.choice(TIMES)
        spread = odds.random() < 1 / 5
        order_rows = []
        for _ in range(odds.randint(1, 4)):
            if odds.random() < 1 / 15:
                cells = [odds.choice(values) for values in ANY]
            else:
                at = odds.choice(TIMES) if spread else moment
                cells = [account, at, odds.choice(SKUS), odds.choice(QUANTITIES), odds.choice(PRICES)]
            order_rows.append(",".join([order_id, *cells]))
        if odds.random() < 1 / 8:
            order_rows.append(odds.choice(order_rows))
        if odds.random() < 1 / 10:
            order_rows.append(order_rows[0])
        rows += order_rows
    if odds.random() < 1 / 5:
        odds.shuffle(rows)
    return make_csv(*rows)


@pytest.mark.postgres
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=files(), chunk_rows=st.sampled_from((1, 2, 3, 50_000)), key_block=st.sampled_from((1, 2, 10)),
       skip_invalid=st.booleans(), stored=st.booleans(), anonymous=st.sampled_from((None, "ANON")),
       non_products=st.sampled_from(((), ("GLOVES", "NOPE"))))  # fmt: skip
def test_both_ways_give_the_same_result_on_random_files(
    products, big, monkeypatch, data, chunk_rows, key_block, skip_invalid, stored, anonymous, non_products
):
    monkeypatch.setattr(staging_module, "CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(direct_module, "KEY_BLOCK", key_block)
    with transaction.atomic():
        if stored:
            OrderLineFactory(order=OrderFactory(external_id="SO-3"), product=products["GLOVES"], quantity=2)

        (direct, *direct_rest), staged = run_both(
            data, monkeypatch, skip_invalid=skip_invalid, anonymous=anonymous, non_product_codes=non_products
        )

        assert comparable(direct) == comparable(staged[0])
        assert direct_rest == list(staged[1:])
        assert placeholders() == (["ANON"] if anonymous and direct.orders_anonymous else [])
        transaction.set_rollback(True)


@pytest.mark.postgres
def test_a_copy_the_server_does_not_start_raises_its_error_at_once():
    from django.db import DatabaseError

    staging = staging_module.Staging(connection)
    with pytest.raises(DatabaseError, match='relation "no_such_table" does not exist'), transaction.atomic():
        staging.send_copy("COPY no_such_table (a) FROM STDIN", b"1\n")
    staging.wait()  # nothing is pending
    assert Order.objects.count() == 0  # the connection goes on
