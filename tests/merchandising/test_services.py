"""suggestions_recompute: exact metrics, decisions survive, exclusions, idempotence, single
flight, failure, progress and the distributed (chord) path."""

from __future__ import annotations

import datetime
import math
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from accounts.roles import PRODUCT_SPECIALIST
from catalog.models import Category, ProductStatus
from catalog.services import category_save
from config.celery import app
from merchandising.mining import DEFAULT_SCORE
from merchandising.models import ExclusionRule, MiningRun, MiningSettings, Suggestion, SuggestionStatus
from merchandising.selectors import OrderHistory
from merchandising.services import mining_backtest, suggestions_recompute
from merchandising.services import recompute as recompute_module
from merchandising.services import runs as runs_module
from orders.models import Order
from tests.factories import BrandFactory, ProductFactory, UserFactory
from tests.merchandising.factories import NOW, CustomerAccountFactory, SuggestionFactory, baskets_create, pairs

pytestmark = pytest.mark.django_db

# Thresholds out of the way, and the cosine score, whose values are easy to compute by hand.
LOOSE = {"min_count": 2, "min_confidence": 0.0, "min_lift": 0.0, "score": "cosine"}


def recompute(**overrides):
    return suggestions_recompute(trigger=MiningRun.Trigger.COMMAND, overrides={**LOOSE, **overrides})


def simple_history():
    """Six orders: A+B three times, A+B+C, A+C, D alone (see the hand computation below)."""
    a, b, c, d = (ProductFactory(sku=sku) for sku in "ABCD")
    baskets_create([[a, b]] * 3 + [[a, b, c], [a, c], [d]])
    return a, b, c, d


def metrics(co, count_a, count_b, orders=6, accounts=1):
    return {
        "co_count": co,
        "support": co / orders,
        "confidence": co / count_a,
        "lift": co * orders / (count_a * count_b),
        "jaccard": co / (count_a + count_b - co),
        "decayed_co_count": float(co),  # every order is the newest: age 0, weight 1
        "score": co / math.sqrt(count_a * count_b),  # cosine
        "accounts": accounts,
    }


def review():
    return {"previous_co_count": None, "status": "pending", "stale": False, "reject_reason": "", "decided_by_id": None}


# --- the computation ------------------------------------------------------------------------


def test_recompute_stores_exact_metrics_and_counts():
    simple_history()
    run = recompute()
    assert run.status == MiningRun.Status.SUCCEEDED
    assert run.error == ""
    # A in 5 orders, B in 4, C in 2; A+B in 4, A+C in 2, B+C in 1 (below min_count 2).
    assert pairs() == {
        ("A", "B"): {**metrics(4, 5, 4), **review()},
        ("B", "A"): {**metrics(4, 4, 5), **review()},
        ("A", "C"): {**metrics(2, 5, 2), **review()},
        ("C", "A"): {**metrics(2, 2, 5), **review()},
    }
    assert (run.orders, run.lines, run.products, run.pairs_scored) == (6, 12, 4, 4)
    counts = (run.suggestions_new, run.suggestions_updated, run.suggestions_unchanged, run.suggestions_stale)
    assert counts == (4, 0, 0, 0)
    assert (run.phase, run.progress) == ("done", 100)
    assert run.started_at <= run.finished_at
    assert set(Suggestion.objects.values_list("first_run_id", "last_run_id")) == {(run.pk, run.pk)}


def test_parameters_are_the_stored_settings_with_overrides():
    MiningSettings.objects.create(pk=1, min_count=4, min_confidence=0.1, min_lift=1.5, top_k=7, lookback_days=90)
    run = suggestions_recompute(
        trigger=MiningRun.Trigger.COMMAND, overrides={"min_count": 2, "top_k": 3}, before=datetime.date(2026, 5, 1)
    )
    assert run.parameters == {
        "min_count": 2,
        "min_confidence": 0.1,
        "min_lift": 1.5,
        "top_k": 3,
        "max_basket_size": 50,
        "lookback_days": 90,
        "half_life_days": 180,
        "score": DEFAULT_SCORE,
        "block_size": 2048,
        "before": "2026-05-01",
    }
    assert run.trigger == MiningRun.Trigger.COMMAND
    with pytest.raises(ValueError, match="unknown mining parameters: colour"):
        recompute(colour="red")
    with pytest.raises(ValueError, match="min_confidence must be in"):
        recompute(min_confidence=2.0)
    assert MiningRun.objects.count() == 1


def test_accounts_counts_distinct_accounts_with_an_order_containing_both():
    a, b, c = (ProductFactory(sku=sku) for sku in "ABC")
    first, second = CustomerAccountFactory(), CustomerAccountFactory()
    baskets_create([[a, b], [a, b], [a, c]], account=first)
    baskets_create([[a, b], [a], [c]], account=second)  # second bought A and C, never together
    recompute(min_count=1)
    found = {key: value["accounts"] for key, value in pairs().items()}
    assert found == {("A", "B"): 2, ("B", "A"): 2, ("A", "C"): 1, ("C", "A"): 1}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("seed", range(5))
def test_pair_accounts_matches_a_brute_force_count(seed, threads, settings):
    """pair_accounts (vectorised lookups, chunked, chunks in threads) against sets, on random baskets."""
    settings.MINING_THREADS = threads
    rng = np.random.default_rng(seed)
    n_orders, n_products, n_accounts = 300, 25, 12
    order_idx = rng.integers(0, n_orders, 2000).astype(np.int32)
    product_idx = rng.integers(0, n_products, 2000).astype(np.int32)
    order_accounts = rng.integers(100, 100 + n_accounts, n_orders)
    history = OrderHistory(
        order_idx=order_idx,
        product_idx=product_idx,
        order_age_days=np.zeros(n_orders),
        order_accounts=order_accounts,
        product_ids=np.arange(n_products),
        reference=None,
    )
    source, target = np.nonzero(~np.eye(n_products, dtype=bool))
    result = SimpleNamespace(source=source.astype(np.int32), target=target.astype(np.int32))
    baskets = {}
    for order, product in zip(order_idx.tolist(), product_idx.tolist(), strict=True):
        baskets.setdefault(order, set()).add(product)
    cap = 8
    expected = [
        len({order_accounts[o] for o, basket in baskets.items() if a in basket and b in basket and len(basket) <= cap})
        for a, b in zip(source.tolist(), target.tolist(), strict=True)
    ]
    original = recompute_module.ACCOUNT_LOOKUPS_CHUNK
    recompute_module.ACCOUNT_LOOKUPS_CHUNK = 97  # many small chunks
    try:
        found = recompute_module.pair_accounts(history=history, result=result, max_basket_size=cap)
    finally:
        recompute_module.ACCOUNT_LOOKUPS_CHUNK = original
    assert found.tolist() == expected
    assert sum(expected) > 0


def test_accounts_ignore_orders_above_the_basket_cap():
    a, b, c = (ProductFactory(sku=sku) for sku in "ABC")
    baskets_create([[a, b]], account=CustomerAccountFactory())
    baskets_create([[a, b, c]], account=CustomerAccountFactory())  # 3 products: above the cap of 2
    recompute(min_count=1, max_basket_size=2)
    assert {key: (v["co_count"], v["accounts"]) for key, v in pairs().items()} == {
        ("A", "B"): (1, 1),
        ("B", "A"): (1, 1),
    }


def test_before_and_lookback_limit_the_orders():
    a, b, c = (ProductFactory(sku=sku) for sku in "ABC")
    baskets_create([[a, b]] * 2, ordered_at=NOW - datetime.timedelta(days=400))  # outside a 365-day window
    baskets_create([[a, c]] * 2, ordered_at=NOW - datetime.timedelta(days=10))
    baskets_create([[b, c]] * 2, ordered_at=NOW)  # the newest: excluded by --before
    run = recompute(lookback_days=365)
    assert set(pairs()) == {("A", "C"), ("C", "A"), ("B", "C"), ("C", "B")}
    assert run.orders == 4
    run = suggestions_recompute(
        trigger=MiningRun.Trigger.COMMAND,
        overrides={**LOOSE, "lookback_days": 365},
        before=timezone.localdate(NOW),
    )
    assert run.orders == 2  # the window counts back from the --before date, not from the newest order
    assert {key for key, value in pairs().items() if not value["stale"]} == {("A", "C"), ("C", "A")}
    run = suggestions_recompute(
        trigger=MiningRun.Trigger.COMMAND, overrides={**LOOSE, "lookback_days": 0}, before=timezone.localdate(NOW)
    )
    assert run.orders == 4  # lookback 0: all of the history
    assert {key for key, value in pairs().items() if not value["stale"]} == both("A", "B") | both("A", "C")


def test_decayed_co_count_halves_per_half_life():
    a, b = ProductFactory(sku="A"), ProductFactory(sku="B")
    baskets_create([[a, b]], ordered_at=NOW)
    baskets_create([[a, b]], ordered_at=NOW - datetime.timedelta(days=30))
    baskets_create([[a, b]], ordered_at=NOW - datetime.timedelta(days=60))
    recompute(half_life_days=30)
    assert pairs()[("A", "B")]["decayed_co_count"] == 1.0 + 0.5 + 0.25


def test_top_k_keeps_the_best_targets_per_source():
    a, b, c, d = (ProductFactory(sku=sku) for sku in "ABCD")
    baskets_create([[a, b]] * 4 + [[a, c]] * 3 + [[a, d]] * 2)
    recompute(top_k=2)
    assert sorted(key for key in pairs() if key[0] == "A") == [("A", "B"), ("A", "C")]


def test_empty_history_succeeds_and_flags_everything_stale():
    old = SuggestionFactory()
    run = recompute()
    assert run.status == MiningRun.Status.SUCCEEDED
    assert (run.orders, run.lines, run.products, run.pairs_scored, run.suggestions_stale) == (0, 0, 0, 0, 1)
    old.refresh_from_db()
    assert old.stale is True


# --- decisions survive a recompute ------------------------------------------------------------


def test_decisions_survive_a_recompute():
    specialist = UserFactory(role=PRODUCT_SPECIALIST)
    a, b, c, d, e, f = (ProductFactory(sku=sku) for sku in "ABCDEF")
    baskets_create([[a, b]] * 3 + [[a, c]] * 2 + [[d, e]] * 2 + [[e, f]] * 2)
    first = recompute()
    decided = timezone.now()
    Suggestion.objects.filter(source=a, target=b).update(status="approved", decided_by=specialist, decided_at=decided)
    Suggestion.objects.filter(source=b, target=a).update(
        status="rejected", reject_reason="unrelated", reject_note="no", decided_by=specialist, decided_at=decided
    )
    Suggestion.objects.filter(source=d, target=e).update(status="approved", decided_by=specialist, decided_at=decided)
    Suggestion.objects.filter(source=e, target=d).update(
        status="rejected", reject_reason="competitor", decided_by=specialist, decided_at=decided
    )
    # E+F was pending; F -> E approved, then it went stale earlier and now qualifies again.
    Suggestion.objects.filter(source=f, target=e).update(status="approved", decided_by=specialist, stale=True)
    # New evidence: A+B once more, D+E falls out of the window, A+C unchanged, E+F unchanged.
    Order.objects.filter(lines__product=d).delete()
    baskets_create([[a, b]])

    second = recompute()
    assert second.status == MiningRun.Status.SUCCEEDED
    rows = {
        key: (v["status"], v["stale"], v["reject_reason"], v["decided_by_id"], v["co_count"], v["previous_co_count"])
        for key, v in pairs().items()
    }
    assert rows == {
        ("A", "B"): ("approved", False, "", specialist.pk, 4, 3),  # approved stays approved, metrics updated
        ("B", "A"): ("rejected", False, "unrelated", specialist.pk, 4, 3),  # rejected stays rejected
        ("A", "C"): ("pending", False, "", None, 2, 2),  # pending stays pending
        ("C", "A"): ("pending", False, "", None, 2, 2),
        ("D", "E"): ("approved", True, "", specialist.pk, 2, None),  # approved, gone stale: needs attention
        ("E", "D"): ("rejected", True, "competitor", specialist.pk, 2, None),  # rejected and stale
        ("E", "F"): ("pending", False, "", None, 2, 2),
        ("F", "E"): ("approved", False, "", specialist.pk, 2, 2),  # stale cleared, decision kept
    }
    assert Suggestion.objects.get(source=a, target=b).decided_at == decided
    assert Suggestion.objects.get(source=b, target=a).reject_note == "no"
    assert list(Suggestion.objects.needs_attention().values_list("source__sku", "target__sku")) == [("D", "E")]
    assert sorted(Suggestion.objects.pending_review().values_list("source__sku", "target__sku")) == [
        ("A", "C"),
        ("C", "A"),
        ("E", "F"),
    ]
    stale = Suggestion.objects.get(source=d, target=e)
    assert stale.stale_since is not None and stale.last_run_id == first.pk
    counts = (
        second.suggestions_new,
        second.suggestions_updated,
        second.suggestions_unchanged,
        second.suggestions_stale,
    )
    # A<->B have new counts, every other metric of A<->C and E<->F moved with the number of orders; F->E was
    # stale. D<->E went stale.
    assert counts == (0, 6, 0, 2)
    assert Suggestion.objects.filter(first_run=first).count() == 8


def test_pending_pair_that_stops_qualifying_goes_stale_and_leaves_the_queue():
    a, b = ProductFactory(sku="A"), ProductFactory(sku="B")
    baskets_create([[a, b]] * 2)
    recompute()
    run = recompute(min_count=3)
    assert run.suggestions_stale == 2
    assert {k: (v["status"], v["stale"]) for k, v in pairs().items()} == {
        ("A", "B"): ("pending", True),
        ("B", "A"): ("pending", True),
    }
    assert Suggestion.objects.pending_review().count() == 0
    stale_since = Suggestion.objects.get(source=a).stale_since
    run = recompute(min_count=3)
    assert run.suggestions_stale == 0  # already stale: counted once, stale_since kept
    assert Suggestion.objects.get(source=a).stale_since == stale_since


# --- exclusions at mining time -----------------------------------------------------------------


def mined_pairs():
    return {key for key, value in pairs().items() if not value["stale"]}


def both(x, y):
    return {(x, y), (y, x)}


def test_pack_variants_of_one_base_are_never_paired():
    base = ProductFactory(sku="SCREW")
    box = ProductFactory(sku="SCREW-100", base=base)
    crate = ProductFactory(sku="SCREW-500", base=base)
    bit = ProductFactory(sku="BIT")
    baskets_create([[base, box, crate, bit]] * 2)
    recompute()
    assert mined_pairs() == both("SCREW", "BIT") | both("SCREW-100", "BIT") | both("SCREW-500", "BIT")


@pytest.mark.parametrize(
    "change",
    [
        {"exclude_from_recommendations": True},
        {"status": ProductStatus.DRAFT},
        {"status": ProductStatus.DISCONTINUED},
    ],
    ids=["flagged", "draft", "discontinued"],
)
def test_flagged_and_non_active_products_are_never_paired(change):
    a, b, x = ProductFactory(sku="A"), ProductFactory(sku="B"), ProductFactory(sku="X", **change)
    baskets_create([[a, b, x]] * 2)
    run = recompute()
    assert mined_pairs() == both("A", "B")
    assert run.orders == 2 and run.products == 3  # X still counts in the history, it is only never suggested


def test_product_and_brand_rules():
    acme = BrandFactory(name="Acme")
    a, b = ProductFactory(sku="A"), ProductFactory(sku="B")
    x = ProductFactory(sku="X")
    y1, y2 = ProductFactory(sku="Y1", brand=acme), ProductFactory(sku="Y2", brand=acme)
    baskets_create([[a, b, x, y1, y2]] * 2)
    ExclusionRule.objects.create(kind=ExclusionRule.Kind.PRODUCT, product=x)
    ExclusionRule.objects.create(kind=ExclusionRule.Kind.BRAND, brand=acme)
    recompute()
    assert mined_pairs() == both("A", "B")


def test_category_rule_covers_the_categories_below():
    tools = category_save(category=Category(name="Tools"))
    drills = category_save(category=Category(name="Drills", parent=tools))
    toolsets = category_save(category=Category(name="Toolsets"))  # "Tools" is a prefix of its path, not a parent
    a = ProductFactory(sku="A")
    t, d = ProductFactory(sku="T", category=tools), ProductFactory(sku="D", category=drills)
    box = ProductFactory(sku="BOX", category=toolsets)
    baskets_create([[a, t, d, box]] * 2)
    ExclusionRule.objects.create(kind=ExclusionRule.Kind.CATEGORY, category=tools)
    recompute()
    assert mined_pairs() == both("A", "BOX")


def test_category_pair_rule_covers_both_subtrees_in_both_directions_and_nothing_else():
    tools = category_save(category=Category(name="Tools"))
    drills = category_save(category=Category(name="Drills", parent=tools))
    safety = category_save(category=Category(name="Safety"))
    other = category_save(category=Category(name="Other"))
    t, d = ProductFactory(sku="T", category=tools), ProductFactory(sku="D", category=drills)
    s, o = ProductFactory(sku="S", category=safety), ProductFactory(sku="O", category=other)
    baskets_create([[t, d, s, o]] * 2)
    ExclusionRule.objects.create(kind=ExclusionRule.Kind.CATEGORY_PAIR, category=safety, other_category=tools)
    recompute()
    # T-D share a subtree (no implicit "same category" exclusion); S never pairs with T or D.
    assert mined_pairs() == both("T", "D") | both("T", "O") | both("D", "O") | both("S", "O")


def test_a_new_exclusion_rule_makes_existing_pairs_stale():
    a, b = ProductFactory(sku="A"), ProductFactory(sku="B")
    baskets_create([[a, b]] * 2)
    recompute()
    Suggestion.objects.filter(source=a).update(status=SuggestionStatus.APPROVED)
    ExclusionRule.objects.create(kind=ExclusionRule.Kind.PRODUCT, product=b)
    run = recompute()
    assert run.suggestions_stale == 2
    assert list(Suggestion.objects.needs_attention().values_list("source__sku", flat=True)) == ["A"]


# --- idempotence ---------------------------------------------------------------------------------


def test_two_runs_on_the_same_data_give_identical_suggestions():
    a, b, c, d = (ProductFactory(sku=sku) for sku in "ABCD")
    baskets_create([[a, b]] * 3 + [[a, b, c]] * 2 + [[c, d]] * 2, step=datetime.timedelta(days=-7))
    baskets_create([[b, d]] * 2, account=CustomerAccountFactory(), step=datetime.timedelta(days=-3))
    first_run = recompute()
    first = pairs()
    second_run = recompute()
    second = pairs()
    third_run = recompute()
    assert pairs() == second
    # Unchanged pairs are not written at all: same metrics, same previous co_count (none:
    # they are new in the first run), still the first run's, same updated_at.
    assert second == first
    assert len(first) == 10
    assert set(Suggestion.objects.values_list("first_run_id", "last_run_id")) == {(first_run.pk, first_run.pk)}
    assert Suggestion.objects.filter(updated_at__gt=first_run.finished_at).count() == 0
    for run in (second_run, third_run):
        assert (run.suggestions_new, run.suggestions_updated, run.suggestions_unchanged, run.suggestions_stale) == (
            0,
            0,
            10,
            0,
        )


# --- single flight ----------------------------------------------------------------------------


def test_a_run_while_another_is_running_is_skipped():
    simple_history()
    running = MiningRun.objects.create(status=MiningRun.Status.RUNNING, heartbeat_at=timezone.now())
    run = recompute()
    assert run.status == MiningRun.Status.SKIPPED
    assert run.error == f"Run #{running.pk} was running."
    assert run.finished_at is not None
    assert Suggestion.objects.count() == 0
    running.refresh_from_db()
    assert running.status == MiningRun.Status.RUNNING


def test_an_abandoned_run_is_failed_and_the_next_one_runs():
    simple_history()
    long_ago = timezone.now() - datetime.timedelta(seconds=runs_module.abandoned_after().total_seconds() + 60)
    dead = MiningRun.objects.create(status=MiningRun.Status.RUNNING, heartbeat_at=long_ago, started_at=long_ago)
    run = recompute()
    assert run.status == MiningRun.Status.SUCCEEDED
    dead.refresh_from_db()
    assert dead.status == MiningRun.Status.FAILED
    assert dead.error.startswith("Abandoned: no progress since before ")


def test_a_redelivered_task_takes_its_own_abandoned_run_over():
    simple_history()
    long_ago = timezone.now() - datetime.timedelta(seconds=runs_module.abandoned_after().total_seconds() + 60)
    run = MiningRun.objects.create(
        status=MiningRun.Status.RUNNING, heartbeat_at=long_ago, started_at=long_ago, parameters=recompute_params()
    )
    run = suggestions_recompute(run=run)
    assert run.status == MiningRun.Status.SUCCEEDED
    assert Suggestion.objects.count() == 4


def recompute_params():
    return runs_module.mining_parameters(overrides=LOOSE)


def test_a_run_that_is_not_queued_is_left_alone():
    simple_history()
    done = MiningRun.objects.create(status=MiningRun.Status.SUCCEEDED, parameters=recompute_params())
    fresh = MiningRun.objects.create(
        status=MiningRun.Status.RUNNING, heartbeat_at=timezone.now(), parameters=recompute_params()
    )
    assert suggestions_recompute(run=done).status == MiningRun.Status.SUCCEEDED
    assert suggestions_recompute(run=fresh).status == MiningRun.Status.RUNNING  # a duplicate delivery: no work
    assert Suggestion.objects.count() == 0
    with pytest.raises(ValueError, match="carries its own parameters"):
        suggestions_recompute(run=done, overrides={"min_count": 1})
    with pytest.raises(TypeError, match="a new run needs a trigger"):
        suggestions_recompute()
    assert MiningRun.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_one_works_the_other_is_skipped(monkeypatch):
    simple_history()
    barrier = threading.Barrier(2)
    skipped = threading.Event()
    real_load = recompute_module.order_history_load

    def slow_load(**kwargs):
        # The claimer holds the running slot until the other thread has been turned away.
        assert skipped.wait(timeout=30)
        return real_load(**kwargs)

    monkeypatch.setattr(recompute_module, "order_history_load", slow_load)
    real_claim = recompute_module.run_claim

    def claim_together(*, run, task_id=None):
        barrier.wait(timeout=30)
        claimed = real_claim(run=run, task_id=task_id)
        if not claimed:
            skipped.set()
        return claimed

    monkeypatch.setattr(recompute_module, "run_claim", claim_together)
    results, errors = [], []

    def work():
        try:
            results.append(recompute())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(run.status for run in results) == [MiningRun.Status.SKIPPED, MiningRun.Status.SUCCEEDED]
    winner = next(run for run in results if run.status == MiningRun.Status.SUCCEEDED)
    loser = next(run for run in results if run.status == MiningRun.Status.SKIPPED)
    assert loser.error == f"Run #{winner.pk} was running."
    assert (loser.orders, loser.suggestions_new) == (0, 0)
    assert winner.suggestions_new == 4
    assert Suggestion.objects.count() == 4
    assert set(Suggestion.objects.values_list("last_run_id", flat=True)) == {winner.pk}


# --- failures ---------------------------------------------------------------------------------


def test_a_failure_mid_store_leaves_the_suggestions_exactly_as_they_were(monkeypatch):
    specialist = UserFactory(role=PRODUCT_SPECIALIST)
    a, b, c, d = simple_history()
    first = recompute()
    Suggestion.objects.filter(source=a, target=b).update(status="approved", decided_by=specialist)
    before = pairs()
    before_rows = list(Suggestion.objects.order_by("pk").values())
    baskets_create([[a, d]] * 3 + [[b, c]] * 2)  # new pairs, changed metrics, and C->A gone stale under top_k
    monkeypatch.setattr(recompute_module, "STORE_BATCH", 2)
    real_write = recompute_module.suggestions_write_batch
    written = []

    def write_then_fail(cursor, **kwargs):
        if written:
            raise RuntimeError("disk full")
        real_write(cursor, **kwargs)
        written.append((kwargs["start"], kwargs["stop"]))

    monkeypatch.setattr(recompute_module, "suggestions_write_batch", write_then_fail)
    run = recompute(top_k=1)
    assert written == [(0, 2)]  # one batch went in before the failure
    assert run.status == MiningRun.Status.FAILED
    assert run.error == "RuntimeError: disk full"
    assert run.phase == "storing suggestions"
    assert run.finished_at is not None
    assert (run.suggestions_new, run.suggestions_updated, run.suggestions_stale) == (0, 0, 0)
    assert pairs() == before
    assert list(Suggestion.objects.order_by("pk").values()) == before_rows
    assert set(Suggestion.objects.values_list("last_run_id", flat=True)) == {first.pk}
    # The slot is free again: the next run works.
    monkeypatch.setattr(recompute_module, "suggestions_write_batch", real_write)
    assert recompute(top_k=1).status == MiningRun.Status.SUCCEEDED


def test_a_failure_while_mining_is_recorded(monkeypatch):
    simple_history()

    def broken(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(recompute_module, "mine_upper", broken)
    run = recompute()
    assert (run.status, run.error, run.phase) == (MiningRun.Status.FAILED, "MemoryError: out of memory", "preparing")
    assert Suggestion.objects.count() == 0


# --- progress -------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_progress_is_written_between_phases_and_blocks(monkeypatch, settings, threads):
    settings.MINING_THREADS = threads
    a, b, c, d = simple_history()
    seen = []
    real = recompute_module.run_progress

    def spy(*, run, phase, progress):
        real(run=run, phase=phase, progress=progress)
        stored = MiningRun.objects.values_list("phase", "progress", "status").get(pk=run.pk)
        seen.append(stored)

    monkeypatch.setattr(recompute_module, "run_progress", spy)
    recompute(block_size=2)
    assert seen == [
        ("loading history", 2, "running"),
        ("preparing", 10, "running"),
        # one thread: a progress step per block; two: both blocks mine at once, one step
        *([("mining block 1 of 2", 45, "running")] if threads == 1 else []),
        ("mining block 2 of 2", 75, "running"),
        ("scoring", 75, "running"),
        ("counting accounts", 80, "running"),
        ("storing suggestions", 85, "running"),
    ]


# --- the distributed path ---------------------------------------------------------------------


@pytest.fixture
def eager_chord():
    """Celery runs tasks in-process (on the PostgreSQL/Redis run too), chords included."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def test_distributed_blocks_give_the_same_suggestions_as_in_process(eager_chord):
    """The chord (header: one task per block, body: merge and store) run eagerly: the same
    tasks a broker would hand to the workers, with the input snapshot in the cache."""
    a, b, c, d = simple_history()
    baskets_create([[b, c, d]] * 2, account=CustomerAccountFactory())
    in_process = recompute(block_size=1)
    expected = pairs()
    run = suggestions_recompute(
        trigger=MiningRun.Trigger.SCHEDULE, overrides={**LOOSE, "block_size": 1}, distribute=True
    )
    run.refresh_from_db()
    assert run.status == MiningRun.Status.SUCCEEDED, run.error
    assert pairs() == expected
    assert (run.orders, run.lines, run.products, run.pairs_scored) == (
        in_process.orders,
        in_process.lines,
        in_process.products,
        in_process.pairs_scored,
    )
    assert (run.suggestions_new, run.suggestions_unchanged) == (0, len(expected))
    from django.core.cache import cache

    assert cache.get(recompute_module._snapshot_key(run.pk, run.attempt)) is None


def test_a_failed_block_fails_the_run_and_keeps_the_suggestions(monkeypatch, eager_chord):
    simple_history()
    recompute()
    before = pairs()
    calls = []
    real = recompute_module.mine_block

    def fail_second(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise RuntimeError("worker fell over")
        return real(*args, **kwargs)

    monkeypatch.setattr(recompute_module, "mine_block", fail_second)
    run = suggestions_recompute(
        trigger=MiningRun.Trigger.SCHEDULE, overrides={**LOOSE, "block_size": 1}, distribute=True
    )
    assert (run.status, run.error) == (MiningRun.Status.FAILED, "RuntimeError: worker fell over")
    assert pairs() == before


# --- backtest ---------------------------------------------------------------------------------


def test_backtest_on_a_tiny_hand_computed_history():
    """Before the cutoff: A+B x3, A+C x2, D+E x2, B alone. After: A+B, A+C+E, D+C, E+F(new).

    Bestsellers before the cutoff: A (5 orders), B (4), C (2), D (2), E (2).
    Cases (order, product sold before): (AB, A), (AB, B), (ACE, A), (ACE, C), (ACE, E), (DC, D), (DC, C);
    F was never sold before, so (EF, E) counts and (EF, F) does not: 8 cases.
    Suggestions (min_count 2): A -> B, C; B -> A; C -> A; D -> E; E -> D.
    - (AB, A): B found: hit 1, recall 1/1.  (AB, B): A found: 1, 1.
    - (ACE, A): C found of {C, E}: 1, 1/2.  (ACE, C): A found of {A, E}: 1, 1/2.
    - (ACE, E): D only: 0, 0.  (DC, D): E only: 0, 0.  (DC, C): A only: 0, 0.  (EF, E): 0, 0.
    hit = 4/8, recall = (1 + 1 + 0.5 + 0.5) / 8.
    Bestsellers (top 10 other than p: all of A..E): every case with an other product sold before is a hit;
    (EF, E): F never sold: miss. Recall: (AB,A) 1, (AB,B) 1, (ACE,*) 1 each (2/2), (DC,*) 1 each, (EF,E) 0.
    """
    a, b, c, d, e, f = (ProductFactory(sku=sku) for sku in "ABCDEF")
    cutoff = datetime.date(2026, 5, 1)
    before = NOW - datetime.timedelta(days=60)
    baskets_create([[a, b]] * 3 + [[a, c]] * 2 + [[d, e]] * 2 + [[b]], ordered_at=before)
    baskets_create([[a, b], [a, c, e], [d, c], [e, f]], ordered_at=NOW)
    result = mining_backtest(cutoff=cutoff, overrides=LOOSE)
    context = result.pop("context")
    assert result == {
        "hit_at_10": 4 / 8,
        "recall_at_10": 3 / 8,
        "cases": 8,
        "baselines": {
            "bestsellers": {"hit_at_10": 7 / 8, "recall_at_10": 7 / 8},
            "co_count": {"hit_at_10": 4 / 8, "recall_at_10": 3 / 8},
        },
    }
    assert (context["cutoff"], context["train_orders"], context["test_orders"]) == ("2026-05-01", 8, 4)


def test_a_run_marked_failed_while_alive_discards_its_result(monkeypatch, specialist):
    """Marking a run failed that was in fact still working: its store refuses to commit
    (RunLost), the suggestions stay as the previous run left them."""
    simple_history()
    first = recompute()
    before = pairs()
    baskets_create([[ProductFactory(sku="E"), ProductFactory(sku="F")]] * 3)
    real_store = recompute_module.suggestions_store

    def store_after_being_marked(*, run, **kwargs):
        assert runs_module.mining_run_mark_failed(run_id=run.pk, actor=specialist) is True
        return real_store(run=run, **kwargs)

    monkeypatch.setattr(recompute_module, "suggestions_store", store_after_being_marked)
    run = recompute()
    assert run.status == MiningRun.Status.FAILED
    assert run.error.startswith("Marked failed by specialist at ")
    assert pairs() == before
    assert set(Suggestion.objects.values_list("last_run_id", flat=True)) == {first.pk}
    assert runs_module.mining_run_mark_failed(run_id=run.pk, actor=specialist) is False
