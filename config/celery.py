"""The Celery app, configured the Django way (CELERY_* settings, tasks autodiscovered)."""

from __future__ import annotations

import logging
import os

from celery import Celery, Task
from celery.exceptions import Reject

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)


class BaseTask(Task):
    """Base for all our tasks: refuses a task that keeps being redelivered.

    With ``acks_late`` a task whose worker died is delivered again. A task that kills its
    worker every time (out of memory, say) would loop forever, so deliveries are counted per
    task id in the cache (Redis in production) and after CELERY_MAX_DELIVERIES the task is
    rejected without a requeue. Celery has no such cap built in. Before that, the task's
    ``deliveries_exhausted(*args, deliveries=N, **kwargs)`` (a task option, default none) records
    the failure where people look for it (the mining tasks fail their run).
    """

    deliveries_exhausted = None

    def __call__(self, *args, **kwargs):
        from django.conf import settings
        from django.core.cache import cache

        task_id = self.request.id
        if task_id:
            key = f"celery:deliveries:{task_id}"
            cache.add(key, 0, timeout=settings.CELERY_TASK_TIME_LIMIT * (settings.CELERY_MAX_DELIVERIES + 1))
            deliveries = cache.incr(key)
            if deliveries > settings.CELERY_MAX_DELIVERIES:
                logger.error("Task %s[%s] delivered %s times; giving up.", self.name, task_id, deliveries)
                if self.deliveries_exhausted is not None:
                    self.deliveries_exhausted(*args, deliveries=deliveries, **kwargs)
                raise Reject(f"delivered {deliveries} times", requeue=False)
        return super().__call__(*args, **kwargs)


app = Celery("config", task_cls=BaseTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
