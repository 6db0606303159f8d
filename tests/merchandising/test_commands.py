"""mine_suggestions, export_suggestions, backtest_mining and setup_mining_schedule."""

from __future__ import annotations

import datetime
import io
import json
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from merchandising.mining import DEFAULT_SCORE
from merchandising.models import MiningRun, Suggestion, SuggestionStatus
from tests.factories import ProductFactory
from tests.merchandising.factories import NOW, SuggestionFactory, baskets_create

pytestmark = pytest.mark.django_db

LOOSE_OPTIONS = ["--min-count", "2", "--min-confidence", "0", "--min-lift", "0"]


def run_command(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def simple_history():
    a, b, c, d = (ProductFactory(sku=sku) for sku in "ABCD")
    baskets_create([[a, b]] * 3 + [[a, b, c], [a, c], [d]])
    return a, b, c, d


# --- mine_suggestions --------------------------------------------------------------------------


def test_mine_suggestions_prints_the_run_summary():
    simple_history()
    output = run_command("mine_suggestions", *LOOSE_OPTIONS).splitlines()
    run = MiningRun.objects.get()
    assert re.fullmatch(rf"Run #{run.pk}: succeeded in \d+\.\d s", output[0])
    assert output[1:] == [
        "  orders:        6",
        "  lines:         12",
        "  products:      4",
        "  pairs scored:  4",
        "  suggestions:   4 new, 0 updated, 0 unchanged, 0 gone stale",
    ]
    assert run.trigger == MiningRun.Trigger.COMMAND
    output = run_command("mine_suggestions", *LOOSE_OPTIONS, "--top-k", "1").splitlines()
    assert output[-1] == "  suggestions:   0 new, 0 updated, 3 unchanged, 1 gone stale"  # A keeps one target of two


def test_mine_suggestions_options_override_the_stored_settings_for_one_run():
    a, b, c, d = simple_history()
    baskets_create([[c, d]] * 2, ordered_at=NOW + datetime.timedelta(days=40))
    run_command(
        "mine_suggestions", "--min-count", "2", "--min-confidence", "0.5", "--min-lift", "1.1", "--top-k", "1",
        "--before", "2026-07-01",
    )  # fmt: skip
    run = MiningRun.objects.get()
    assert run.parameters == {
        "min_count": 2,
        "min_confidence": 0.5,
        "min_lift": 1.1,
        "top_k": 1,
        "max_basket_size": 50,
        "lookback_days": 730,
        "half_life_days": 180,
        "score": DEFAULT_SCORE,
        "block_size": 2048,
        "before": "2026-07-01",
    }
    # Before July only: C+D (July 11) is not mined; A->C has confidence 0.4 < 0.5.
    assert sorted(Suggestion.objects.values_list("source__sku", "target__sku")) == [("A", "B"), ("B", "A"), ("C", "A")]
    run_command("mine_suggestions", "--min-count", "2")
    assert MiningRun.objects.latest("pk").parameters["min_confidence"] == 0.02  # the stored default again


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--before", "2026-13-01"], "--before '2026-13-01' is not a date (YYYY-MM-DD)"),
        (["--min-confidence", "2"], "min_confidence must be in [0, 1], not 2.0"),
        (["--top-k", "0"], None),  # 0 means "no limit": accepted
    ],
)
def test_mine_suggestions_rejects_bad_options(args, message):
    if message is None:
        run_command("mine_suggestions", *args)
        assert MiningRun.objects.get().parameters["top_k"] == 0
        return
    with pytest.raises(CommandError) as excinfo:
        run_command("mine_suggestions", *args)
    assert str(excinfo.value) == message
    assert MiningRun.objects.count() == 0


def test_mine_suggestions_reports_a_skipped_run():
    running = MiningRun.objects.create(status=MiningRun.Status.RUNNING, heartbeat_at=timezone.now())
    with pytest.raises(CommandError) as excinfo:
        run_command("mine_suggestions")
    skipped = MiningRun.objects.exclude(pk=running.pk).get()
    assert str(excinfo.value) == f"Run #{skipped.pk} skipped: Run #{running.pk} was running."


def test_mine_suggestions_reports_a_failed_run(monkeypatch):
    from merchandising.services import recompute

    def broken(**kwargs):
        raise OSError("database went away")

    monkeypatch.setattr(recompute, "order_history_load", broken)
    with pytest.raises(CommandError) as excinfo:
        run_command("mine_suggestions")
    run = MiningRun.objects.get()
    assert str(excinfo.value) == f"Run #{run.pk} failed: OSError: database went away"


# --- export_suggestions ----------------------------------------------------------------------------


def test_export_suggestions_writes_one_escaped_row_per_suggestion(tmp_path):
    drill = ProductFactory(sku="DRILL")
    bits = ProductFactory(sku="BITS")
    formula = ProductFactory(sku="=HYPERLINK(1)")  # not a valid SKU, but the export must not trust that
    SuggestionFactory(
        source=drill, target=bits, co_count=12, support=0.125, confidence=0.75, lift=3.5, jaccard=0.5,
        decayed_co_count=10.25, score=0.6, previous_co_count=10, accounts=4,
    )  # fmt: skip
    SuggestionFactory(
        source=drill, target=formula, co_count=3, support=0.03125, confidence=0.1, lift=1.25, jaccard=0.1,
        decayed_co_count=2.5, score=0.2, status=SuggestionStatus.REJECTED, reject_reason="unrelated", stale=True,
    )  # fmt: skip
    SuggestionFactory(
        source=bits, target=drill, co_count=12, support=0.125, confidence=1 / 3, lift=3.5, jaccard=0.5,
        decayed_co_count=10.25, score=0.6, status=SuggestionStatus.APPROVED,
    )  # fmt: skip
    target = tmp_path / "suggestions.csv"
    assert run_command("export_suggestions", str(target)) == f"Wrote 3 suggestions to {target}\n"
    assert target.read_bytes().decode("utf-8") == (
        "source_sku,target_sku,co_count,support,confidence,lift,score,status,stale,jaccard,decayed_co_count,"
        "previous_co_count,accounts,reject_reason\r\n"
        "BITS,DRILL,12,0.125,0.3333333333333333,3.5,0.6,approved,false,0.5,10.25,,0,\r\n"
        "DRILL,BITS,12,0.125,0.75,3.5,0.6,pending,false,0.5,10.25,10,4,\r\n"
        "DRILL,'=HYPERLINK(1),3,0.03125,0.1,1.25,0.2,rejected,true,0.1,2.5,,0,unrelated\r\n"
    )


def test_export_suggestions_to_standard_output():
    SuggestionFactory(source=ProductFactory(sku="A"), target=ProductFactory(sku="B"))
    output = run_command("export_suggestions", "-")
    assert output.splitlines()[1] == "A,B,5,0.1,0.5,2.0,0.4,pending,false,0.25,4.0,,0,"
    assert len(output.splitlines()) == 2


# --- backtest_mining -----------------------------------------------------------------------------


def backtest_history():
    """The history of test_services.test_backtest_on_a_tiny_hand_computed_history."""
    a, b, c, d, e, f = (ProductFactory(sku=sku) for sku in "ABCDEF")
    baskets_create([[a, b]] * 3 + [[a, c]] * 2 + [[d, e]] * 2 + [[b]], ordered_at=NOW - datetime.timedelta(days=60))
    baskets_create([[a, b], [a, c, e], [d, c], [e, f]], ordered_at=NOW)


def test_backtest_mining_json():
    backtest_history()
    output = run_command("backtest_mining", "--cutoff", "2026-05-01", "--json", *LOOSE_OPTIONS)
    assert json.loads(output) == {
        "hit_at_10": 0.5,
        "recall_at_10": 0.375,
        "cases": 8,
        "baselines": {
            "bestsellers": {"hit_at_10": 0.875, "recall_at_10": 0.875},
            "co_count": {"hit_at_10": 0.5, "recall_at_10": 0.375},
        },
    }
    assert MiningRun.objects.count() == 0 and Suggestion.objects.count() == 0  # a backtest stores nothing


def test_backtest_mining_table():
    backtest_history()
    output = run_command("backtest_mining", "--cutoff", "2026-05-01", *LOOSE_OPTIONS, "--score", "lift")
    assert output.splitlines() == [
        "Backtest at 2026-05-01: 8 orders before, 4 from it on, 8 cases",
        "ranking                        hit@10  recall@10",
        "configured (lift)              0.5000     0.3750",
        "bestsellers                    0.8750     0.8750",
        "co_count                       0.5000     0.3750",
    ]


def test_backtest_mining_rejects_a_bad_cutoff():
    with pytest.raises(CommandError) as excinfo:
        run_command("backtest_mining", "--cutoff", "May 1st")
    assert str(excinfo.value) == "--cutoff 'May 1st' is not a date (YYYY-MM-DD)"


# --- setup_mining_schedule -------------------------------------------------------------------------

DEFAULT_TIMING = "minute=30 hour=2 day_of_week=0 day_of_month=* month_of_year=* (Europe/Amsterdam)"


def test_setup_mining_schedule_is_idempotent_and_keeps_an_administrators_changes(settings):
    settings.TIME_ZONE = "Europe/Amsterdam"
    task = "merchandising.recompute_suggestions_scheduled"
    assert run_command("setup_mining_schedule") == (
        f"Created schedule 'Recompute suggestions': {DEFAULT_TIMING} -> {task}\n"
    )
    assert run_command("setup_mining_schedule") == (
        f"Kept schedule 'Recompute suggestions': {DEFAULT_TIMING}, enabled -> {task}\n"
    )
    periodic = PeriodicTask.objects.get(name="Recompute suggestions")
    assert (periodic.task, periodic.enabled, periodic.args, periodic.kwargs) == (task, True, "[]", "{}")
    crontab = periodic.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == (
        "30",
        "2",
        "0",
        "Europe/Amsterdam",
    )

    # An administrator moves it to Wednesdays 05:00 and switches it off in the admin.
    wednesday = CrontabSchedule.objects.create(minute="0", hour="5", day_of_week="3", timezone="Europe/Amsterdam")
    PeriodicTask.objects.filter(pk=periodic.pk).update(crontab=wednesday, enabled=False)
    output = run_command("setup_mining_schedule")
    assert output == (
        "Kept schedule 'Recompute suggestions': minute=0 hour=5 day_of_week=3 day_of_month=* month_of_year=* "
        f"(Europe/Amsterdam), disabled -> {task}\n"
    )
    periodic.refresh_from_db()
    assert (periodic.crontab_id, periodic.enabled) == (wednesday.pk, False)

    # A renamed task is repaired without touching the timing; --reset restores the default.
    PeriodicTask.objects.filter(pk=periodic.pk).update(task="merchandising.old_name")
    assert run_command("setup_mining_schedule").startswith("Repaired schedule 'Recompute suggestions': minute=0 hour=5")
    assert run_command("setup_mining_schedule", "--reset") == (
        f"Reset schedule 'Recompute suggestions': {DEFAULT_TIMING}, enabled -> {task}\n"
    )
    periodic.refresh_from_db()
    assert (periodic.crontab.hour, periodic.enabled, periodic.task) == ("2", True, task)
    assert PeriodicTask.objects.filter(name="Recompute suggestions").count() == 1
