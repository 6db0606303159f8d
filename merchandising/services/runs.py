"""Mining runs: parameters, creation, the single-flight claim, progress and failure."""

from __future__ import annotations

import datetime
import logging
import math
import threading
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.models import AuditEntry, Via
from audit.services import audit_record, audit_record_many, created_changes, instance_values
from merchandising.mining import DEFAULT_SCORE, MiningOptions
from merchandising.models import MiningRun, MiningSettings, actor_name

logger = logging.getLogger(__name__)

#: The parameters a run records, and that ``overrides`` may set.
PARAMETER_NAMES = (
    "min_count",
    "min_confidence",
    "min_lift",
    "top_k",
    "max_basket_size",
    "lookback_days",
    "half_life_days",
    "score",
    "block_size",
)
DEFAULT_BLOCK_SIZE = MiningOptions().block_size


#: Runs that came through the queue: an abandoned one is queued again once by the sweep. A
#: command's or the demo's run was started by someone watching a terminal; it is only failed.
REQUEUED_TRIGGERS = (MiningRun.Trigger.MANUAL, MiningRun.Trigger.SCHEDULE)
#: Who the audit trail names for what the periodic sweep does.
SWEEP_ACTOR = "task:sweep_mining_runs"


class RunLost(Exception):
    """The run is no longer ours: it was failed, or taken over by a later attempt."""


def abandoned_after() -> datetime.timedelta:
    """A running run whose heartbeat is older than this has lost its worker. A live run writes
    one every MINING_HEARTBEAT_SECONDS (RunHeartbeat), whatever phase it is in."""
    return datetime.timedelta(seconds=settings.MINING_HEARTBEAT_SECONDS * settings.MINING_ABANDONED_AFTER_HEARTBEATS)


#: The phase of a distributed run while its blocks are with the workers (see recompute._dispatch).
BLOCKS_PHASE = "mining blocks on the workers"


def _abandoned(now: datetime.datetime) -> Q:
    """Running runs whose worker is gone. Blocks that wait in the queue behind other work write
    no heartbeat, so a run whose blocks are out is given the task time limit (no block can run
    longer) instead of a few heartbeats; every other phase beats while it works."""
    silent = Q(heartbeat_at__isnull=True)
    beating = Q(heartbeat_at__lt=now - abandoned_after()) | silent
    queued_blocks = Q(heartbeat_at__lt=now - datetime.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)) | silent
    blocks_out = Q(phase__startswith=BLOCKS_PHASE)
    return Q(status=MiningRun.Status.RUNNING) & ((~blocks_out & beating) | (blocks_out & queued_blocks))


def _abandoned_error(now: datetime.datetime) -> str:
    stale_before = timezone.localtime(now - abandoned_after())
    return f"Abandoned: no progress since before {stale_before:%Y-%m-%d %H:%M:%S %Z} (worker lost?)."


def mining_parameters(*, overrides: dict[str, Any] | None = None, before: datetime.date | None = None) -> dict:
    """The stored defaults (MiningSettings) with ``overrides`` applied, as a run records them.

    Raises ValueError for an unknown name or a value the engine refuses.
    """
    stored = MiningSettings.load()
    parameters: dict[str, Any] = {
        "min_count": stored.min_count,
        "min_confidence": stored.min_confidence,
        "min_lift": stored.min_lift,
        "top_k": stored.top_k,
        "max_basket_size": stored.max_basket_size,
        "lookback_days": stored.lookback_days,
        "half_life_days": stored.half_life_days,
        "score": DEFAULT_SCORE,
        "block_size": DEFAULT_BLOCK_SIZE,
    }
    unknown = sorted(set(overrides or {}) - set(PARAMETER_NAMES))
    if unknown:
        raise ValueError(f"unknown mining parameters: {', '.join(unknown)}")
    parameters.update({key: value for key, value in (overrides or {}).items() if value is not None})
    parameters["before"] = before.isoformat() if before else None
    mining_options(parameters)  # validates
    return parameters


def mining_options(parameters: dict[str, Any]) -> MiningOptions:
    """The engine's options for recorded parameters. 0 means "no limit" for top_k,
    max_basket_size and lookback_days and "no decay" for half_life_days.

    The look-back window is applied by the query that loads the history (see
    ``merchandising.selectors.order_history_load``), so the engine gets none.
    """
    return MiningOptions(
        min_count=parameters["min_count"],
        min_confidence=parameters["min_confidence"],
        min_lift=parameters["min_lift"],
        top_k=parameters["top_k"] or None,
        max_basket_size=parameters["max_basket_size"] or None,
        lookback_days=None,
        half_life_days=parameters["half_life_days"] or math.inf,
        block_size=parameters.get("block_size") or DEFAULT_BLOCK_SIZE,
        score=parameters["score"],
    )


def run_before(run: MiningRun) -> datetime.date | None:
    before = run.parameters.get("before")
    return datetime.date.fromisoformat(before) if before else None


def mining_run_create(
    *,
    trigger: str,
    actor=None,
    overrides: dict[str, Any] | None = None,
    before: datetime.date | None = None,
    task_id: str = "",
) -> MiningRun:
    """A queued run with its parameters recorded; nothing is mined yet."""
    run = MiningRun(
        trigger=trigger,
        started_by=actor,
        started_by_name=actor_name(actor),
        task_id=task_id,
        parameters=mining_parameters(overrides=overrides, before=before),
        status=MiningRun.Status.QUEUED,
    )
    run.full_clean()
    run.save()
    audit_record(
        obj=run,
        action=AuditEntry.Action.CREATE,
        actor=actor if actor is not None else _MACHINE_STARTERS.get(trigger, run),
        changes=created_changes(instance_values(run, ["trigger", "status", "parameters", "started_by"])),
    )
    return run


#: Who starts a run that no user started: the command, or the run's own task (schedule).
_MACHINE_STARTERS = {MiningRun.Trigger.COMMAND: "command:mine_suggestions", MiningRun.Trigger.DEMO: "command:seed_demo"}


def _record_status(
    run_ids, *, old: str, new: str, actor, via: str | None = None, error: str = "", more: dict | None = None
) -> None:
    """History rows for runs moved from ``old`` to ``new`` by a conditional update (``more``:
    other changed fields, ``{field: [old, new]}``)."""
    changes = {"status": [old, new], **({"error": ["", error]} if error else {}), **(more or {})}
    audit_record_many(
        model=MiningRun,
        rows=[(pk, f"Run #{pk}", changes) for pk in run_ids],
        action=AuditEntry.Action.UPDATE,
        actor=actor,
        via=via,
    )


def mining_run_request(*, actor, trigger: str = MiningRun.Trigger.MANUAL) -> MiningRun:
    """The "Recompute now" button: a queued run, handed to a worker once it is committed."""
    from merchandising.tasks import recompute_suggestions

    with transaction.atomic():
        run = mining_run_create(trigger=trigger, actor=actor)
        transaction.on_commit(lambda: recompute_suggestions.delay(run.pk))
    return run


def run_claim(*, run: MiningRun, task_id: str | None = None) -> bool:
    """Move ``run`` to running, or mark it skipped when another run is running.

    The partial unique index on status="running" admits one running run: the conditional
    update is the claim, and an IntegrityError means someone else holds it. A running run
    whose heartbeat stopped (abandoned_after) is failed first, so it cannot block every later
    run. The run's owner takes it over at once, whatever its heartbeat says: the delivery of
    the task message that claimed it (``task_id``; Celery delivers it again when its worker
    died). Any delivery of the run's own task also takes it over once it is abandoned. Each
    claim raises ``attempt``, so an earlier attempt still alive can no longer write.
    Returns False when this run is not to be worked on (skipped, or not claimable).
    """
    now = timezone.now()
    error = _abandoned_error(now)
    with transaction.atomic():
        abandoned = MiningRun.objects.filter(_abandoned(now)).exclude(pk=run.pk)
        lost = list(abandoned.select_for_update().values_list("pk", flat=True))
        failed = MiningRun.objects.filter(_abandoned(now), pk__in=lost).update(
            status=MiningRun.Status.FAILED, finished_at=now, error=error
        )
        _record_status(lost, old=MiningRun.Status.RUNNING, new=MiningRun.Status.FAILED, actor=run, error=error)
    if failed:
        logger.warning("Failed %s abandoned mining run(s) before claiming run %s.", failed, run.pk)
    claimable = Q(status=MiningRun.Status.QUEUED) | _abandoned(now)
    if task_id:
        claimable |= Q(status=MiningRun.Status.RUNNING, task_id=task_id)
    try:
        with transaction.atomic():
            # What the claim changes, read from the locked row (a take-over: running -> running,
            # the attempt and owner are what change).
            locked = MiningRun.objects.select_for_update().filter(pk=run.pk)
            before = locked.values("status", "attempt", "task_id").first()
            claimed = (
                MiningRun.objects.filter(pk=run.pk)
                .filter(claimable)
                .update(
                    status=MiningRun.Status.RUNNING,
                    started_at=now,
                    heartbeat_at=now,
                    phase="starting",
                    progress=0,
                    error="",
                    task_id=task_id or "",
                    attempt=F("attempt") + 1,
                )
            )
            if claimed:
                more = {"attempt": [before["attempt"], before["attempt"] + 1]}
                if before["task_id"] != (task_id or ""):
                    more["task_id"] = [before["task_id"], task_id or ""]
                _record_status([run.pk], old=before["status"], new=MiningRun.Status.RUNNING, actor=run, more=more)
    except IntegrityError:
        running = MiningRun.objects.filter(status=MiningRun.Status.RUNNING).values_list("pk", flat=True).first()
        error = f"Run #{running} was running." if running else "Another run was running."
        with transaction.atomic():
            if MiningRun.objects.filter(pk=run.pk, status=MiningRun.Status.QUEUED).update(
                status=MiningRun.Status.SKIPPED, finished_at=now, phase="", error=error
            ):
                _record_status(
                    [run.pk], old=MiningRun.Status.QUEUED, new=MiningRun.Status.SKIPPED, actor=run, error=error
                )
        run.refresh_from_db()
        return False
    run.refresh_from_db()
    if claimed and run.attempt > 1:
        logger.warning("Mining run %s taken over (attempt %s, task %s).", run.pk, run.attempt, task_id)
    return bool(claimed)


class RunHeartbeat:
    """A background thread that writes the run's heartbeat every MINING_HEARTBEAT_SECONDS for
    as long as the ``with`` block lasts, so that a long phase (loading, a big block, the store)
    never looks abandoned. Each write is conditional on the run still being running in this
    attempt: once the run is no longer ours the thread stops, and it never writes after the
    block has ended (``__exit__`` joins it). Only the heartbeat: losing the run is noticed by
    the work itself (RunLost from run_progress or the store)."""

    def __init__(self, *, run_id: int, attempt: int) -> None:
        self.run_id, self.attempt = run_id, attempt
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"mining-run-{run_id}-heartbeat", daemon=True)

    def __enter__(self) -> RunHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.MINING_HEARTBEAT_SECONDS):
                try:
                    alive = MiningRun.objects.filter(
                        pk=self.run_id, status=MiningRun.Status.RUNNING, attempt=self.attempt
                    ).update(heartbeat_at=timezone.now())
                except DatabaseError as exc:  # a busy database: try again at the next beat
                    logger.warning("Heartbeat of mining run %s not written: %s", self.run_id, exc)
                    continue
                if not alive:
                    self.lost = True
                    return
        finally:
            connections.close_all()  # this thread's own connections


def run_progress(*, run: MiningRun, phase: str, progress: int) -> None:
    """A short write of its own (outside any long transaction) so that the admin can poll."""
    now = timezone.now()
    changed = MiningRun.objects.filter(pk=run.pk, status=MiningRun.Status.RUNNING, attempt=run.attempt).update(
        phase=phase, progress=progress, heartbeat_at=now
    )
    if not changed:
        raise RunLost(f"Run #{run.pk} is no longer running.")
    run.phase, run.progress, run.heartbeat_at = phase, progress, now


def run_progress_add(*, run_id: int, attempt: int | None, step: int) -> None:
    """Progress of one finished block when blocks finish in parallel on several workers."""
    running = MiningRun.objects.filter(pk=run_id, status=MiningRun.Status.RUNNING, progress__lte=100 - step)
    if attempt is not None:
        running = running.filter(attempt=attempt)
    running.update(progress=F("progress") + step, heartbeat_at=timezone.now())


def run_fail(*, run_id: int, exc: BaseException, attempt: int | None = None) -> None:
    """Record the failure; the suggestions are as they were (their transaction rolled back).
    With ``attempt``, only that attempt of the run is failed (not a later take-over)."""
    logger.error("Mining run %s failed", run_id, exc_info=(type(exc), exc, exc.__traceback__))
    error = f"{type(exc).__name__}: {exc}"[:10_000]
    running = MiningRun.objects.filter(pk=run_id, status=MiningRun.Status.RUNNING)
    if attempt is not None:
        running = running.filter(attempt=attempt)
    with transaction.atomic():
        if running.update(status=MiningRun.Status.FAILED, finished_at=timezone.now(), error=error):
            _record_status(
                [run_id], old=MiningRun.Status.RUNNING, new=MiningRun.Status.FAILED, actor=f"task:{run_id}", error=error
            )


def run_give_up(
    *,
    run_id: int | None = None,
    task_id: str | None = None,
    attempt: int | None = None,
    task_name: str,
    deliveries: int,
) -> bool:
    """The redelivery cap was reached (config/celery.py): the task's worker died on every
    delivery (killed, out of memory). The run (by id, or the one the task ``task_id`` owns)
    ends failed, never requeued, rather than staying running. With ``attempt`` (a block or
    store task of that attempt), only while the run is still at that attempt: a capped task
    of an attempt that was since taken over must not fail its successor. Returns whether it
    was ended."""
    if run_id is None and not task_id:
        return False
    runs = MiningRun.objects.filter(pk=run_id) if run_id is not None else MiningRun.objects.filter(task_id=task_id)
    if attempt is not None:
        runs = runs.filter(attempt=attempt)
    error = (
        f"Gave up: task {task_name} was delivered {deliveries} times and its worker died every time "
        f"(killed, out of memory?); the limit is CELERY_MAX_DELIVERIES={settings.CELERY_MAX_DELIVERIES}."
    )
    with transaction.atomic():
        ended = list(
            runs.filter(status__in=[MiningRun.Status.QUEUED, MiningRun.Status.RUNNING])
            .select_for_update()
            .values_list("pk", "status")
        )
        for pk, status in ended:
            MiningRun.objects.filter(pk=pk, status=status).update(
                status=MiningRun.Status.FAILED, finished_at=timezone.now(), error=error
            )
            _record_status([pk], old=status, new=MiningRun.Status.FAILED, actor=f"task:{pk}", error=error)
    return bool(ended)


def mining_runs_sweep() -> list[MiningRun]:
    """The periodic sweep (merchandising.sweep_mining_runs, every minute): fail every running
    run whose heartbeat stopped, and queue a fresh run with the same trigger, starter and
    parameters in its place, once: a run that is itself such a retry, or that a command or
    the demo started, is only failed. Returns the runs queued."""
    from merchandising.tasks import recompute_suggestions

    now = timezone.now()
    queued = []
    for run in MiningRun.objects.filter(_abandoned(now)).order_by("pk"):
        with transaction.atomic():
            error = _abandoned_error(now)
            if (
                not MiningRun.objects.filter(pk=run.pk)
                .filter(_abandoned(now))
                .update(status=MiningRun.Status.FAILED, finished_at=now, error=error)
            ):
                continue  # its owner came back, or someone else ended it
            logger.warning("Mining run %s abandoned (no heartbeat); failed by the sweep.", run.pk)
            retry = None
            if run.trigger in REQUEUED_TRIGGERS and run.retry_of_id is None:
                retry = MiningRun(
                    trigger=run.trigger,
                    started_by_id=run.started_by_id,
                    started_by_name=run.started_by_name,
                    parameters=run.parameters,
                    status=MiningRun.Status.QUEUED,
                    retry_of=run,
                )
                retry.full_clean()
                retry.save()
                error = f"{error} Queued again as run #{retry.pk}."
                MiningRun.objects.filter(pk=run.pk).update(error=error)
            # The failed run's history row holds its final error (with the retry's number).
            _record_status(
                [run.pk], old=MiningRun.Status.RUNNING, new=MiningRun.Status.FAILED, actor=SWEEP_ACTOR, error=error
            )
            if retry is None:
                continue
            audit_record(
                obj=retry,
                action=AuditEntry.Action.CREATE,
                actor=SWEEP_ACTOR,
                changes={"status": [None, retry.status], "retry_of": [None, run.pk], "trigger": [None, run.trigger]},
            )
            transaction.on_commit(partial(recompute_suggestions.delay, retry.pk))
            queued.append(retry)
    return queued


def mining_run_for_task(*, task_id: str, trigger: str) -> MiningRun:
    """The run a task message creates for itself (the schedule's): created on its first
    delivery, the same run on a redelivery, so that a redelivery takes it over instead of
    creating a second run that the first would block."""
    run = MiningRun.objects.filter(task_id=task_id).first()
    if run is None:
        run = mining_run_create(trigger=trigger, task_id=task_id)
    return run


def mining_run_mark_failed(*, run_id: int, actor, via: str | None = Via.ADMIN_ACTION) -> bool:
    """An operator ends a run whose worker is gone (killed, machine lost) instead of waiting
    for the sweep to notice that its heartbeat stopped. Nothing is rolled back: a run stores
    its suggestions in one transaction at its very end, and that store only commits while the
    run is still running, so a run marked failed that was in fact alive discards its result
    (RunLost) and leaves the suggestions as they were. Returns whether the run was running."""
    who = actor.get_username() if actor is not None else "an operator"
    now = timezone.now()
    error = f"Marked failed by {who} at {timezone.localtime(now):%Y-%m-%d %H:%M} (its worker had stopped)."
    with transaction.atomic():
        marked = bool(
            MiningRun.objects.filter(pk=run_id, status=MiningRun.Status.RUNNING).update(
                status=MiningRun.Status.FAILED, finished_at=now, error=error
            )
        )
        if marked:
            _record_status(
                [run_id], old=MiningRun.Status.RUNNING, new=MiningRun.Status.FAILED, actor=actor, via=via, error=error
            )
    return marked
