"""Celery tasks of the merchandising app: thin wrappers around merchandising.services.

Failure policy: no automatic retries (a failed run is recorded as FAILED with its error and
the next run starts from scratch); acks_late, so a run whose worker died is delivered again
(at most CELERY_MAX_DELIVERIES times, config/celery.py) and takes its abandoned run over.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from merchandising.models import MiningRun
from merchandising.services import mining_run_create, published_links_refresh, suggestions_recompute
from merchandising.services.recompute import mining_block_run, mining_blocks_finish

TIME_LIMITS = {"time_limit": settings.CELERY_TASK_TIME_LIMIT, "soft_time_limit": settings.CELERY_TASK_SOFT_TIME_LIMIT}


def _workers_available() -> bool:
    # A chord needs a result backend that supports chords (Redis; "rpc://" does not); without
    # one the blocks run in this worker, in-process.
    backend = settings.CELERY_RESULT_BACKEND or ""
    return not settings.CELERY_TASK_ALWAYS_EAGER and backend.startswith("redis")


def _run(task, run: MiningRun) -> str:
    queue = (task.request.delivery_info or {}).get("routing_key") if task.request else None
    run = suggestions_recompute(run=run, distribute=_workers_available(), queue=queue)
    return run.status


@shared_task(name="merchandising.recompute_suggestions", bind=True, acks_late=True, **TIME_LIMITS)
def recompute_suggestions(self, run_id: int) -> str | None:
    """Run the queued mining run ``run_id`` (single flight: SKIPPED if another one runs)."""
    run = MiningRun.objects.filter(pk=run_id).first()
    if run is None:
        return None
    return _run(self, run)


@shared_task(name="merchandising.recompute_suggestions_scheduled", bind=True, acks_late=True, **TIME_LIMITS)
def recompute_suggestions_scheduled(self) -> str:
    """What the beat schedule calls: a new run with trigger=schedule, run right here."""
    return _run(self, mining_run_create(trigger=MiningRun.Trigger.SCHEDULE))


@shared_task(name="merchandising.mine_suggestions_block", acks_late=True, **TIME_LIMITS)
def mine_suggestions_block(run_id: int, start: int, stop: int) -> dict[str, Any] | None:
    """One block of a distributed run; returns its pairs as JSON lists."""
    return mining_block_run(run_id=run_id, start=start, stop=stop)


@shared_task(name="merchandising.store_suggestions", acks_late=True, **TIME_LIMITS)
def store_suggestions(parts: list[dict[str, Any] | None], run_id: int) -> str | None:
    """The chord's body: merge the blocks and store the suggestions in one transaction."""
    run = mining_blocks_finish(run_id=run_id, parts=parts)
    return run.status if run else None


@shared_task(name="merchandising.refresh_published_links", time_limit=300, soft_time_limit=240)
def refresh_published_links() -> int:
    """Scheduled (accounts/schedules.py): see merchandising.services.published_links_refresh."""
    return published_links_refresh()
