from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.models import ChangeSource
from catalog.services import products_import


class Command(BaseCommand):
    help = (
        "Import products from a CSV file (docs/catalog.md). Every bad row is reported with its line "
        "number; if any row is bad nothing is written and the command exits with status 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate and report what would change; write nothing."
        )

    def handle(self, *args, file: Path, dry_run: bool, **options):
        try:
            source = file.open("rb")
        except OSError as exc:
            raise CommandError(f"Cannot open {file}: {exc.strerror}") from None
        with source:
            result = products_import(
                source=source,
                dry_run=dry_run,
                change_source=ChangeSource.COMMAND,
                reference=f"import_products {file.name}",
            )
        for error in result.errors:
            self.stderr.write(str(error))
        if result.errors:
            raise CommandError(f"{len(result.errors)} error(s) in {file}; nothing was written.")
        verb = "Would import" if dry_run else "Imported"
        self.stdout.write(
            f"{verb} {result.rows} rows: {result.created} created, {result.updated} updated, "
            f"{result.unchanged} unchanged."
        )
        if result.new_brands:
            self.stdout.write(f"New brands ({len(result.new_brands)}): {', '.join(result.new_brands)}")
        if result.new_categories:
            self.stdout.write(f"New categories ({len(result.new_categories)}): {', '.join(result.new_categories)}")
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
