from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import ApiClient
from accounts.services import api_client_create, api_key_issue

#: Who the audit trail names for what this command writes.
ACTOR = "command:create_api_client"


class Command(BaseCommand):
    help = (
        "Create a webshop API client and print its key (shown once; only a digest is stored). With --rotate, "
        "issue another key for an existing client: its other keys keep working until you revoke them in the "
        "admin (API keys), so the webshop can switch without downtime."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the client's name, e.g. webshop")
        parser.add_argument("--scopes", default="read", help="comma-separated: read, events (default: read)")
        parser.add_argument(
            "--expires-days",
            type=int,
            help="the key expires after this many days; 0: never (not recommended). "
            f"Default: the API_KEY_EXPIRY_DAYS setting ({settings.API_KEY_EXPIRY_DAYS})",
        )
        parser.add_argument("--rate", type=int, help="requests per minute (default: the API_RATE_PER_MINUTE setting)")
        parser.add_argument("--rotate", action="store_true", help="issue another key for an existing client")

    @transaction.atomic
    def handle(self, *args, name, scopes, expires_days, rate, rotate, **options):
        if expires_days is not None and expires_days < 0:
            raise CommandError("--expires-days must be 0 (never) or more.")
        client = ApiClient.objects.filter(name=name).first()
        try:
            if client is None:
                if rotate:
                    raise CommandError(f"There is no API client {name!r} to rotate a key for.")
                wanted = [scope.strip() for scope in scopes.split(",") if scope.strip()]
                client = api_client_create(name=name, scopes=wanted, rate_per_minute=rate, actor=ACTOR)
                self.stderr.write(f"Created API client {client.name!r} with scopes {', '.join(client.scopes)}.")
            elif not rotate:
                raise CommandError(f"API client {name!r} exists; use --rotate to issue it another key.")
            issued = api_key_issue(client=client, actor=ACTOR, expires_days=expires_days)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        expiry = f"expires {issued.key.expires_at.isoformat()}" if issued.key.expires_at else "no expiry"
        if issued.key.expires_at is None:
            self.stderr.write(
                "WARNING: this key never expires. A leaked key then works until someone revokes it; "
                "prefer an expiry and rotate the key (--rotate) before it."
            )
        self.stderr.write(f"New key {issued.key.prefix} for {client.name!r} ({expiry}). Shown only now:")
        self.stdout.write(issued.secret)
