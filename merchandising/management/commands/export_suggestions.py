import csv

from django.core.management.base import BaseCommand

from merchandising.selectors import suggestions_export_rows


class Command(BaseCommand):
    help = (
        "Write every suggestion to a CSV file (UTF-8): source_sku,target_sku,co_count,support,confidence,lift,"
        "score,status,stale, then jaccard,decayed_co_count,previous_co_count,accounts,reject_reason. "
        "Use - for standard output."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the CSV file to write, or - for standard output")

    def handle(self, *args, **options):
        if options["file"] == "-":
            self._write(self.stdout)
        else:
            with open(options["file"], "w", encoding="utf-8", newline="") as out:
                written = self._write(out)
            self.stdout.write(f"Wrote {written} suggestions to {options['file']}")

    def _write(self, out) -> int:
        writer = csv.writer(out, lineterminator="\r\n")
        count = -1
        for count, row in enumerate(suggestions_export_rows()):  # noqa: B007
            writer.writerow(row)
        return count
