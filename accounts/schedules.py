"""Periodic schedules as code: `manage.py setup_schedules` creates them in django-celery-beat."""

SCHEDULES = {
    # name: (task, crontab fields)
    "Clear expired sessions": ("accounts.clear_expired_sessions", {"minute": "17", "hour": "3"}),
    # Links whose visibility changed without a publish (date windows, product status) reach
    # the webshop's incremental sync within this interval.
    "Refresh published links": ("merchandising.refresh_published_links", {"minute": "*/10"}),
    # A mining run whose heartbeat stopped (its worker vanished without a redelivery) is failed
    # and queued again within a minute of being declared abandoned (docs/operations.md).
    "Sweep abandoned mining runs": ("merchandising.sweep_mining_runs", {"minute": "*"}),
}
