"""The Celery app of the worker-kill test (test_worker_kill.py): the project's app plus three
pause points, so that the test can SIGKILL a worker process at a known place of a run.

The test hook, all of it: when the directory named by MINING_KILL_DIR holds a file
``pause-<point>``, the first task that reaches <point> renames it to ``at-<point>.<pid>`` and
sleeps; the test sees the file and kills that pid. Without the file nothing changes. Points:
``loading`` (before the history is read), ``mining`` (before the matrices are prepared: in
the run's task, or in a block task of a distributed run) and ``storing`` (inside the store's
transaction, after the first batch was written). Run it as
``celery -A tests.merchandising.killable_worker worker``; production code has no such hook.
"""

from __future__ import annotations

import functools
import os
import time

from celery.signals import worker_process_init

from config.celery import app

__all__ = ["app"]

# How long the pool waits after a process died before it declares the job lost and rejects the
# message for redelivery: Celery's default is 10 s; 1 s keeps the test short.
app.conf.worker_lost_wait = 1.0


def _pause(point: str) -> None:
    folder = os.environ.get("MINING_KILL_DIR")
    if not folder:
        return
    try:
        os.rename(os.path.join(folder, f"pause-{point}"), os.path.join(folder, f"at-{point}.{os.getpid()}"))
    except FileNotFoundError:
        return
    time.sleep(300)  # killed long before


def _before(point: str, function):
    @functools.wraps(function)
    def paused(*args, **kwargs):
        _pause(point)
        return function(*args, **kwargs)

    return paused


def _after(point: str, function):
    @functools.wraps(function)
    def paused(*args, **kwargs):
        result = function(*args, **kwargs)
        _pause(point)
        return result

    return paused


@worker_process_init.connect
def _install_pause_points(**_kwargs) -> None:
    # In each pool process, after Django is set up (the module names resolve at call time).
    from merchandising.services import recompute

    recompute.order_history_load = _before("loading", recompute.order_history_load)
    recompute.prepare = _before("mining", recompute.prepare)
    recompute.suggestions_write_batch = _after("storing", recompute.suggestions_write_batch)
