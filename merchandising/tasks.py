"""Celery tasks of the merchandising app: thin wrappers around merchandising.services.

Failure policy: no automatic retries (a failed run is recorded as FAILED with its error and
the next run starts from scratch); acks_late, so a task whose worker died is delivered again
(at most CELERY_MAX_DELIVERIES times, config/celery.py). The redelivered message of a run is its
owner and takes the run over at once (merchandising.services.runs.run_claim); a redelivered
block or store task simply does its part again. Past the cap the run ends FAILED
(``deliveries_exhausted``). A run whose worker vanished without a redelivery is failed and
queued again by the sweep (sweep_mining_runs, every minute; accounts/schedules.py).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from merchandising.models import MiningRun
from merchandising.services import published_links_refresh, suggestions_recompute
from merchandising.services.recompute import mining_block_run, mining_blocks_finish
from merchandising.services.runs import mining_run_for_task, mining_runs_sweep, run_give_up

TIME_LIMITS = {"time_limit": settings.CELERY_TASK_TIME_LIMIT, "soft_time_limit": settings.CELERY_TASK_SOFT_TIME_LIMIT}


def _workers_available() -> bool:
    # A chord needs a result backend that supports chords (Redis; "rpc://" does not); without
    # one the blocks run in this worker, in-process.
    backend = settings.CELERY_RESULT_BACKEND or ""
    return not settings.CELERY_TASK_ALWAYS_EAGER and backend.startswith("redis")


def _run(task, run: MiningRun) -> str:
    queue = (task.request.delivery_info or {}).get("routing_key") if task.request else None
    run = suggestions_recompute(run=run, distribute=_workers_available(), queue=queue, task_id=task.request.id)
    return run.status


# Called by config.celery.BaseTask when a task reached the redelivery cap (``task`` is bound):
# the run it works on ends FAILED instead of staying running.
def _give_up_run(task, run_id: int, *args, deliveries: int = 0, **kwargs) -> None:
    run_give_up(run_id=run_id, task_name=task.name, deliveries=deliveries)


def _give_up_block_run(task, run_id: int, start, stop, attempt=None, *, deliveries: int = 0, **kwargs) -> None:
    run_give_up(run_id=run_id, attempt=attempt, task_name=task.name, deliveries=deliveries)


def _give_up_stored_run(task, parts, run_id: int, attempt=None, *, deliveries: int = 0, **kwargs) -> None:
    run_give_up(run_id=run_id, attempt=attempt, task_name=task.name, deliveries=deliveries)


def _give_up_own_run(task, *args, deliveries: int = 0, **kwargs) -> None:
    run_give_up(task_id=task.request.id, task_name=task.name, deliveries=deliveries)


@shared_task(
    name="merchandising.recompute_suggestions",
    bind=True,
    acks_late=True,
    deliveries_exhausted=_give_up_run,
    **TIME_LIMITS,
)
def recompute_suggestions(self, run_id: int) -> str | None:
    """Run the queued mining run ``run_id`` (single flight: SKIPPED if another one runs)."""
    run = MiningRun.objects.filter(pk=run_id).first()
    if run is None:
        return None
    return _run(self, run)


@shared_task(
    name="merchandising.recompute_suggestions_scheduled",
    bind=True,
    acks_late=True,
    deliveries_exhausted=_give_up_own_run,
    **TIME_LIMITS,
)
def recompute_suggestions_scheduled(self) -> str:
    """What the beat schedule calls: a new run with trigger=schedule, run right here (the
    same run again when this message is redelivered)."""
    return _run(self, mining_run_for_task(task_id=self.request.id, trigger=MiningRun.Trigger.SCHEDULE))


@shared_task(
    name="merchandising.mine_suggestions_block", acks_late=True, deliveries_exhausted=_give_up_block_run, **TIME_LIMITS
)
def mine_suggestions_block(run_id: int, start: int, stop: int, attempt: int | None = None) -> dict[str, Any] | None:
    """One block of a distributed run (of the run's ``attempt``); returns its pairs as JSON lists."""
    return mining_block_run(run_id=run_id, start=start, stop=stop, attempt=attempt)


@shared_task(
    name="merchandising.store_suggestions", acks_late=True, deliveries_exhausted=_give_up_stored_run, **TIME_LIMITS
)
def store_suggestions(parts: list[dict[str, Any] | None], run_id: int, attempt: int | None = None) -> str | None:
    """The chord's body: merge the blocks and store the suggestions in one transaction."""
    run = mining_blocks_finish(run_id=run_id, parts=parts, attempt=attempt)
    return run.status if run else None


@shared_task(name="merchandising.sweep_mining_runs", time_limit=120, soft_time_limit=100)
def sweep_mining_runs() -> list[int]:
    """Scheduled every minute (accounts/schedules.py): fail the runs whose heartbeat stopped and
    queue each again once (merchandising.services.runs.mining_runs_sweep)."""
    return [run.pk for run in mining_runs_sweep()]


@shared_task(name="merchandising.refresh_published_links", time_limit=300, soft_time_limit=240)
def refresh_published_links() -> int:
    """Scheduled (accounts/schedules.py): see merchandising.services.published_links_refresh."""
    return published_links_refresh()
