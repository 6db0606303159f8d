"""Session limits and the browser-facing security headers: the absolute lifetime next to the
idle timeout, __Host- cookies with their flags, and the Content-Security-Policy."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.contrib.messages import get_messages

from tests.config.test_settings import load

pytestmark = pytest.mark.django_db

START = datetime.datetime(2026, 3, 2, 8, 0, tzinfo=datetime.UTC)
STEP = datetime.timedelta(minutes=25)  # below the 30-minute idle timeout: an active user


def test_an_active_session_ends_at_the_absolute_lifetime(client, specialist, settings):
    assert settings.SESSION_ABSOLUTE_LIFETIME == 8 * 60 * 60
    with time_machine.travel(START, tick=False) as clock:
        client.force_login(specialist)
        elapsed = datetime.timedelta(0)
        while elapsed + STEP < datetime.timedelta(hours=8):
            clock.shift(STEP)
            elapsed += STEP
            assert client.get("/").status_code == 200, elapsed
        # 7 h 55 min in (19 requests, each within the idle timeout): one second before the limit.
        assert elapsed == datetime.timedelta(hours=7, minutes=55)
        clock.move_to(START + datetime.timedelta(hours=8) - datetime.timedelta(seconds=1))
        assert client.get("/").status_code == 200
        clock.shift(datetime.timedelta(seconds=1))
        response = client.get("/")
        assert (response.status_code, response["Location"]) == (302, "/admin/login/?next=/")
        assert "_auth_user_id" not in client.session
        page = client.get(response["Location"])
        assert [str(m) for m in get_messages(page.wsgi_request)] == [
            "Your session reached its limit of 8 hours; please sign in again."
        ]
        # Signing in again starts a new 8 hours.
        login = client.post("/admin/login/?next=/", {"username": "specialist", "password": "correct-horse-battery"})
        assert login.status_code == 302
        assert client.session["signed_in_at"] == int((START + datetime.timedelta(hours=8)).timestamp())
        assert client.get("/").status_code == 200


def test_the_limit_is_a_setting_and_applies_to_the_api_session_too(client, specialist, settings):
    settings.SESSION_ABSOLUTE_LIFETIME = 600
    with time_machine.travel(START, tick=False) as clock:
        client.force_login(specialist)
        clock.shift(datetime.timedelta(seconds=599))
        assert client.get("/api/v1/schema/").status_code == 200
        clock.shift(datetime.timedelta(seconds=1))
        response = client.get("/api/v1/schema/")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"


def test_a_session_without_a_sign_in_time_is_ended(client, specialist):
    client.force_login(specialist)
    session = client.session
    del session["signed_in_at"]
    session.save()
    assert client.get("/")["Location"] == "/admin/login/?next=/"


def test_absolute_lifetime_settings(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    assert load(monkeypatch)["SESSION_ABSOLUTE_LIFETIME"] == 28800
    assert load(monkeypatch, SESSION_ABSOLUTE_LIFETIME="3600")["SESSION_ABSOLUTE_LIFETIME"] == 3600
    with pytest.raises(ImproperlyConfigured, match="^SESSION_ABSOLUTE_LIFETIME must not be below SESSION_IDLE_TIMEOUT"):
        load(monkeypatch, SESSION_ABSOLUTE_LIFETIME="600", SESSION_IDLE_TIMEOUT="1200")
    with pytest.raises(ImproperlyConfigured, match="^SESSION_ABSOLUTE_LIFETIME=60 is below the minimum of 300"):
        load(monkeypatch, SESSION_ABSOLUTE_LIFETIME="60")


# --- cookies --------------------------------------------------------------------------------------------


def test_session_and_csrf_cookies_carry_the_host_prefix_and_flags(client, specialist):
    page = client.get("/admin/login/")
    csrf = page.cookies["__Host-csrftoken"]
    login = client.post("/admin/login/?next=/", {"username": "specialist", "password": "correct-horse-battery"})
    assert login.status_code == 302
    session = login.cookies["__Host-sessionid"]
    for cookie in (csrf, session):
        # __Host-: Secure, Path=/ and no Domain, or browsers refuse the cookie.
        assert (cookie["secure"], cookie["path"], cookie["domain"]) == (True, "/", ""), cookie.key
        assert cookie["httponly"] is True, cookie.key  # no script of ours reads either cookie
        assert cookie["samesite"] == "Lax", cookie.key
    assert set(login.cookies) == {"__Host-sessionid", "__Host-csrftoken"}
    assert "sessionid" not in client.cookies and "csrftoken" not in client.cookies
    assert session["max-age"] == ""  # ends with the browser; the server ends it earlier


def test_cookie_names_by_mode(monkeypatch):
    production = load(monkeypatch)
    assert (production["SESSION_COOKIE_NAME"], production["CSRF_COOKIE_NAME"]) == (
        "__Host-sessionid",
        "__Host-csrftoken",
    )
    assert (production["SESSION_COOKIE_SECURE"], production["CSRF_COOKIE_SECURE"]) == (True, True)
    assert (production["SESSION_COOKIE_HTTPONLY"], production["CSRF_COOKIE_HTTPONLY"]) == (True, True)
    # make run serves http://127.0.0.1: no Secure cookies there, so no __Host- prefix either.
    development = load(monkeypatch, DEBUG="true")
    assert (development["SESSION_COOKIE_NAME"], development["CSRF_COOKIE_NAME"]) == ("sessionid", "csrftoken")
    assert (development["SESSION_COOKIE_SECURE"], development["CSRF_COOKIE_HTTPONLY"]) == (False, True)


def test_no_script_reads_the_csrf_cookie():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = [*root.joinpath("static").rglob("*.js"), *root.joinpath("templates").rglob("*.html")]
    assert len(sources) > 10
    readers = [str(path) for path in sources if "document.cookie" in path.read_text(errors="replace")]
    assert readers == []


# --- Content-Security-Policy ------------------------------------------------------------------------------

EXPECTED_CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/admin/login/", 200),
        ("/", 200),
        ("/review/", 200),
        ("/admin/catalog/product/", 200),
        ("/account/mfa/setup/", 200),
        ("/healthz/", 200),
    ],
)
def test_csp_on_back_office_pages(client, administrator, url, status):
    if url != "/admin/login/":
        client.force_login(administrator)
    response = client.get(url)
    assert response.status_code == status
    directives = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert directives == EXPECTED_CSP
