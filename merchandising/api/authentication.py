"""Who is calling the webshop API: an API client with ``Authorization: Bearer <key>``, or a
signed-in back-office user (read-only previews)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication

from accounts.models import ApiClient, ApiKey
from accounts.services import ApiKeyError, api_key_authenticate

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
            key: ApiKey = api_key_authenticate(raw_key=token)
        except ApiKeyError as error:
            raise exceptions.AuthenticationFailed(error.message, code=error.code) from None
        return ApiClientPrincipal(key.client), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="api"'


class StaffSessionAuthentication(SessionAuthentication):
    """A signed-in back-office user (the permissions then allow reads only, and only with a
    role). DRF checks CSRF for unsafe methods."""
