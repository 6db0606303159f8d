import datetime

from django.core.management.base import BaseCommand, CommandError

from merchandising.models import MiningRun
from merchandising.services import suggestions_recompute


def _date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--before {value!r} is not a date (YYYY-MM-DD)") from None


def run_summary(run: MiningRun) -> list[str]:
    duration = run.duration.total_seconds() if run.duration is not None else 0.0
    return [
        f"Run #{run.pk}: {run.get_status_display().lower()} in {duration:.1f} s",
        f"  orders:        {run.orders}",
        f"  lines:         {run.lines}",
        f"  products:      {run.products}",
        f"  pairs scored:  {run.pairs_scored}",
        f"  suggestions:   {run.suggestions_new} new, {run.suggestions_updated} updated, "
        f"{run.suggestions_unchanged} unchanged, {run.suggestions_stale} gone stale",
    ]


class Command(BaseCommand):
    help = (
        "Run one mining run now, in this process (the same service the Celery task runs), and print its summary. "
        "Options override the stored mining settings for this run only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--min-count", type=int, help="minimum number of orders containing both products")
        parser.add_argument("--min-confidence", type=float, help="minimum confidence (0..1)")
        parser.add_argument("--min-lift", type=float, help="minimum lift")
        parser.add_argument("--top-k", type=int, help="suggestions kept per source product")
        parser.add_argument("--before", type=str, help="mine only orders before this date (YYYY-MM-DD)")

    def handle(self, *args, **options):
        before = _date(options["before"]) if options["before"] else None
        overrides = {
            "min_count": options["min_count"],
            "min_confidence": options["min_confidence"],
            "min_lift": options["min_lift"],
            "top_k": options["top_k"],
        }
        try:
            run = suggestions_recompute(
                trigger=MiningRun.Trigger.COMMAND,
                overrides={key: value for key, value in overrides.items() if value is not None},
                before=before,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if run.status == MiningRun.Status.SKIPPED:
            raise CommandError(f"Run #{run.pk} skipped: {run.error}")
        if run.status == MiningRun.Status.FAILED:
            raise CommandError(f"Run #{run.pk} failed: {run.error}")
        self.stdout.write("\n".join(run_summary(run)))
