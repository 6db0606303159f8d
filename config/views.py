from base64 import b32encode
from urllib.parse import urlencode

import qrcode
from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_otp import login as otp_login
from qrcode.image.svg import SvgPathImage

from accounts.models import API_KEY_EXPIRY_NOTICE, ApiKey
from accounts.roles import ADMINISTRATOR
from accounts.services import mfa_enrolment_confirm, mfa_enrolment_start, user_has_mfa
from accounts.services import mfa_verify as mfa_verify_code
from catalog.selectors import catalog_overview
from config.access import client_ip, role_required, security_log


@role_required()
def home(request):
    """The back office's front page: where to go next, and the state of the catalog (and, for
    administrators, the API keys that expire soon)."""
    context = {"overview": catalog_overview(), "title": "Overview"}
    if request.user.has_role(ADMINISTRATOR):
        context["expiring_keys"] = list(ApiKey.objects.expiring_within(API_KEY_EXPIRY_NOTICE).select_related("client"))
        context["expiry_notice_days"] = API_KEY_EXPIRY_NOTICE.days
    return render(request, "home.html", context)


@require_GET
@never_cache
def healthz(request):
    """For load balancers and monitoring: answers without login and reveals nothing but health."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any database failure means "unhealthy"
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


# --- second factor: the code after the password, and enrolment ----------------------------------------


class MfaCodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}),
    )


def _next_url(request) -> str:
    """Where to go after the second factor: the ``next`` the login carried, if it is ours."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return wanted
    return reverse("home")


def _with_next(name: str, next_url: str) -> str:
    return f"{reverse(name)}?{urlencode({'next': next_url})}"


def _mfa_context(request, **extra) -> dict:
    # has_permission False: no back-office navigation until the second factor is passed.
    return {"title": "Enter your code", "has_permission": False, "next": _next_url(request), **extra}


def _mark_verified(request, device) -> None:
    # A new session key at the change of privilege, as Django does at sign-in.
    request.session.cycle_key()
    otp_login(request, device)


@never_cache
def mfa_verify(request):
    """After the password: the code of the authenticator app, or a recovery code."""
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if user.is_verified():
        return redirect(_next_url(request))
    if not user_has_mfa(user):
        return redirect(_with_next("mfa_setup", _next_url(request)))
    form = MfaCodeForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            device = mfa_verify_code(user=user, code=form.cleaned_data["code"])
        except ValidationError as error:
            security_log.warning(
                "Second-factor code refused: username=%r ip=%s", user.get_username(), client_ip(request)
            )
            form.add_error("code", error)
        else:
            _mark_verified(request, device)
            return redirect(_next_url(request))
    return render(request, "registration/mfa_verify.html", _mfa_context(request, form=form))


#: The unconfirmed device of this session's enrolment: each session enrols its own, so that
#: another session of the same user (whoever holds the password) never sees its secret.
PENDING_DEVICE_SESSION_KEY = "mfa_pending_device_id"


@never_cache
def mfa_setup(request):
    """Enrolment: scan the QR code (or type the secret), confirm with a first code, then the
    recovery codes are shown, once."""
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if user_has_mfa(user):
        # Set up meanwhile (in another session, perhaps while this one was enrolling).
        if request.session.pop(PENDING_DEVICE_SESSION_KEY, None) is not None:
            messages.error(request, "A second factor is already set up; an administrator can reset it.")
        return redirect(_with_next("mfa_verify", _next_url(request)))
    form = MfaCodeForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            device, codes = mfa_enrolment_confirm(
                user=user, device_id=request.session.get(PENDING_DEVICE_SESSION_KEY), token=form.cleaned_data["code"]
            )
        except ValidationError as error:
            form.add_error("code", error)
        else:
            del request.session[PENDING_DEVICE_SESSION_KEY]
            _mark_verified(request, device)
            response = render(
                request,
                "registration/mfa_recovery_codes.html",
                _mfa_context(request, codes=codes, title="Your recovery codes"),
            )
            response["Cache-Control"] = "no-store"  # the codes must not sit in any cache
            return response
    try:
        device = mfa_enrolment_start(user=user, device_id=request.session.get(PENDING_DEVICE_SESSION_KEY))
    except ValidationError as error:  # another session confirmed its enrolment just now
        request.session.pop(PENDING_DEVICE_SESSION_KEY, None)
        messages.error(request, error.messages[0])
        return redirect(_with_next("mfa_verify", _next_url(request)))
    request.session[PENDING_DEVICE_SESSION_KEY] = device.pk
    qr = qrcode.make(device.config_url, image_factory=SvgPathImage, border=2)
    secret = b32encode(device.bin_key).decode()
    context = _mfa_context(
        request,
        form=form,
        # Our own SVG (a path, no script), inline so that no image URL carries the secret.
        qr_svg=mark_safe(qr.to_string(encoding="unicode")),  # noqa: S308
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        title="Set up your second factor",
    )
    response = render(request, "registration/mfa_setup.html", context)
    response["Cache-Control"] = "no-store"
    return response
