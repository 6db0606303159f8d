"""Mining runs: parameters, creation, the single-flight claim, progress and failure."""

from __future__ import annotations

import datetime
import logging
import math
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.models import AuditEntry, Via
from audit.services import audit_record, audit_record_many, created_changes, instance_values
from merchandising.mining import DEFAULT_SCORE, MiningOptions
from merchandising.models import MiningRun, MiningSettings

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


class RunLost(Exception):
    """The run is no longer ours: it was declared abandoned and failed by another claim."""


def abandoned_after() -> datetime.timedelta:
    """A running run whose heartbeat is older than this has lost its worker: no task may run
    longer than the hard time limit, and every phase of a run writes a heartbeat."""
    return datetime.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)


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
) -> MiningRun:
    """A queued run with its parameters recorded; nothing is mined yet."""
    run = MiningRun(
        trigger=trigger,
        started_by=actor,
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


def _record_status(run_ids, *, old: str, new: str, actor, via: str | None = None, error: str = "") -> None:
    """History rows for runs moved from ``old`` to ``new`` by a conditional update."""
    changes = {"status": [old, new], **({"error": ["", error]} if error else {})}
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


def run_claim(*, run: MiningRun) -> bool:
    """Move ``run`` to running, or mark it skipped when another run is running.

    The partial unique index on status="running" admits one running run: the conditional
    update is the claim, and an IntegrityError means someone else holds it. A run that was
    running but stopped writing heartbeats (its worker died) is failed first, so it cannot
    block every later run; a redelivered task of that very run takes it over instead.
    Returns False when this run is not to be worked on (skipped, or not queued any more).
    """
    now = timezone.now()
    stale_before = now - abandoned_after()
    abandoned = Q(status=MiningRun.Status.RUNNING, heartbeat_at__lt=stale_before)
    error = f"Abandoned: no progress since before {stale_before:%Y-%m-%d %H:%M:%S %Z} (worker lost?)."
    with transaction.atomic():
        lost = list(
            MiningRun.objects.filter(abandoned).exclude(pk=run.pk).select_for_update().values_list("pk", flat=True)
        )
        failed = MiningRun.objects.filter(abandoned, pk__in=lost).update(
            status=MiningRun.Status.FAILED, finished_at=now, error=error
        )
        _record_status(lost, old=MiningRun.Status.RUNNING, new=MiningRun.Status.FAILED, actor=run, error=error)
    if failed:
        logger.warning("Failed %s abandoned mining run(s) before claiming run %s.", failed, run.pk)
    try:
        with transaction.atomic():
            claimed = (
                MiningRun.objects.filter(pk=run.pk)
                .filter(Q(status=MiningRun.Status.QUEUED) | abandoned)
                .update(
                    status=MiningRun.Status.RUNNING,
                    started_at=now,
                    heartbeat_at=now,
                    phase="starting",
                    progress=0,
                    error="",
                )
            )
            if claimed:
                _record_status([run.pk], old=run.status, new=MiningRun.Status.RUNNING, actor=run)
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
    return bool(claimed)


def run_progress(*, run: MiningRun, phase: str, progress: int) -> None:
    """A short write of its own (outside any long transaction) so that the admin can poll."""
    now = timezone.now()
    changed = MiningRun.objects.filter(pk=run.pk, status=MiningRun.Status.RUNNING).update(
        phase=phase, progress=progress, heartbeat_at=now
    )
    if not changed:
        raise RunLost(f"Run #{run.pk} is no longer running.")
    run.phase, run.progress, run.heartbeat_at = phase, progress, now


def run_progress_add(*, run_id: int, step: int) -> None:
    """Progress of one finished block when blocks finish in parallel on several workers."""
    MiningRun.objects.filter(pk=run_id, status=MiningRun.Status.RUNNING, progress__lte=100 - step).update(
        progress=F("progress") + step, heartbeat_at=timezone.now()
    )


def run_fail(*, run_id: int, exc: BaseException) -> None:
    """Record the failure; the suggestions are as they were (their transaction rolled back)."""
    logger.error("Mining run %s failed", run_id, exc_info=(type(exc), exc, exc.__traceback__))
    error = f"{type(exc).__name__}: {exc}"[:10_000]
    with transaction.atomic():
        if MiningRun.objects.filter(pk=run_id, status=MiningRun.Status.RUNNING).update(
            status=MiningRun.Status.FAILED, finished_at=timezone.now(), error=error
        ):
            _record_status(
                [run_id], old=MiningRun.Status.RUNNING, new=MiningRun.Status.FAILED, actor=f"task:{run_id}", error=error
            )


def mining_run_mark_failed(*, run_id: int, actor, via: str | None = Via.ADMIN_ACTION) -> bool:
    """An operator ends a run whose worker is gone (killed, machine lost) instead of waiting
    for its heartbeat to age past the task time limit. Nothing is rolled back: a run stores
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
