"""Housekeeping tasks: scheduled by `manage.py setup_schedules`."""

from __future__ import annotations

from celery import shared_task
from django.contrib.sessions.models import Session
from django.utils import timezone


@shared_task(name="accounts.ping", time_limit=10, soft_time_limit=5)
def ping() -> str:
    """For monitoring and tests: proves a worker takes tasks from the broker."""
    return "pong"


@shared_task(name="accounts.clear_expired_sessions", time_limit=300, soft_time_limit=240)
def clear_expired_sessions() -> int:
    """Delete expired sessions (idempotent); returns how many went."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted
