"""Middleware of the project."""

from __future__ import annotations

import io
import tempfile

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
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


# --- request size ---------------------------------------------------------------------------------


#: Set in the WSGI environ by ChunkedBodyLimit when it stopped reading a body at its limit.
CUT_OFF = "merchandising.body_cut_off"


def body_limit(content_type: str, *, signed_in: bool) -> int | None:
    """The largest request body accepted, in bytes: a file upload (multipart) of a signed-in
    back-office user up to MAX_UPLOAD_MB; any other body (the API's JSON, plain forms, and
    anything an anonymous client sends) up to Django's DATA_UPLOAD_MAX_MEMORY_SIZE (None: no
    limit), the limit Django itself applies when it reads such a body into memory. So a client
    that has not signed in can never make us read (or spool to disk) more than that."""
    if signed_in and content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
        return settings.MAX_UPLOAD_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _megabytes(size: int) -> str:
    """A size as people read it: 1000 bytes, 4.9 KB, 2.5 MB (binary units, one decimal)."""
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def too_large_response(request: HttpRequest, *, limit: int, size: int | None) -> HttpResponse:
    """413, in the API's JSON shape under /api/, as a page of the back office elsewhere."""
    got = f"{_megabytes(size)}" if size is not None else f"more than {_megabytes(limit)}"
    if request.path.startswith(API_PREFIX):
        return json_error(
            413,
            "request_too_large",
            f"The request body is {got}; at most {limit} bytes ({_megabytes(limit)}) are accepted. "
            "Send smaller requests (e.g. events in several batches).",
        )
    html = render_to_string(
        "413.html",
        {"got": got, "limit": _megabytes(limit), "back": request.get_full_path()},
        request=request,
    )
    return HttpResponse(html, status=413)


class RequestSizeLimitMiddleware:
    """Refuses a request whose body is larger than it may be (``body_limit``) with 413 before
    anything reads the body: the declared Content-Length is enough to know, so a 2 GB upload
    costs no memory, no temporary file and no time. A body sent without Content-Length
    (chunked) is counted while it is read, by ``ChunkedBodyLimit`` (config/wsgi.py), which
    marks one it cut off.

    Placed after authentication, the session lifetime and the second factor (none of which
    reads the body), so that only a fully signed-in user gets the upload limit, and before any
    view: CSRF reads a form body only in its process_view, which runs after every
    middleware's request phase."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get(CUT_OFF):
            return too_large_response(request, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE, size=None)
        user = request.user
        # Signed in means both factors where they are required: a password alone (a phished
        # one, say) reaches the second-factor pages, which read a form body, and must not get
        # the upload limit there.
        signed_in = user.is_authenticated and (not settings.MFA_REQUIRED or user.is_verified())
        limit = body_limit(request.META.get("CONTENT_TYPE", ""), signed_in=signed_in)
        if limit is not None:
            try:
                size = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                size = 0  # Django reads nothing of a body whose length it cannot parse
            if size > limit:
                return too_large_response(request, limit=limit, size=size)
        return self.get_response(request)


class ChunkedBodyLimit:
    """WSGI wrapper for bodies sent without Content-Length (``Transfer-Encoding: chunked``).

    Django reads no byte of such a body (it trusts only Content-Length), so a chunked upload
    would arrive empty. When the server has de-chunked the stream and marks its end
    (``wsgi.input_terminated``, as gunicorn does), the body is read here up to its limit into a
    spooled temporary file (memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, then disk) and handed on
    with its real Content-Length; one byte past the limit stops the read with 413, so a
    never-ending stream is cut off at the limit."""

    CHUNK = 64 * 1024

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            # Who sends it is not known yet (no session is read here), so every chunked body
            # gets the limit of one that has not signed in; browsers send uploads with a length.
            limit = body_limit(environ.get("CONTENT_TYPE", ""), signed_in=False)
            body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115
            size = 0
            stream = environ["wsgi.input"]
            while True:
                wanted = self.CHUNK if limit is None else min(self.CHUNK, limit + 1 - size)
                chunk = stream.read(wanted)
                if not chunk:
                    break
                size += len(chunk)
                if limit is not None and size > limit:
                    # Django answers it (413 through RequestSizeLimitMiddleware, with the
                    # headers of every response); nothing more of the stream is read.
                    body.close()
                    environ["wsgi.input"] = io.BytesIO(b"")
                    environ["CONTENT_LENGTH"] = str(size)
                    environ[CUT_OFF] = True
                    return self.application(environ, start_response)
                body.write(chunk)
            body.seek(0)
            environ["wsgi.input"] = body
            environ["CONTENT_LENGTH"] = str(size)
        return self.application(environ, start_response)
