"""Who is calling the webshop API: an API client with ``Authorization: Bearer <key>``, or a
signed-in back-office user (read-only previews)."""

from __future__ import annotations

import datetime
import hmac
import json

from django.db import connection
from django.db.models import Q
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication

from accounts.models import ApiClient, ApiKey
from accounts.services import LAST_USED_RESOLUTION, ApiKeyError, _key_parts, api_key_digest

#: Query parameters a key might be put in by mistake. A key in a URL ends up in proxy logs,
#: browser history and Referer headers, so such a request is refused even if it also has the
#: header: the key must be treated as leaked.
QUERY_KEY_PARAMS = ("key", "api_key", "apikey", "token", "access_token")


class KeyInQueryString(exceptions.APIException):
    status_code = 400
    default_code = "key_in_query_string"
    default_detail = (
        "API keys are not accepted in the URL (it ends up in logs); send the header "
        "'Authorization: Bearer <key>' instead, and have the key replaced if it was a real one."
    )


class ApiClientPrincipal:
    """``request.user`` for a request authenticated by an API key (``request.auth`` is the key).
    Not a back-office user: it holds no role and no permission."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = id = None

    def __init__(self, client: ApiClient):
        self.client = client

    def __str__(self) -> str:
        return f"API client {self.client.name}"

    def has_role(self, *names: str) -> bool:
        return False

    def has_perm(self, *args, **kwargs) -> bool:
        return False


def bearer_token(request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, else None."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


_key_sql: dict[str, str] = {}


def _key_lookup_sql(vendor: str) -> str:
    """The key-and-client lookup by prefix, composed once per process (no ORM compilation per
    request: that was most of the lookup's CPU)."""
    if vendor not in _key_sql:
        quote = connection.ops.quote_name

        def columns(model, *names):
            table = quote(model._meta.db_table)
            return [f"{table}.{quote(model._meta.get_field(name).column)}" for name in names]

        selected = columns(ApiKey, "id", "digest", "expires_at", "revoked_at", "last_used_at") + columns(
            ApiClient, "id", "name", "scopes", "rate_per_minute", "revoked_at"
        )
        key_table, client_table = quote(ApiKey._meta.db_table), quote(ApiClient._meta.db_table)
        _key_sql[vendor] = (
            f"SELECT {', '.join(selected)} FROM {key_table} INNER JOIN {client_table} ON "
            f"{client_table}.{quote('id')} = {key_table}.{quote(ApiKey._meta.get_field('client').column)} "
            f"WHERE {key_table}.{quote(ApiKey._meta.get_field('prefix').column)} = %s"
        )
    return _key_sql[vendor]


def _aware(value) -> datetime.datetime | None:
    """A datetime as the ORM gives it (aware, UTC), from raw SQL (SQLite: naive text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.replace(tzinfo=datetime.UTC) if timezone.is_naive(value) else value


def key_authenticate(*, raw_key: str) -> ApiKey:
    """``accounts.services.api_key_authenticate`` for the request path: the same checks, errors
    and ``last_used_at`` writes (at most once per LAST_USED_RESOLUTION per key), with the
    lookup as one fixed SQL statement. Returns the key with its client (unsaved copies of the
    rows: read them, do not save them)."""
    prefix = _key_parts(raw_key)
    row = None
    if prefix is not None:
        with connection.cursor() as cursor:
            cursor.execute(_key_lookup_sql(connection.vendor), [prefix])
            row = cursor.fetchone()
    # compare_digest: the time taken does not tell how much of a guessed digest matched.
    if row is None or not hmac.compare_digest(row[1], api_key_digest(raw_key)):
        raise ApiKeyError("invalid_key", "The API key is not valid.")
    key_id, _digest, expires_at, revoked_at, last_used_at, client_id, name, scopes, rate, client_revoked_at = row
    if isinstance(scopes, str):
        scopes = json.loads(scopes)
    client = ApiClient(
        id=client_id, name=name, scopes=scopes, rate_per_minute=rate, revoked_at=_aware(client_revoked_at)
    )
    key = ApiKey(
        id=key_id,
        client=client,
        prefix=prefix,
        expires_at=_aware(expires_at),
        revoked_at=_aware(revoked_at),
        last_used_at=_aware(last_used_at),
    )
    now = timezone.now()
    if key.revoked_at is not None or client.revoked_at is not None:
        raise ApiKeyError("revoked_key", "The API key has been revoked; ask the back office for a new one.")
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiKeyError("expired_key", f"The API key expired at {key.expires_at.isoformat()}.")
    if key.last_used_at is None or key.last_used_at <= now - LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        key.last_used_at = now
    return key


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer mk_<prefix>_<secret>``; a bad key answers 401, never falls
    through to the session."""

    def authenticate(self, request):
        params = request.query_params
        if any(name in params for name in QUERY_KEY_PARAMS):
            raise KeyInQueryString()
        token = bearer_token(request._request)
        if token is None:
            return None
        if not token:
            raise exceptions.AuthenticationFailed("The Authorization header has no key after 'Bearer'.")
        try:
            key: ApiKey = key_authenticate(raw_key=token)
        except ApiKeyError as error:
            raise exceptions.AuthenticationFailed(error.message, code=error.code) from None
        return ApiClientPrincipal(key.client), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="api"'


class StaffSessionAuthentication(SessionAuthentication):
    """A signed-in back-office user (the permissions then allow reads only, and only with a
    role). DRF checks CSRF for unsafe methods."""
