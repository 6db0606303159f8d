import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from catalog.exports import products_export
from catalog.models import Product


class Command(BaseCommand):
    help = "Export products as CSV in the import format ('-' writes to standard output)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Output file, or - for standard output.")
        parser.add_argument(
            "--status", choices=["draft", "active", "discontinued"], help="Only products with this status."
        )

    def handle(self, *args, file: str, status: str | None, **options):
        queryset = Product.objects.all()
        if status:
            queryset = queryset.filter(status=status)
        if file == "-":
            try:
                products_export(queryset=queryset, out=sys.stdout)
            except BrokenPipeError:
                # Piped into `head` and the like: stop quietly (the recipe from Python's docs).
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        else:
            with Path(file).open("w", encoding="utf-8", newline="") as out:
                count = products_export(queryset=queryset, out=out)
            self.stdout.write(f"Exported {count} products to {file}.")
