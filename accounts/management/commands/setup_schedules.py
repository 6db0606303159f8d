from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.schedules import SCHEDULES


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
            _, created = PeriodicTask.objects.update_or_create(
                name=name, defaults={"task": task, "crontab": crontab, "enabled": True}
            )
            self.stdout.write(f"{'Created' if created else 'Updated'} schedule {name!r} -> {task}")
