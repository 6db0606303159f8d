"""Periodic schedules as code: `manage.py setup_schedules` creates them in django-celery-beat."""

SCHEDULES = {
    # name: (task, crontab fields)
    "Clear expired sessions": ("accounts.clear_expired_sessions", {"minute": "17", "hour": "3"}),
}
