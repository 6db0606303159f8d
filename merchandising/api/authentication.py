"""Who is calling the webshop API: an API client with ``Authorization: Bearer <key>``, or a
signed-in back-office user (read-only previews)."""

from __future__ import annotations

import json

from django.conf import settings
from django.db import connection
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication

from accounts.models import ApiClient, ApiKey
from accounts.services import ApiKeyError, api_key_check, api_key_prefix
from merchandising.selectors.api import aware_utc

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


def key_authenticate(*, raw_key: str) -> ApiKey:
    """``accounts.services.api_key_authenticate`` for the request path: the lookup as one fixed
    SQL statement, then the same ``api_key_check``. Returns the key with its client (unsaved copies of the
    rows: read them, do not save them)."""
    prefix = api_key_prefix(raw_key)
    row = None
    if prefix is not None:
        with connection.cursor() as cursor:
            cursor.execute(_key_lookup_sql(connection.vendor), [prefix])
            row = cursor.fetchone()
    key = None
    if row is not None:
        key_id, digest, expires_at, revoked_at, last_used_at, client_id, name, scopes, rate, client_revoked_at = row
        if isinstance(scopes, str):
            scopes = json.loads(scopes)
        client = ApiClient(
            id=client_id, name=name, scopes=scopes, rate_per_minute=rate, revoked_at=aware_utc(client_revoked_at)
        )
        key = ApiKey(
            id=key_id,
            client=client,
            prefix=prefix,
            digest=digest,
            expires_at=aware_utc(expires_at),
            revoked_at=aware_utc(revoked_at),
            last_used_at=aware_utc(last_used_at),
        )
    return api_key_check(raw_key=raw_key, key=key)


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
    role). DRF checks CSRF for unsafe methods. With MFA_REQUIRED, a session that has not
    passed the second factor is refused (401), like every back-office page."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None or not settings.MFA_REQUIRED:
            return result
        user = result[0]
        is_verified = getattr(user, "is_verified", None)  # set by django-otp's middleware
        if is_verified is None or not is_verified():
            raise exceptions.AuthenticationFailed(
                "This session has not passed the second factor: enter your code in the back office first.",
                code="second_factor_required",
            )
        return result
