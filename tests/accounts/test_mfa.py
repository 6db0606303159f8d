"""The second factor (django-otp): required for every back-office page when DEBUG is off,
asked after the password, set up on first sign-in with recovery codes, reset by an
administrator."""

from __future__ import annotations

import datetime
import re
from base64 import b32encode

import pytest
import time_machine
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import (
    RECOVERY_CODE_COUNT,
    mfa_enrolment_confirm,
    mfa_enrolment_start,
    mfa_verify,
    user_mfa_reset,
)
from tests.api.test_auth import _sample_paths

pytestmark = pytest.mark.django_db

START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)
PASSWORD = "correct-horse-battery"
#: Reachable by a signed-in session that has not passed the second factor, with their answer.
EXEMPT = {"/healthz/", "/account/mfa/", "/account/mfa/setup/", "/admin/logout/"}


@pytest.fixture(autouse=True)
def mfa_on(settings):
    """Production's setting (the test settings switch it off for the rest of the suite)."""
    assert settings.DEBUG is False
    settings.MFA_REQUIRED = True


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def code_for(device: TOTPDevice) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift):06d}"


def enrolled(user) -> TOTPDevice:
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    recovery = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    StaticToken.objects.create(device=recovery, token="abcd2345")
    return device


def sign_in(client, username: str):
    return client.post("/admin/login/?next=/review/", {"username": username, "password": PASSWORD})


def test_a_user_without_a_device_reaches_no_back_office_page(client, administrator, catalog_product):
    client.force_login(administrator)  # the strongest role: every page would answer it
    paths = [path for path in _sample_paths() if not path.startswith("/api/")]
    assert len(paths) > 50
    for path in sorted(set(paths) - EXEMPT):
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            assert response.status_code == 302, (method, path, response.status_code)
            assert response["Location"].startswith("/account/mfa/?next="), (method, path, response["Location"])
    assert client.get("/healthz/").status_code == 200
    assert client.get("/account/mfa/?next=/")["Location"] == "/account/mfa/setup/?next=%2F"
    assert client.get("/account/mfa/setup/").status_code == 200
    # The API's staff session is refused too, in JSON.
    response = client.get("/api/v1/links/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "second_factor_required"


@pytest.fixture
def catalog_product(db):
    from tests.factories import ProductFactory

    return ProductFactory(sku="X1")


def test_with_a_device_the_sign_in_asks_for_the_code(client, specialist, clock):
    device = enrolled(specialist)
    response = sign_in(client, "specialist")
    assert response.status_code == 302
    response = client.get(response["Location"])
    assert (response.status_code, response["Location"]) == (302, "/account/mfa/?next=/review/")
    page = client.get("/account/mfa/?next=/review/")
    assert page.status_code == 200
    assert "Enter your code" in page.content.decode()
    assert client.get("/review/")["Location"] == "/account/mfa/?next=/review/"

    wrong = client.post("/account/mfa/", {"code": "000000" if code_for(device) != "000000" else "111111"})
    assert wrong.status_code == 200
    assert "That code is not right." in wrong.content.decode()
    assert client.get("/review/").status_code == 302
    # django-otp's throttle: right after a wrong code, even the right one waits.
    throttled = client.post("/account/mfa/", {"code": code_for(device), "next": "/review/"})
    assert "Wait 1 second before the next try: the wait doubles with each wrong code." in throttled.content.decode()

    clock.shift(datetime.timedelta(seconds=30))
    session_key = client.session.session_key
    response = client.post("/account/mfa/", {"code": code_for(device), "next": "/review/"})
    assert (response.status_code, response["Location"]) == (302, "/review/")
    assert client.session.session_key != session_key  # a new key at the change of privilege
    assert client.get("/review/").status_code == 200
    assert client.get("/api/v1/links/").status_code == 200


def test_a_recovery_code_works_once(client, specialist, clock):
    enrolled(specialist)
    sign_in(client, "specialist")
    response = client.post("/account/mfa/", {"code": "ABCD 2345", "next": "/"})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert client.get("/").status_code == 200
    assert StaticToken.objects.count() == 0

    client.post("/admin/logout/")
    clock.shift(datetime.timedelta(seconds=30))
    sign_in(client, "specialist")
    again = client.post("/account/mfa/", {"code": "abcd2345"})
    assert "You have no recovery codes left." in again.content.decode()
    assert client.get("/").status_code == 302


def test_a_next_to_another_site_is_not_followed(client, specialist, clock):
    device = enrolled(specialist)
    sign_in(client, "specialist")
    response = client.post("/account/mfa/", {"code": code_for(device), "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_first_sign_in_sets_up_the_app_then_shows_ten_recovery_codes_once(client, specialist, clock):
    sign_in(client, "specialist")
    assert client.get("/review/")["Location"] == "/account/mfa/?next=/review/"
    assert client.get("/account/mfa/?next=/review/")["Location"] == "/account/mfa/setup/?next=%2Freview%2F"
    page = client.get("/account/mfa/setup/?next=/review/")
    assert page.status_code == 200
    assert set(page["Cache-Control"].split(", ")) == {"no-store", "max-age=0", "no-cache", "must-revalidate", "private"}
    html = page.content.decode()
    device = TOTPDevice.objects.get(user=specialist)
    assert device.confirmed is False
    secret = b32encode(device.bin_key).decode()
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in html
    assert re.search(r'<div class="mfa-qr"[^>]*><svg [^>]*xmlns="http://www.w3.org/2000/svg"><path d="M', html)
    assert "<script" not in html.split("</header>")[1]  # the CSP allows no inline script
    # A reload shows the same key (the app may already have scanned it).
    client.get("/account/mfa/setup/")
    assert list(TOTPDevice.objects.values_list("pk", flat=True)) == [device.pk]

    wrong = client.post("/account/mfa/setup/", {"code": "12345", "next": "/review/"})
    assert "That code is not right" in wrong.content.decode()
    assert TOTPDevice.objects.get().confirmed is False
    assert TOTPDevice.objects.get().throttling_failure_count == 1  # the throttle counts enrolment too
    throttled = client.post("/account/mfa/setup/", {"code": code_for(device), "next": "/review/"})
    assert "Wait 1 second before the next try: the wait doubles with each wrong code." in throttled.content.decode()

    clock.shift(datetime.timedelta(seconds=30))
    done = client.post("/account/mfa/setup/", {"code": code_for(device), "next": "/review/"})
    assert done.status_code == 200
    assert set(done["Cache-Control"].split(", ")) == {"no-store", "max-age=0", "no-cache", "must-revalidate", "private"}
    shown = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert len(shown) == RECOVERY_CODE_COUNT == 10
    assert sorted(shown) == sorted(StaticToken.objects.filter(device__user=specialist).values_list("token", flat=True))
    assert TOTPDevice.objects.get().confirmed is True
    assert client.get("/review/").status_code == 200
    # Shown once: the setup page is gone for this user, and never lists the codes again.
    again = client.get("/account/mfa/setup/")
    assert again.status_code == 302
    assert not any(code in client.get(again["Location"], follow=True).content.decode() for code in shown)


def test_enrolment_refuses_a_user_who_has_a_device(specialist):
    from django.core.exceptions import ValidationError

    enrolled(specialist)
    with pytest.raises(ValidationError, match="already set up"):
        mfa_enrolment_start(user=specialist, device_id=None)


def test_an_administrator_resets_a_second_factor(client, administrator, specialist, clock):
    from django.test import Client

    device = enrolled(specialist)
    theirs = Client()
    sign_in(theirs, "specialist")
    theirs.post("/account/mfa/", {"code": code_for(device), "next": "/"})
    assert theirs.get("/").status_code == 200

    admin_device = enrolled(administrator)
    sign_in(client, "administrator")
    clock.shift(datetime.timedelta(seconds=30))
    client.post("/account/mfa/", {"code": code_for(admin_device)})
    users = client.get("/admin/accounts/user/").content.decode()
    assert "reset_second_factor" in users
    response = client.post(
        "/admin/accounts/user/",
        {"action": "reset_second_factor", "_selected_action": [specialist.pk]},
        follow=True,
    )
    assert "Second factor reset for specialist." in response.content.decode()
    assert not TOTPDevice.objects.filter(user=specialist).exists()
    assert not StaticDevice.objects.filter(user=specialist).exists()
    assert TOTPDevice.objects.filter(user=administrator).count() == 1
    # Their open session is ended: the next page asks for the password again.
    assert theirs.get("/")["Location"] == "/admin/login/?next=/"
    assert client.get("/").status_code == 200  # the administrator's own session goes on
    # Nothing left to reset: the service says so.
    assert user_mfa_reset(user=specialist, actor=administrator) == 0


def test_only_administrators_may_reset(client, specialist, marketer):
    enrolled(marketer)
    client.force_login(specialist)
    from django_otp import DEVICE_ID_SESSION_KEY

    own = enrolled(specialist)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = own.persistent_id
    session.save()
    assert client.get("/").status_code == 200  # verified
    response = client.post(
        "/admin/accounts/user/", {"action": "reset_second_factor", "_selected_action": [marketer.pk]}
    )
    assert response.status_code == 403
    assert TOTPDevice.objects.filter(user=marketer).count() == 1


def test_the_device_models_are_not_in_the_admin():
    from django.contrib import admin

    assert not admin.site.is_registered(TOTPDevice)
    assert not admin.site.is_registered(StaticDevice)


def test_mfa_off_lets_a_password_session_in(client, specialist, settings):
    settings.MFA_REQUIRED = False  # DEBUG=true's default: make run's demo users
    sign_in(client, "specialist")
    assert client.get("/review/").status_code == 200


def _secret_shown(page) -> str:
    return re.search(r'<code class="mfa-secret">([A-Z2-7 ]+)</code>', page.content.decode()).group(1).replace(" ", "")


def _device_of(secret: str) -> TOTPDevice:
    return next(d for d in TOTPDevice.objects.filter(confirmed=False) if b32encode(d.bin_key).decode() == secret)


def test_each_session_enrols_its_own_device(client, specialist, clock):
    """Whoever holds only the password must not see the secret of someone else's enrolment."""
    mine, theirs = Client(), Client()
    sign_in(mine, "specialist")
    sign_in(theirs, "specialist")
    my_secret = _secret_shown(mine.get("/account/mfa/setup/"))
    their_secret = _secret_shown(theirs.get("/account/mfa/setup/"))
    assert my_secret != their_secret
    assert TOTPDevice.objects.filter(user=specialist, confirmed=False).count() == 2
    assert _secret_shown(mine.get("/account/mfa/setup/")) == my_secret  # a reload keeps the session's device
    my_device, their_device = _device_of(my_secret), _device_of(their_secret)
    their_code = code_for(their_device)  # the clock stands still: still valid after the other confirms

    done = mine.post("/account/mfa/setup/", {"code": code_for(my_device), "next": "/"})
    assert done.status_code == 200
    assert list(TOTPDevice.objects.filter(user=specialist).values_list("pk", "confirmed")) == [(my_device.pk, True)]

    # The other session's enrolment is gone, with a message that says so (no 500).
    late = theirs.post("/account/mfa/setup/", {"code": their_code, "next": "/"})
    assert (late.status_code, late["Location"]) == (302, "/account/mfa/?next=%2F")
    page = theirs.get(late["Location"]).content.decode()
    assert "A second factor is already set up; an administrator can reset it." in page
    assert theirs.get("/")["Location"] == "/account/mfa/?next=/"
    with pytest.raises(ValidationError, match="already set up"):
        mfa_enrolment_confirm(user=specialist, device_id=their_device.pk, token=their_code)
    assert TOTPDevice.objects.filter(user=specialist).count() == 1


def test_confirming_a_second_pending_device_is_refused(specialist, clock):
    """Two enrolments racing: the one that confirms second finds the factor set up and is refused."""
    first = mfa_enrolment_start(user=specialist, device_id=None)
    second = mfa_enrolment_start(user=specialist, device_id=None)
    assert first.pk != second.pk
    # The second pending device outlives the first confirmation (created just after it, in a race).
    mfa_enrolment_confirm(user=specialist, device_id=first.pk, token=code_for(first))
    late = TOTPDevice.objects.create(user=specialist, name="Authenticator app", confirmed=False)
    with pytest.raises(ValidationError, match="already set up"):
        mfa_enrolment_confirm(user=specialist, device_id=late.pk, token=code_for(late))
    # The late device stays pending and useless (a reset removes it with the rest).
    assert list(TOTPDevice.objects.filter(user=specialist).values_list("pk", "confirmed").order_by("pk")) == [
        (first.pk, True),
        (late.pk, False),
    ]
    with pytest.raises(ValidationError, match="already set up"):
        mfa_enrolment_start(user=specialist, device_id=second.pk)


def test_a_reset_ends_every_session_of_the_user(client, specialist, administrator, clock):
    device = enrolled(specialist)
    verified, unverified = Client(), Client()
    sign_in(verified, "specialist")
    verified.post("/account/mfa/", {"code": code_for(device), "next": "/"})
    assert verified.get("/").status_code == 200
    sign_in(unverified, "specialist")
    client.force_login(administrator)
    assert Session.objects.count() == 3

    assert user_mfa_reset(user=specialist, actor=administrator) == 2
    assert Session.objects.count() == 1  # the administrator's
    assert Session.objects.get().get_decoded()["_auth_user_id"] == str(administrator.pk)
    for old in (verified, unverified):
        # Neither old session can enrol a new device: both must sign in again.
        response = old.get("/account/mfa/setup/")
        assert (response.status_code, response["Location"]) == (302, "/admin/login/?next=/account/mfa/setup/")
        assert old.post("/account/mfa/setup/", {"code": "123456"})["Location"].startswith("/admin/login/")
    assert TOTPDevice.objects.filter(user=specialist).count() == 0
    # With no device left, a reset still ends the sessions (a session signed in just before it).
    again = Client()
    sign_in(again, "specialist")
    assert user_mfa_reset(user=specialist, actor=administrator) == 0
    assert again.get("/")["Location"] == "/admin/login/?next=/"


def test_a_recovery_code_of_digits_only_is_a_recovery_code(client, specialist, clock):
    """Recovery codes are 8 characters of base32 (a-z, 2-7): now and then all digits."""
    assert len(StaticToken.random_token()) == 8
    device = enrolled(specialist)
    assert device.digits == 6
    StaticToken.objects.create(device=StaticDevice.objects.get(user=specialist), token="23456723")
    assert mfa_verify(user=specialist, code="2345 6723").persistent_id == StaticDevice.objects.get().persistent_id
    assert list(StaticToken.objects.values_list("token", flat=True)) == ["abcd2345"]
    # Six digits still go to the authenticator app, and a wrong length of digits is not a TOTP code.
    assert mfa_verify(user=specialist, code=code_for(device)).persistent_id == device.persistent_id
    with pytest.raises(ValidationError, match="That code is not right."):
        mfa_verify(user=specialist, code="1234567")


def test_the_setup_page_answers_a_lost_race_with_a_message(client, specialist, monkeypatch):
    def already(**kwargs):
        # Another session confirmed its enrolment between this page's check and its start.
        enrolled(specialist)
        raise ValidationError("A second factor is already set up; an administrator can reset it.")

    monkeypatch.setattr("config.views.mfa_enrolment_start", already)
    client.force_login(specialist)
    response = client.get("/account/mfa/setup/?next=/review/")
    assert (response.status_code, response["Location"]) == (302, "/account/mfa/?next=%2Freview%2F")
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "A second factor is already set up; an administrator can reset it." in page.content.decode()


def test_an_administrator_who_resets_their_own_second_factor_is_signed_out(client, administrator, clock):
    device = enrolled(administrator)
    sign_in(client, "administrator")
    client.post("/account/mfa/", {"code": code_for(device)})
    response = client.post(
        "/admin/accounts/user/", {"action": "reset_second_factor", "_selected_action": [administrator.pk]}
    )
    assert (response.status_code, response["Location"]) == (302, "/admin/accounts/user/")
    assert client.get("/admin/accounts/user/")["Location"] == "/admin/login/?next=/admin/accounts/user/"
    assert TOTPDevice.objects.count() == 0
    assert not any("_auth_user_id" in session.get_decoded() for session in Session.objects.all())
