"""Access control for the back office's own (non-admin) pages."""

from __future__ import annotations

import logging
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

#: Sign-in failures, lockouts and refused second-factor codes, at WARNING, with the user name
#: and client address (passwords and codes are never logged). See docs/operations.md.
security_log = logging.getLogger("backoffice.security")


def role_required(*roles: str):
    """Anonymous users go to the login page; signed-in users without one of ``roles`` get 403.

    With no roles named, any back-office role will do.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not request.user.has_role(*roles):
                raise PermissionDenied("Your role does not give access to this page.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def client_ip(request) -> str | None:
    """The client's address for the login lockout (django-axes' AXES_CLIENT_IP_CALLABLE).

    Written here because django-ipware's proxy-count mode only accepts a header with exactly
    N+1 entries and otherwise gives no address at all, which lets a client that adds its own
    X-Forwarded-For entries pick a new address per attempt. The rule here: behind N trusted
    proxies that each append the address they saw, the N-th entry from the right is the one
    our outermost proxy saw; anything to its left was written by the client and is ignored.
    """
    remote = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if not count:
        return remote
    entries = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()]
    if len(entries) < count:
        return remote
    return entries[-count]


def log_sign_in_failed(sender, credentials: dict, request=None, **kwargs) -> None:
    """``user_login_failed`` receiver: one line per failed sign-in, locked out or not."""
    security_log.warning(
        "Sign-in failed: username=%r ip=%s",
        (credentials or {}).get("username"),
        client_ip(request) if request is not None else None,
    )


def log_locked_out(sender, request, username, ip_address, **kwargs) -> None:
    """django-axes' ``user_locked_out`` receiver: a failure that (re)locks the pair. With axes'
    default, a try while locked counts as a failure and locks again; with
    AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT=False it is refused uncounted (axes then
    leaves ``axes_failures_since_start`` unset)."""
    failures = getattr(request, "axes_failures_since_start", None)
    if isinstance(failures, int):
        minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
        security_log.warning(
            "Sign-in locked out: username=%r ip=%s after %d failed attempts, for %d minutes",
            username,
            ip_address,
            failures,
            minutes,
        )
    else:
        security_log.warning("Sign-in refused while locked out: username=%r ip=%s", username, ip_address)
