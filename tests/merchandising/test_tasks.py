"""The Celery tasks: thin, enqueued on commit, and through a real broker and worker."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from config.celery import app
from merchandising import tasks
from merchandising.models import MiningRun, Suggestion
from merchandising.services import mining_run_create, mining_run_request
from merchandising.services.runs import (
    BLOCKS_PHASE,
    RunHeartbeat,
    RunLost,
    abandoned_after,
    mining_parameters,
    run_claim,
    run_progress,
)
from tests.factories import ProductFactory, UserFactory
from tests.merchandising.factories import CustomerAccountFactory, baskets_create, pairs

ROOT = Path(__file__).resolve().parents[2]
LOOSE = {"min_count": 2, "min_confidence": 0.0, "min_lift": 0.0}


@pytest.fixture(autouse=True)
def _no_delivery_counts():
    """The redelivery cap counts deliveries per task id in the cache (Redis on the service run,
    which outlives a test run); the tests below reuse fixed task ids, so each starts from zero."""
    cache.clear()
    yield
    cache.clear()


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
        assert not app.conf.task_always_eager  # sent to the worker, not run in this process
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


# --- owners, abandonment, the sweep, the redelivery cap -----------------------------------------


def _running_run(*, heartbeat_age: float, task_id: str = "", trigger=MiningRun.Trigger.MANUAL, **fields):
    from django.utils import timezone

    beat = timezone.now() - datetime.timedelta(seconds=heartbeat_age)
    return MiningRun.objects.create(
        status=MiningRun.Status.RUNNING,
        trigger=trigger,
        heartbeat_at=beat,
        started_at=beat,
        task_id=task_id,
        attempt=fields.pop("attempt", 1),
        parameters=mining_parameters(overrides=LOOSE),
        **fields,
    )


def test_abandoned_after_is_a_few_heartbeats(settings):
    settings.MINING_HEARTBEAT_SECONDS = 7
    settings.MINING_ABANDONED_AFTER_HEARTBEATS = 4
    assert abandoned_after() == datetime.timedelta(seconds=28)


@pytest.mark.django_db
def test_the_redelivered_message_takes_its_run_over_whatever_the_heartbeat(in_process):
    """The issue's case: the worker died at 80%, the heartbeat is a second old, and the same
    message comes again. It owns the run: it restarts it at once and finishes it."""
    history()
    run = _running_run(heartbeat_age=1, task_id="task-1", phase="counting accounts", progress=80)
    assert tasks.recompute_suggestions.apply(args=[run.pk], task_id="task-1").get() == "succeeded"
    run.refresh_from_db()
    assert (run.status, run.attempt, run.task_id, run.suggestions_new) == (MiningRun.Status.SUCCEEDED, 2, "task-1", 10)


@pytest.mark.django_db
def test_another_message_for_a_live_run_does_nothing(in_process):
    history()
    run = _running_run(heartbeat_age=1, task_id="task-1", progress=80)
    assert tasks.recompute_suggestions.apply(args=[run.pk], task_id="task-2").get() == "running"
    run.refresh_from_db()
    assert (run.status, run.attempt, run.task_id, run.progress) == (MiningRun.Status.RUNNING, 1, "task-1", 80)
    assert Suggestion.objects.count() == 0


@pytest.mark.django_db
def test_an_earlier_attempt_can_no_longer_write(in_process):
    """A take-over raises the attempt: the worker of the earlier attempt, if it was alive after
    all, gets RunLost at its next progress write and its store would match no row."""
    run = _running_run(heartbeat_age=1, task_id="task-1")
    old = MiningRun.objects.get(pk=run.pk)
    assert run_claim(run=run, task_id="task-1") is True
    assert run.attempt == 2
    with pytest.raises(RunLost, match=f"Run #{run.pk} is no longer running."):
        run_progress(run=old, phase="scoring", progress=75)
    run.refresh_from_db()
    assert (run.phase, run.progress) == ("starting", 0)


@pytest.mark.django_db
def test_a_stopped_heartbeat_lets_the_next_run_start(in_process, settings):
    settings.MINING_HEARTBEAT_SECONDS, settings.MINING_ABANDONED_AFTER_HEARTBEATS = 10, 3
    history()
    dead = _running_run(heartbeat_age=31, task_id="task-1")
    run = mining_run_create(trigger=MiningRun.Trigger.MANUAL, overrides=LOOSE)
    assert tasks.recompute_suggestions.apply(args=[run.pk]).get() == "succeeded"
    dead.refresh_from_db()
    assert dead.status == MiningRun.Status.FAILED
    assert dead.error.startswith("Abandoned: no progress since before ")
    assert MiningRun.objects.filter(retry_of=dead).count() == 0  # the new run is the one that starts


@pytest.mark.django_db
def test_the_sweep_fails_abandoned_runs_and_queues_each_again_once(
    in_process, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.MINING_HEARTBEAT_SECONDS, settings.MINING_ABANDONED_AFTER_HEARTBEATS = 10, 3
    history()
    user = UserFactory()
    sent = []
    monkeypatch.setattr(tasks.recompute_suggestions, "delay", lambda run_id: sent.append(run_id))
    dead = _running_run(heartbeat_age=31, task_id="task-1", started_by=user)
    live = MiningRun.objects.create(status=MiningRun.Status.QUEUED)  # queued runs are not the sweep's
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_mining_runs.apply().get() == [dead.pk + 2]
    dead.refresh_from_db()
    retry = MiningRun.objects.get(retry_of=dead)
    assert retry.pk == dead.pk + 2
    assert dead.status == MiningRun.Status.FAILED
    assert dead.error.endswith(f"(worker lost?). Queued again as run #{retry.pk}.")
    assert (retry.status, retry.trigger, retry.started_by, retry.parameters, retry.task_id) == (
        MiningRun.Status.QUEUED,
        MiningRun.Trigger.MANUAL,
        user,
        dead.parameters,
        "",
    )
    assert sent == [retry.pk]
    assert MiningRun.objects.get(pk=live.pk).status == MiningRun.Status.QUEUED
    # Nothing is abandoned any more: a second sweep does nothing.
    assert tasks.sweep_mining_runs.apply().get() == []
    # The retry abandoned in its turn is only failed: at most one requeue per original run.
    MiningRun.objects.filter(pk=retry.pk).update(status=MiningRun.Status.RUNNING, heartbeat_at=dead.heartbeat_at)
    assert tasks.sweep_mining_runs.apply().get() == []
    retry.refresh_from_db()
    assert (retry.status, retry.error.endswith("(worker lost?).")) == (MiningRun.Status.FAILED, True)
    assert sent == [retry.pk]


@pytest.mark.django_db
def test_the_sweep_leaves_live_runs_and_only_fails_a_command_run(in_process, settings, monkeypatch):
    settings.MINING_HEARTBEAT_SECONDS, settings.MINING_ABANDONED_AFTER_HEARTBEATS = 10, 3
    sent = []
    monkeypatch.setattr(tasks.recompute_suggestions, "delay", lambda run_id: sent.append(run_id))
    live = _running_run(heartbeat_age=29)
    assert tasks.sweep_mining_runs.apply().get() == []
    assert MiningRun.objects.get(pk=live.pk).status == MiningRun.Status.RUNNING
    MiningRun.objects.filter(pk=live.pk).update(trigger=MiningRun.Trigger.COMMAND)
    settings.MINING_ABANDONED_AFTER_HEARTBEATS = 2
    assert tasks.sweep_mining_runs.apply().get() == []
    assert MiningRun.objects.get(pk=live.pk).status == MiningRun.Status.FAILED
    assert (MiningRun.objects.count(), sent) == (1, [])


@pytest.mark.django_db
def test_a_run_whose_blocks_wait_in_the_queue_is_given_the_task_time_limit(in_process, settings, monkeypatch):
    """Blocks waiting behind other work write no heartbeat: that is not a lost worker."""
    settings.MINING_HEARTBEAT_SECONDS, settings.MINING_ABANDONED_AFTER_HEARTBEATS = 10, 3
    settings.CELERY_TASK_TIME_LIMIT = 600
    monkeypatch.setattr(tasks.recompute_suggestions, "delay", lambda run_id: None)
    waiting = _running_run(heartbeat_age=599, phase=f"{BLOCKS_PHASE} (4)")  # 20 heartbeats silent
    assert tasks.sweep_mining_runs.apply().get() == []
    assert MiningRun.objects.get(pk=waiting.pk).status == MiningRun.Status.RUNNING
    MiningRun.objects.filter(pk=waiting.pk).update(phase="counting accounts")  # its store task started, then died
    assert tasks.sweep_mining_runs.apply().get() == [waiting.pk + 1]
    assert MiningRun.objects.get(pk=waiting.pk).status == MiningRun.Status.FAILED


@pytest.mark.django_db
def test_a_run_whose_blocks_are_out_past_the_task_time_limit_is_abandoned(in_process, settings, monkeypatch):
    settings.MINING_HEARTBEAT_SECONDS, settings.MINING_ABANDONED_AFTER_HEARTBEATS = 10, 3
    settings.CELERY_TASK_TIME_LIMIT = 600
    monkeypatch.setattr(tasks.recompute_suggestions, "delay", lambda run_id: None)
    lost = _running_run(heartbeat_age=601, phase=f"{BLOCKS_PHASE} (4)")
    assert tasks.sweep_mining_runs.apply().get() == [lost.pk + 1]
    assert MiningRun.objects.get(pk=lost.pk).status == MiningRun.Status.FAILED


@pytest.mark.django_db
@pytest.mark.parametrize("task_name", ["recompute_suggestions", "mine_suggestions_block", "store_suggestions"])
def test_past_the_redelivery_cap_the_run_is_failed(in_process, task_name):
    run = _running_run(heartbeat_age=1, task_id="task-1")
    task = getattr(tasks, task_name)
    args = {
        "recompute_suggestions": [run.pk],
        "mine_suggestions_block": [run.pk, 0, 1, 1],
        "store_suggestions": [[], run.pk, 1],
    }[task_name]
    task_id = f"capped-{uuid.uuid4()}"
    cache.set(f"celery:deliveries:{task_id}", settings.CELERY_MAX_DELIVERIES)  # the worker died that often
    refused = task.apply(args=args, task_id=task_id)
    assert refused.state == "REJECTED"
    run.refresh_from_db()
    assert run.status == MiningRun.Status.FAILED
    assert run.error == (
        f"Gave up: task merchandising.{task_name} was delivered {settings.CELERY_MAX_DELIVERIES + 1} times and its "
        "worker died every time (killed, out of memory?); the limit is "
        f"CELERY_MAX_DELIVERIES={settings.CELERY_MAX_DELIVERIES}."
    )


@pytest.mark.django_db
@pytest.mark.parametrize("task_name", ["mine_suggestions_block", "store_suggestions"])
def test_a_capped_task_of_an_earlier_attempt_leaves_the_run_alone(in_process, task_name):
    run = _running_run(heartbeat_age=1, task_id="task-2", attempt=2)  # taken over by a redelivery
    args = {"mine_suggestions_block": [run.pk, 0, 1, 1], "store_suggestions": [[], run.pk, 1]}[task_name]
    task_id = f"capped-{uuid.uuid4()}"
    cache.set(f"celery:deliveries:{task_id}", settings.CELERY_MAX_DELIVERIES)
    assert getattr(tasks, task_name).apply(args=args, task_id=task_id).state == "REJECTED"
    run.refresh_from_db()
    assert (run.status, run.attempt, run.error) == (MiningRun.Status.RUNNING, 2, "")


@pytest.mark.django_db
def test_a_redelivered_scheduled_task_takes_over_the_run_it_created(in_process):
    history()
    first = tasks.recompute_suggestions_scheduled.apply(task_id="beat-1")
    assert first.get() == "succeeded"
    run = MiningRun.objects.get()
    assert (run.task_id, run.trigger) == ("beat-1", MiningRun.Trigger.SCHEDULE)
    # Killed at the very end (before the acknowledgement): the redelivery finds its own
    # finished run and does not start a second one.
    assert tasks.recompute_suggestions_scheduled.apply(task_id="beat-1").get() == "succeeded"
    assert MiningRun.objects.count() == 1
    # Past the cap, the run this message created is failed.
    MiningRun.objects.filter(pk=run.pk).update(status=MiningRun.Status.RUNNING)
    cache.set("celery:deliveries:beat-1", settings.CELERY_MAX_DELIVERIES)
    assert tasks.recompute_suggestions_scheduled.apply(task_id="beat-1").state == "REJECTED"
    assert MiningRun.objects.get(pk=run.pk).status == MiningRun.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_beats_and_stops_when_the_run_is_not_ours(settings):
    settings.MINING_HEARTBEAT_SECONDS = 1
    run = _running_run(heartbeat_age=100)
    first = run.heartbeat_at
    with RunHeartbeat(run_id=run.pk, attempt=1) as heartbeat:
        deadline = time.monotonic() + 10
        while MiningRun.objects.get(pk=run.pk).heartbeat_at == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert MiningRun.objects.get(pk=run.pk).heartbeat_at > first
        MiningRun.objects.filter(pk=run.pk).update(status=MiningRun.Status.FAILED)
        ended = MiningRun.objects.get(pk=run.pk).heartbeat_at
        while heartbeat._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (heartbeat._thread.is_alive(), heartbeat.lost) == (False, True)
    assert MiningRun.objects.get(pk=run.pk).heartbeat_at == ended  # nothing written after the loss
    with RunHeartbeat(run_id=run.pk, attempt=1) as heartbeat:
        pass
    assert heartbeat._thread.is_alive() is False  # ended with the block, before its first beat
