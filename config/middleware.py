"""Middleware of the project."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone

from merchandising.api.authentication import bearer_token
from merchandising.api.exceptions import json_error

API_PREFIX = "/api/"
#: The second-factor pages (code, enrolment): reachable by a session that has not passed it yet.
MFA_PREFIX = "/account/mfa/"


class ApiBoundaryMiddleware:
    """Keeps webshop API keys inside /api/, and API errors in JSON.

    A request with ``Authorization: Bearer ...`` anywhere outside /api/ gets 403 (JSON) before
    any view runs: a webshop key can never reach a back-office page, not even the login
    redirect. Under /api/, Django's own 404 and 405 pages (an unknown URL) become JSON errors of
    the API's shape. Placed first after SecurityMiddleware, so no session is loaded for it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        in_api = request.path.startswith(API_PREFIX)
        if not in_api and bearer_token(request) is not None:
            return json_error(
                403,
                "api_key_not_allowed",
                "API keys are only accepted under /api/; back-office pages need a signed-in user.",
            )
        response = self.get_response(request)
        if (
            in_api
            and response.status_code in (404, 405)
            and not response.get("Content-Type", "").startswith("application/")
        ):
            if response.status_code == 404:
                return json_error(404, "not_found", f"There is no API endpoint at {request.path}.")
            return json_error(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}.")
        return response


#: Session key of the sign-in time (seconds since the epoch), written at every sign-in.
SIGNED_IN_AT = "signed_in_at"


def session_signed_in(sender, request, user, **kwargs) -> None:
    """``user_logged_in`` receiver: starts the session's absolute lifetime. Every sign-in sets
    it afresh (Django keeps the session's data when the same user signs in again)."""
    if request is not None and hasattr(request, "session"):
        request.session[SIGNED_IN_AT] = int(timezone.now().timestamp())


class SessionLifetimeMiddleware:
    """Ends a session SESSION_ABSOLUTE_LIFETIME seconds after its sign-in, however active it
    was (the idle timeout alone would keep a busy or stolen session alive for ever). A session
    without a sign-in time (one from before this limit existed) counts as expired."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            started = request.session.get(SIGNED_IN_AT)
            age = timezone.now().timestamp() - started if isinstance(started, int | float) else None
            if age is None or age >= settings.SESSION_ABSOLUTE_LIFETIME:
                logout(request)
                if not request.path.startswith(API_PREFIX):
                    hours = settings.SESSION_ABSOLUTE_LIFETIME / 3600
                    messages.info(request, f"Your session reached its limit of {hours:g} hours; please sign in again.")
        return self.get_response(request)


class MfaRequiredMiddleware:
    """With MFA_REQUIRED, a signed-in session that has not passed the second factor reaches
    nothing but the second-factor pages and sign-out: every other back-office URL (the admin,
    the review queue, the links pages, the overview, any page added later) redirects to the
    code page, which sends a user without a device on to enrolment. Placed as middleware so
    that a new page cannot forget it. The API answers for itself (401 in JSON: see
    merchandising.api.authentication.StaffSessionAuthentication); static files and the health
    check need no user."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.MFA_REQUIRED and request.user.is_authenticated and not request.user.is_verified():
            path = request.path
            exempt = (
                path.startswith((API_PREFIX, MFA_PREFIX, "/" + settings.STATIC_URL.lstrip("/")))
                or path == reverse("healthz")
                or path == reverse("admin:logout")
            )
            if not exempt:
                return redirect_to_login(request.get_full_path(), login_url=reverse("mfa_verify"))
        return self.get_response(request)
