"""The Celery tasks: thin, enqueued on commit, and through a real broker and worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from merchandising import tasks
from merchandising.models import MiningRun, Suggestion
from merchandising.services import mining_run_create, mining_run_request
from tests.factories import ProductFactory, UserFactory
from tests.merchandising.factories import CustomerAccountFactory, baskets_create, pairs

ROOT = Path(__file__).resolve().parents[2]
LOOSE = {"min_count": 2, "min_confidence": 0.0, "min_lift": 0.0}


@pytest.fixture
def in_process(settings):
    """Tasks called directly decide on in-process mining (no chord to a broker)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True


def history():
    a, b, c, d = (ProductFactory(sku=sku) for sku in "ABCD")
    baskets_create([[a, b]] * 3 + [[a, b, c], [a, c], [d]])
    baskets_create([[b, c, d]] * 2, account=CustomerAccountFactory())


def test_task_options():
    for task in (
        tasks.recompute_suggestions,
        tasks.recompute_suggestions_scheduled,
        tasks.mine_suggestions_block,
        tasks.store_suggestions,
    ):
        assert task.acks_late is True
        assert (task.time_limit, task.soft_time_limit) == (
            settings.CELERY_TASK_TIME_LIMIT,
            settings.CELERY_TASK_SOFT_TIME_LIMIT,
        )
        assert getattr(task, "autoretry_for", ()) == ()  # no automatic retries: a failed run is recorded
    assert tasks.recompute_suggestions.name == "merchandising.recompute_suggestions"


@pytest.mark.django_db
def test_task_runs_the_queued_run(in_process):
    history()
    run = mining_run_create(trigger=MiningRun.Trigger.MANUAL, overrides=LOOSE)
    assert tasks.recompute_suggestions.apply(args=[run.pk]).get() == "succeeded"
    run.refresh_from_db()
    assert (run.status, run.suggestions_new) == (MiningRun.Status.SUCCEEDED, Suggestion.objects.count())
    assert run.suggestions_new == 10
    # Delivered again (acks_late after a lost acknowledgement): nothing happens twice.
    assert tasks.recompute_suggestions.apply(args=[run.pk]).get() == "succeeded"
    assert MiningRun.objects.get(pk=run.pk).finished_at == run.finished_at


@pytest.mark.django_db
def test_task_returns_quietly_when_the_run_is_gone(in_process):
    assert tasks.recompute_suggestions.apply(args=[12345]).get() is None
    assert MiningRun.objects.count() == 0
    assert tasks.mine_suggestions_block.apply(args=[12345, 0, 10]).get() is None
    assert tasks.store_suggestions.apply(args=[[], 12345]).get() is None


@pytest.mark.django_db
def test_scheduled_task_creates_a_schedule_run(in_process):
    history()
    assert tasks.recompute_suggestions_scheduled.apply().get() == "succeeded"
    run = MiningRun.objects.get()
    assert (run.trigger, run.started_by, run.status) == (MiningRun.Trigger.SCHEDULE, None, MiningRun.Status.SUCCEEDED)
    assert run.parameters["min_count"] == 3  # the stored settings


@pytest.mark.django_db
def test_the_button_enqueues_after_commit(monkeypatch, django_capture_on_commit_callbacks):
    user = UserFactory()
    queued = []
    monkeypatch.setattr(tasks.recompute_suggestions, "delay", lambda run_id: queued.append(run_id))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = mining_run_request(actor=user)
    assert queued == []  # nothing is sent before the run row is committed
    assert (run.status, run.trigger, run.started_by) == (MiningRun.Status.QUEUED, MiningRun.Trigger.MANUAL, user)
    assert len(callbacks) == 1
    callbacks[0]()
    assert queued == [run.pk]


def _test_database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.postgres
@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_recompute_through_a_real_broker_and_worker():
    """The worker is another process on the same (committed) test database. With block_size 1
    the coordinator fans the four blocks out as a chord on the same queue; the chord's body
    stores the result."""
    history()
    run = mining_run_create(trigger=MiningRun.Trigger.MANUAL, overrides={**LOOSE, "block_size": 1})
    queue = f"test-mining-{uuid.uuid4().hex[:8]}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue, "--loglevel=WARNING",
         "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "DATABASE_URL": _test_database_url()},
    )  # fmt: skip
    try:
        result = tasks.recompute_suggestions.apply_async(args=[run.pk], queue=queue)
        assert result.get(timeout=60) == "running"  # the blocks went out as a chord
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.status != MiningRun.Status.RUNNING:
                break
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert run.status == MiningRun.Status.SUCCEEDED, run.error
    assert (run.orders, run.lines, run.products, run.suggestions_new, run.progress) == (8, 18, 4, 10, 100)
    found = {key: (value["co_count"], value["accounts"], value["status"]) for key, value in pairs().items()}
    assert found == {
        ("A", "B"): (4, 1, "pending"),
        ("B", "A"): (4, 1, "pending"),
        ("A", "C"): (2, 1, "pending"),
        ("C", "A"): (2, 1, "pending"),
        ("B", "C"): (3, 2, "pending"),
        ("C", "B"): (3, 2, "pending"),
        ("B", "D"): (2, 1, "pending"),
        ("D", "B"): (2, 1, "pending"),
        ("C", "D"): (2, 1, "pending"),
        ("D", "C"): (2, 1, "pending"),
    }


@pytest.mark.parametrize(
    ("eager", "backend", "expected"),
    [
        (True, "redis://127.0.0.1:6379/1", False),
        (False, None, False),
        (False, "rpc://", False),  # rpc cannot run chords: blocks stay in-process
        (False, "redis://127.0.0.1:6379/1", True),
    ],
)
def test_blocks_go_to_workers_only_with_a_chord_capable_backend(settings, eager, backend, expected):
    from merchandising.tasks import _workers_available

    settings.CELERY_TASK_ALWAYS_EAGER = eager
    settings.CELERY_RESULT_BACKEND = backend
    assert _workers_available() is expected
