"""Celery: configured the Django way, capped redeliveries, and a real worker when a broker is set."""

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from celery.exceptions import Reject
from django.conf import settings
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from accounts.tasks import clear_expired_sessions, ping
from config.celery import app

ROOT = Path(__file__).resolve().parents[2]


def test_app_configuration():
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT
    assert app.conf.task_soft_time_limit == settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert app.conf.broker_transport_options["visibility_timeout"] >= 2 * app.conf.task_time_limit
    assert "accounts.ping" in app.tasks


def test_redeliveries_are_capped():
    task_id = f"test-{uuid.uuid4()}"
    results = [ping.apply(task_id=task_id) for _ in range(settings.CELERY_MAX_DELIVERIES)]
    assert [r.get() for r in results] == ["pong"] * settings.CELERY_MAX_DELIVERIES
    refused = ping.apply(task_id=task_id)
    assert isinstance(refused.result, Reject)
    assert refused.state == "REJECTED"


@pytest.mark.django_db
def test_clear_expired_sessions(client, specialist):
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    client.force_login(specialist)
    client.get("/")
    Session.objects.create(session_key="old" * 10, session_data="", expire_date=timezone.now() - timedelta(days=1))
    assert clear_expired_sessions.apply().get() == 1
    assert Session.objects.count() == 1


@pytest.mark.django_db
def test_setup_schedules_is_idempotent():
    call_command("setup_schedules", stdout=io.StringIO())
    call_command("setup_schedules", stdout=io.StringIO())
    task = PeriodicTask.objects.get(name="Clear expired sessions")
    assert task.task == "accounts.clear_expired_sessions"
    assert (task.crontab.minute, task.crontab.hour) == ("17", "3")
    assert PeriodicTask.objects.filter(name="Clear expired sessions").count() == 1
    sweep = PeriodicTask.objects.get(name="Sweep abandoned mining runs")
    assert (sweep.task, sweep.crontab.minute, sweep.crontab.hour, sweep.enabled) == (
        "merchandising.sweep_mining_runs",
        "*",
        "*",
        True,
    )
    from merchandising.tasks import sweep_mining_runs

    assert sweep_mining_runs.name == sweep.task


@pytest.mark.broker
def test_real_worker_runs_a_task_from_the_broker():
    queue = f"test-{uuid.uuid4().hex[:8]}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue, "--loglevel=WARNING",
         "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"},
    )  # fmt: skip
    try:
        result = ping.apply_async(queue=queue)
        assert result.get(timeout=60) == "pong"
        assert result.state == "SUCCESS"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
