from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orders.imports import DEFAULT_CREDIT_PREFIX
from orders.services import OrdersImportResult, orders_import, parse_codes, parse_column_map


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


class Command(BaseCommand):
    help = (
        "Import order history from an orders CSV file (docs/orders.md). Every bad row is reported with its "
        "line number; if any row is bad nothing is written and the command exits with status 1, unless "
        "--skip-invalid: then the orders without a bad row are imported and the rejected rows are written "
        "to a reject file."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--dry-run", action="store_true", help="Check the file and report what would be done; write nothing."
        )
        parser.add_argument(
            "--map",
            dest="column_map",
            default="",
            metavar="SRC=DST,...",
            help="Rename the file's columns, e.g. InvoiceNo=order_id,StockCode=sku,InvoiceDate=ordered_at,"
            "CustomerID=account_id,UnitPrice=unit_price,Quantity=quantity",
        )
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Import the orders without a bad row; the rows of orders with one go to the reject file.",
        )
        parser.add_argument(
            "--rejects",
            type=Path,
            metavar="FILE",
            help="Where to write the rejected rows with line number and reason "
            "(default with --skip-invalid: FILE.rejects.csv next to the imported file).",
        )
        parser.add_argument(
            "--no-bulk-load",
            action="store_true",
            help="Never take the big-load path on PostgreSQL (it locks the order, order line, product and "
            "customer account tables for a few seconds; see docs/orders.md): slower, no table locks.",
        )
        parser.add_argument(
            "--credit-prefix",
            default=DEFAULT_CREDIT_PREFIX,
            metavar="PREFIX",
            help=f"Order ids starting with this are credit notes and are skipped "
            f"(default {DEFAULT_CREDIT_PREFIX!r}; an empty string skips none).",
        )
        parser.add_argument(
            "--anonymous",
            metavar="ACCOUNT_ID",
            help="Load the orders without an account id under this placeholder account (created if missing; "
            "it must not be a customer's), so that their baskets count for mining. Without it, an empty "
            "account id is an error.",
        )
        parser.add_argument(
            "--non-product-codes",
            default="",
            metavar="SKU,...",
            help="Codes in the sku column that are not goods (postage, fees, manual adjustments, e.g. "
            "'POST,M,BANK CHARGES'): their rows are skipped and counted, so they never reach the mining.",
        )

    def handle(self, *args, file: Path, dry_run: bool, column_map: str, skip_invalid: bool, **options):
        try:
            mapping = parse_column_map(column_map)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        rejects_path: Path | None = options["rejects"]
        if rejects_path is None and skip_invalid:
            rejects_path = file.with_name(file.name + ".rejects.csv")
        try:
            source = file.open("rb")
        except OSError as exc:
            raise CommandError(f"Cannot open {file}: {exc.strerror}") from None
        with source:
            try:
                rejects = rejects_path.open("w", encoding="utf-8", newline="") if rejects_path else None
            except OSError as exc:
                raise CommandError(f"Cannot write {rejects_path}: {exc.strerror}") from None
            try:
                result = orders_import(
                    source=source,
                    dry_run=dry_run,
                    column_map=mapping,
                    skip_invalid=skip_invalid,
                    rejects=rejects,
                    credit_prefix=options["credit_prefix"],
                    allow_bulk_load=not options["no_bulk_load"],
                    anonymous=options["anonymous"],
                    non_product_codes=parse_codes(options["non_product_codes"]),
                )
            except ValueError as exc:  # an option the import refuses (--anonymous)
                raise CommandError(str(exc)) from None
            finally:
                if rejects:
                    rejects.close()
        for error in result.errors:
            self.stderr.write(str(error))
        if result.error_count > len(result.errors):
            self.stderr.write(f"... and {result.error_count - len(result.errors)} more errors.")
        self._unknown_skus(result)
        if result.refused:
            where = f" (the rejected rows are in {rejects_path})" if rejects_path and result.rejected_rows else ""
            raise CommandError(f"{_plural(result.error_count, 'error')} in {file}; nothing was written{where}.")
        self._summary(result, file, rejects_path, verbosity=options["verbosity"])

    def _summary(self, result: OrdersImportResult, file: Path, rejects_path: Path | None, *, verbosity: int) -> None:
        out = self.stdout.write
        verb = "Would import" if result.dry_run else "Imported"
        out(
            f"{verb} {file.name}: {_plural(result.rows, 'row')}; "
            f"{_plural(result.orders_created, 'order')} created with {_plural(result.lines_created, 'line')} "
            f"({_plural(result.lines_merged, 'row')} merged into a line of the same SKU), "
            f"{_plural(result.orders_existing, 'order')} already present (left unchanged), "
            f"{_plural(result.accounts_created, 'new customer account')}."
        )
        if result.orders_spread:
            out(
                f"{_plural(result.orders_spread, 'order')} had lines at different times and "
                f"{'was' if result.orders_spread == 1 else 'were'} given the earliest."
            )
        if result.anonymous_account is not None:
            out(
                f"{_plural(result.orders_anonymous, 'order')} without a customer loaded under the placeholder "
                f"account {result.anonymous_account}."
            )
        skipped = [
            f"{_plural(result.return_rows, 'return line')} (quantity 0 or less)",
            _plural(result.credit_note_rows, "credit-note row"),
        ]
        if result.repeated_rows:
            skipped.append(f"{_plural(result.repeated_rows, 'repeated row')} (the same as an earlier row)")
        if result.non_product_rows:
            skipped.append(f"{_plural(result.non_product_rows, 'non-product row')} (--non-product-codes)")
        out(f"Skipped: {', '.join(skipped)}.")
        if result.rejected_rows:
            where = f"; see {rejects_path}" if rejects_path else ""
            out(
                f"Rejected: {_plural(result.rejected_rows, 'row')} of {_plural(result.rejected_orders, 'order')} "
                f"({_plural(result.error_count, 'bad row')}){where}."
            )
        if result.ignored_columns:
            out(f"Ignored columns: {', '.join(result.ignored_columns)}.")
        if result.orders_differing:
            shown = ", ".join(result.differing_orders)
            more = result.orders_differing - len(result.differing_orders)
            self.stderr.write(
                f"Warning: {_plural(result.orders_differing, 'order')} already present "
                f"{'differs' if result.orders_differing == 1 else 'differ'} in this file and "
                f"{'was' if result.orders_differing == 1 else 'were'} left unchanged: {shown}"
                + (f" and {more} more" if more > 0 else "")
            )
        if verbosity >= 2:
            out("Timings (s): " + ", ".join(f"{phase} {seconds:.3f}" for phase, seconds in result.timings.items()))
        if result.dry_run:
            out("Dry run: nothing was written.")

    def _unknown_skus(self, result: OrdersImportResult) -> None:
        """Unknown SKUs, most rows first: where codes that are not products (postage, fees)
        show, with the option that skips them (docs/orders.md)."""
        if not result.unknown_skus:
            return
        listed = ", ".join(f"{sku} ({_plural(rows, 'row')})" for sku, rows in result.unknown_skus)
        codes = ",".join(sku for sku, _ in result.unknown_skus)
        self.stderr.write(f"Unknown SKUs, most rows first: {listed}.")
        self.stderr.write(
            f"Codes that are not goods (postage, fees, adjustments) can be skipped: import again with "
            f"--non-product-codes '{codes}' (keep only those that are not products). "
            "Missing products: import_products first."
        )
