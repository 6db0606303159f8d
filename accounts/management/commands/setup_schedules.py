from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.schedules import SCHEDULES
from audit.services import audit_saved, instance_values

AUDITED = ("task", "crontab", "interval", "enabled")


class Command(BaseCommand):
    help = "Create or update the periodic task schedules defined in code (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options):
        from django.conf import settings

        for name, (task, fields) in SCHEDULES.items():
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=fields.get("minute", "*"),
                hour=fields.get("hour", "*"),
                day_of_week=fields.get("day_of_week", "*"),
                day_of_month=fields.get("day_of_month", "*"),
                month_of_year=fields.get("month_of_year", "*"),
                timezone=settings.TIME_ZONE,
            )
            existing = PeriodicTask.objects.select_for_update().filter(name=name).first()
            before = instance_values(existing, AUDITED) if existing else None
            periodic, created = PeriodicTask.objects.update_or_create(
                name=name, defaults={"task": task, "crontab": crontab, "enabled": True}
            )
            audit_saved(obj=periodic, before=before, actor="command:setup_schedules", fields=AUDITED)
            self.stdout.write(f"{'Created' if created else 'Updated'} schedule {name!r} -> {task}")
