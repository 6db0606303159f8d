"""A real Celery worker on Redis, SIGKILLed at several points of a mining run.

The worker (tests/merchandising/killable_worker.py: the project's app plus pause points) runs
on the committed test database with a 1 s heartbeat, so a run is abandoned after 2 s. For each
kill point, for a run mined in the worker's process and (mining, storing) for a run spread over
block tasks (a chord), the pool process is killed while paused there; the worker rejects the message
and Celery delivers it again at once. Then the whole worker is killed (no redelivery until the
visibility timeout): the sweep fails the run and queues it again, and a new worker finishes
it. Last, a run whose worker dies on every delivery ends failed at the redelivery cap. Kills
per point: loading 2, mining 5, storing 3. All
along a reader thread counts the published links. The figures (trials, converged, seconds from
the kill to the finished run) are printed; docs/operations.md quotes them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.db import connections

from config.celery import app
from merchandising import tasks
from merchandising.models import LinkType, MiningRun, PublishedLink, Suggestion
from merchandising.services import link_add, links_publish, mining_run_create
from merchandising.services.runs import mining_runs_sweep
from tests.factories import ProductFactory, UserFactory
from tests.merchandising.factories import CustomerAccountFactory, baskets_create, pairs
from tests.merchandising.test_tasks import LOOSE, ROOT, _test_database_url

pytestmark = [pytest.mark.postgres, pytest.mark.broker, pytest.mark.django_db(transaction=True)]

HEARTBEAT, ABANDONED_AFTER = 1, 2  # seconds, heartbeats: a dead run is abandoned after 2 s
IN_PROCESS, DISTRIBUTED = {}, {"block_size": 1}  # 4 products: one block, or 4 block tasks
WAIT = 30  # seconds, for any one step; a step normally takes well under 2


class Worker:
    def __init__(self, queue: str, folder: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.merchandising.killable_worker", "worker",
             "--concurrency=1", "-P", "prefork", "-Q", queue, "--loglevel=ERROR",
             "--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "config.settings_test",
                "DATABASE_URL": _test_database_url(),
                "MINING_HEARTBEAT_SECONDS": str(HEARTBEAT),
                "MINING_ABANDONED_AFTER_HEARTBEATS": str(ABANDONED_AFTER),
                "MINING_THREADS": "1",
                "MINING_KILL_DIR": folder,
            },
        )  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


class Reader(threading.Thread):
    """Polls the published links every 20 ms, as the webshop would, on its own connection."""

    def __init__(self):
        super().__init__(daemon=True)
        self.counts: set[int] = set()
        self.reads = 0
        self.done = threading.Event()

    def run(self):
        try:
            while not self.done.wait(0.02):
                self.counts.add(PublishedLink.objects.published().count())
                self.reads += 1
        finally:
            connections.close_all()


def wait_for(predicate, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def arm(folder: Path, point: str) -> None:
    (folder / f"pause-{point}").touch()


def paused_pid(folder: Path, point: str) -> int:
    """The pid of the pool process paused at ``point`` (the marker is removed)."""
    marker = wait_for(lambda: next(folder.glob(f"at-{point}.*"), None), f"a task paused at {point}")
    marker.unlink()
    return int(marker.name.rsplit(".", 1)[1])


def finished(run: MiningRun) -> MiningRun:
    def done():
        run.refresh_from_db()
        return run.status not in (MiningRun.Status.QUEUED, MiningRun.Status.RUNNING)

    wait_for(done, f"run #{run.pk} to finish")
    return run


def test_killed_workers_never_block_the_recompute_and_runs_converge(settings, monkeypatch, capsys):
    settings.MINING_HEARTBEAT_SECONDS, settings.MINING_ABANDONED_AFTER_HEARTBEATS = HEARTBEAT, ABANDONED_AFTER
    a, b, c, d = (ProductFactory(sku=sku) for sku in "ABCD")
    baskets_create([[a, b]] * 3 + [[a, b, c], [a, c], [d]])
    baskets_create([[b, c, d]] * 2, account=CustomerAccountFactory())
    user = UserFactory()
    link_add(source=a, target=b, link_type=LinkType.ACCESSORY, actor=user)
    link_add(source=b, target=c, link_type=LinkType.ACCESSORY, actor=user)
    links_publish(actor=user)
    queue = f"test-kill-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(  # the sweep's requeue goes to the test worker's queue
        tasks.recompute_suggestions,
        "delay",
        lambda run_id: tasks.recompute_suggestions.apply_async([run_id], queue=queue),
    )
    folder = Path(tempfile.mkdtemp(prefix="worker-kill-"))
    reader = Reader()
    reader.start()
    worker = Worker(queue, str(folder))
    figures: dict[str, list[float]] = {}
    trials = converged = 0

    def start(parameters: dict) -> MiningRun:
        Suggestion.objects.all().delete()  # each run must rebuild everything itself
        run = mining_run_create(trigger=MiningRun.Trigger.MANUAL, overrides={**LOOSE, **parameters})
        tasks.recompute_suggestions.apply_async([run.pk], queue=queue)
        return run

    def converges(run: MiningRun, killed_at: float, label: str) -> None:
        nonlocal trials, converged
        finished(run)
        figures.setdefault(label, []).append(time.monotonic() - killed_at)
        trials += 1
        assert run.status == MiningRun.Status.SUCCEEDED, run.error
        assert (pairs(), run.suggestions_new) == (clean, len(clean))
        assert MiningRun.objects.filter(status=MiningRun.Status.RUNNING).count() == 0
        converged += 1

    try:
        assert not app.conf.task_always_eager  # every task goes to the worker, none runs here
        reference = finished(start(IN_PROCESS))
        assert reference.status == MiningRun.Status.SUCCEEDED, reference.error
        clean = pairs()
        assert len(clean) == 10
        assert finished(start(DISTRIBUTED)).status == MiningRun.Status.SUCCEEDED
        assert pairs() == clean

        # 1. The pool process is killed; its message comes again at once and owns the run.
        # (Loading is the same code in both: the run's own task loads before it sends blocks.)
        pool_kills = [("loading", "in one task", IN_PROCESS)] + [
            (point, mode, parameters)
            for point in ("mining", "storing")
            for mode, parameters in (("in one task", IN_PROCESS), ("over block tasks", DISTRIBUTED))
        ]
        for point, mode, parameters in pool_kills:
            arm(folder, point)
            run = start(parameters)
            pid = paused_pid(folder, point)
            os.kill(pid, signal.SIGKILL)
            converges(run, time.monotonic(), f"{point}, {mode}")
            # The run's own task was killed: its redelivery took over (attempt 2). A block or the
            # store task was killed: it was done again within the first attempt.
            assert run.attempt == (2 if parameters is IN_PROCESS else 1)

        # 2. The whole worker is killed: nothing is redelivered before the visibility timeout.
        # The run's heartbeat stops; the sweep fails it and queues it again for a new worker.
        for point in ("loading", "storing"):
            arm(folder, point)
            run = start(IN_PROCESS)
            pid = paused_pid(folder, point)
            killed_at = time.monotonic()
            worker.process.kill()
            os.kill(pid, signal.SIGKILL)
            worker.process.wait(timeout=WAIT)
            worker = Worker(queue, str(folder))
            retry = wait_for(lambda run=run: mining_runs_sweep() or None, f"the sweep to abandon run #{run.pk}")
            assert [r.retry_of_id for r in retry] == [run.pk]
            run.refresh_from_db()
            assert run.status == MiningRun.Status.FAILED
            assert run.error.endswith(f"(worker lost?). Queued again as run #{retry[0].pk}.")
            converges(retry[0], killed_at, f"{point}, whole worker (sweep)")

        # 3. A task whose worker dies on every delivery: failed at the cap, not looping.
        run = start(IN_PROCESS)
        kills = 0

        def paused_or_ended():
            run.refresh_from_db()
            return next(folder.glob("at-mining.*"), None) or run.status == MiningRun.Status.FAILED

        while True:
            arm(folder, "mining")
            marker = wait_for(paused_or_ended, f"run #{run.pk} to pause or fail")
            if marker is True:
                break  # the last delivery was refused before it ran
            marker.unlink()
            os.kill(int(marker.name.rsplit(".", 1)[1]), signal.SIGKILL)
            kills += 1
            assert kills <= settings.CELERY_MAX_DELIVERIES
        (folder / "pause-mining").unlink()
        assert kills == settings.CELERY_MAX_DELIVERIES
        assert run.status == MiningRun.Status.FAILED
        assert run.error.startswith(
            f"Gave up: task merchandising.recompute_suggestions was delivered {kills + 1} times"
        )
        time.sleep(HEARTBEAT)  # not looping: no further delivery, no further attempt
        assert mining_runs_sweep() == []  # failed at the cap: never queued again
        run.refresh_from_db()
        assert (run.status, run.attempt) == (MiningRun.Status.FAILED, kills)
        assert not list(folder.glob("at-*"))
    finally:
        reader.done.set()
        reader.join(timeout=WAIT)
        worker.stop()

    assert MiningRun.objects.filter(status=MiningRun.Status.RUNNING).count() == 0
    assert (reader.counts, reader.reads > 100) == ({2}, True)  # never empty, never half
    assert (trials, converged) == (7, 7)  # and 3 more kills at the cap
    with capsys.disabled():
        print(f"\nworker kills: {trials} trials, {converged} converged, {reader.reads} reads of the published links")
        for label, seconds in figures.items():
            print(f"  {label}: recovered in {', '.join(f'{s:.2f} s' for s in seconds)}")
