from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog.demo import DEMO_PASSWORD, DEMO_USERS, ORDERS_DEFAULT, DemoSeedError, demo_seed

SHOWN_ERRORS = 10


class Command(BaseCommand):
    help = (
        "Create the demo data set: a wholesaler's catalog (through the products import, so it is "
        "validated and in the change history) and, with DEBUG on, one demo user per role. "
        "Idempotent: running it again changes nothing; demo products you edited keep your edits "
        "unless --reset is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="Put demo products back to their demo values.")
        parser.add_argument(
            "--orders",
            type=int,
            default=ORDERS_DEFAULT,
            help=f"Orders in the demo history (default {ORDERS_DEFAULT}; 0 for the catalog only).",
        )
        parser.add_argument("--no-mining", action="store_true", help="Do not run a mining after loading orders.")

    def handle(self, *args, reset: bool = False, orders: int = ORDERS_DEFAULT, no_mining: bool = False, **options):
        if orders < 0:
            raise CommandError("--orders must be 0 or more.")
        try:
            counts = demo_seed(users=settings.DEBUG, reset=reset, orders=orders, mine=not no_mining)
        except DemoSeedError as exc:
            shown = "\n".join(str(error) for error in exc.errors[:SHOWN_ERRORS])
            more = len(exc.errors) - SHOWN_ERRORS
            raise CommandError(
                f"The demo catalog was refused, nothing was written:\n{shown}"
                + (f"\n... and {more} more" if more > 0 else "")
            ) from None
        self.stdout.write(
            f"Demo catalog ({counts['rows']} products): {counts['created']} created, "
            f"{counts['updated']} updated, {counts['unchanged']} unchanged, "
            f"{counts['skipped']} already there (kept as they are; --reset restores them)."
        )
        self.stdout.write(
            f"Catalog now holds {counts['products']} products ({counts['variants']} pack variants), "
            f"{counts['brands']} brands, {counts['categories']} categories, "
            f"{counts['attribute_definitions']} attribute definitions."
        )
        if orders:
            self.stdout.write(
                f"Order history: {counts['accounts']} customer accounts, {counts['orders_created']} orders created "
                f"({counts['order_lines']} lines; orders already there are left alone)."
            )
        run = counts["run"]
        if run is not None:
            self.stdout.write(
                f"Mining run #{run.pk} {run.status}: {run.suggestions_new} new, {run.suggestions_updated} updated, "
                f"{run.suggestions_unchanged} unchanged, {run.suggestions_stale} stale suggestions."
                + (f" Error: {run.error}" if run.error else "")
            )
            recall = counts["planted_recall"]
            self.stdout.write(
                f"Planted pairs found in the anchors' top 10: {recall['found']} of {recall['pairs']} "
                f"(recall {recall['recall']:.3f})."
            )
            review = counts.get("review")
            if review and any(review.values()):
                self.stdout.write(
                    f"Demo review: {review['approved']} suggestions approved (published), {review['rejected']} "
                    f"rejected, {review['manual_links']} manual links."
                )
        if counts["users_skipped"]:
            self.stdout.write("Demo users skipped: DEBUG is off (their password is public).")
            return
        roles = {user["username"]: user["role"] for user in DEMO_USERS}
        if counts["users_created"]:
            created = ", ".join(f"{name} ({roles[name]})" for name in counts["users_created"])
            self.stdout.write(f"Demo users created: {created}.")
        if counts["users_existing"]:
            self.stdout.write(f"Demo users already there, left unchanged: {', '.join(counts['users_existing'])}.")
        self.stdout.write(
            f'Log in at /admin/ as "specialist" with password "{DEMO_PASSWORD}" '
            '(or as "marketing" or "admin" for the other roles).'
        )
