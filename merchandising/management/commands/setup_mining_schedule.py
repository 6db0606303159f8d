from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from audit.services import audit_saved, instance_values

SCHEDULE_NAME = "Recompute suggestions"
TASK = "merchandising.recompute_suggestions_scheduled"
# Weekly, Sunday 02:30 in TIME_ZONE: after the week's orders are in, before anyone reviews.
#: Who the audit trail names for the schedule's changes, and what it records of them.
ACTOR = "command:setup_mining_schedule"
AUDITED = ("task", "crontab", "interval", "solar", "clocked", "enabled")
DEFAULT_CRONTAB = {"minute": "30", "hour": "2", "day_of_week": "0", "day_of_month": "*", "month_of_year": "*"}


class Command(BaseCommand):
    help = (
        f"Create the beat schedule {SCHEDULE_NAME!r} (weekly, Sunday 02:30) if it is missing. Idempotent: an "
        "existing schedule keeps the timing and on/off switch an administrator gave it in the admin; only its task "
        "name is repaired. --reset puts the default timing back and enables it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="restore the default timing and enable it")

    @transaction.atomic
    def handle(self, *args, **options):
        default, _ = CrontabSchedule.objects.get_or_create(**DEFAULT_CRONTAB, timezone=settings.TIME_ZONE)
        task = PeriodicTask.objects.select_for_update().filter(name=SCHEDULE_NAME).first()
        if task is None:
            task = PeriodicTask.objects.create(name=SCHEDULE_NAME, task=TASK, crontab=default, enabled=True)
            audit_saved(obj=task, before=None, actor=ACTOR, fields=AUDITED)
            self.stdout.write(f"Created schedule {SCHEDULE_NAME!r}: {_describe(default)} -> {TASK}")
            return
        changed = []
        if task.task != TASK:
            task.task = TASK
            changed.append("task")
        if options["reset"] and (task.crontab_id != default.pk or not task.enabled or task.interval_id):
            task.crontab, task.interval, task.solar, task.clocked, task.enabled = default, None, None, None, True
            changed += ["crontab", "interval", "solar", "clocked", "enabled"]
        if changed:
            before = instance_values(PeriodicTask.objects.get(pk=task.pk), AUDITED)
            task.save()
            audit_saved(obj=task, before=before, actor=ACTOR, fields=AUDITED)
        timing = _describe(task.crontab) if task.crontab_id else str(task.schedule)
        state = "enabled" if task.enabled else "disabled"
        verb = "Reset" if options["reset"] and "crontab" in changed else ("Repaired" if changed else "Kept")
        self.stdout.write(f"{verb} schedule {SCHEDULE_NAME!r}: {timing}, {state} -> {task.task}")


def _describe(crontab: CrontabSchedule) -> str:
    return (
        f"minute={crontab.minute} hour={crontab.hour} day_of_week={crontab.day_of_week} "
        f"day_of_month={crontab.day_of_month} month_of_year={crontab.month_of_year} ({crontab.timezone})"
    )
