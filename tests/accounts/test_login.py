"""Login lockout (django-axes) and the idle session timeout."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

pytestmark = pytest.mark.django_db


def login(client, username, password):
    return client.post("/admin/login/?next=/", {"username": username, "password": password})


def test_correct_password_logs_in(client, specialist):
    response = login(client, "specialist", "correct-horse-battery")
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_lockout_after_repeated_failures(client, specialist):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "specialist", "wrong").status_code == 200
    locked = login(client, "specialist", "wrong")
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    # Even the right password is refused while locked.
    assert login(client, "specialist", "correct-horse-battery").status_code == 429
    assert "_auth_user_id" not in client.session
    # Another user from the same address is not affected (lockout is per user and address).
    from accounts.roles import MARKETING
    from tests.factories import UserFactory

    UserFactory(username="other", role=MARKETING)
    assert login(client, "other", "correct-horse-battery").status_code == 302


def test_lockout_expires_after_cool_off(client, specialist):
    from axes.models import AccessAttempt

    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "specialist", "wrong")
    assert login(client, "specialist", "correct-horse-battery").status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert login(client, "specialist", "correct-horse-battery").status_code == 302


def test_idle_session_expires_and_activity_extends_it(client, specialist):
    client.force_login(specialist)
    assert client.get("/").status_code == 200
    session = Session.objects.get()
    remaining = session.expire_date - timezone.now()
    assert (
        timedelta(seconds=settings.SESSION_COOKIE_AGE - 5) < remaining <= timedelta(seconds=settings.SESSION_COOKIE_AGE)
    )
    # Idle for longer than the timeout: the next request goes to the login page.
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/"


def test_session_expiry_slides_with_activity(client, specialist):
    client.force_login(specialist)
    client.get("/")
    Session.objects.update(expire_date=timezone.now() + timedelta(seconds=60))
    assert client.get("/").status_code == 200
    assert Session.objects.get().expire_date > timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE - 5)


@pytest.mark.parametrize(
    ("proxies", "forwarded", "remote", "expected"),
    [
        (0, "6.6.6.6", "10.0.0.1", "10.0.0.1"),  # no trusted proxy: the header is ignored
        (1, "6.6.6.6, 203.0.113.7", "10.0.0.1", "203.0.113.7"),  # client-written entry ignored
        (1, "203.0.113.7", "10.0.0.1", "203.0.113.7"),
        (2, "6.6.6.6, 203.0.113.7, 10.0.0.9", "10.0.0.1", "203.0.113.7"),
        (2, "203.0.113.7", "10.0.0.1", "10.0.0.1"),  # fewer entries than proxies: the connection
        (1, "", "10.0.0.1", "10.0.0.1"),
    ],
)
def test_client_ip_behind_trusted_proxies(rf, settings, proxies, forwarded, remote, expected):
    from config.access import client_ip

    settings.TRUSTED_PROXY_COUNT = proxies
    request = rf.get("/", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR=remote)
    assert client_ip(request) == expected


def test_spoofed_forwarded_for_does_not_escape_the_lockout(client, specialist, settings):
    settings.TRUSTED_PROXY_COUNT = 1

    def attempt(spoofed, password="wrong"):
        return client.post(
            "/admin/login/?next=/",
            {"username": "specialist", "password": password},
            HTTP_X_FORWARDED_FOR=f"{spoofed}, 203.0.113.7",
            REMOTE_ADDR="10.0.0.1",
        )

    for i in range(settings.AXES_FAILURE_LIMIT):
        attempt(f"6.6.6.{i}")
    assert attempt("6.6.6.99", "correct-horse-battery").status_code == 429


# --- failed sign-ins and lockouts: logged with user name and address, listed for administrators -------------


def security_lines(caplog) -> list[str]:
    return [
        (record.levelname, record.getMessage()) for record in caplog.records if record.name == "backoffice.security"
    ]


def test_failures_and_the_lockout_are_logged_with_username_and_address(client, specialist, caplog):
    caplog.set_level("WARNING", logger="backoffice.security")

    def attempt(username, password="wrong"):
        return client.post(
            "/admin/login/?next=/", {"username": username, "password": password}, REMOTE_ADDR="203.0.113.7"
        )

    attempt("nobody-here")  # an unknown user name is logged as typed
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt("specialist")
    assert attempt("specialist", "correct-horse-battery").status_code == 429
    failed = ("WARNING", "Sign-in failed: username='specialist' ip=203.0.113.7")
    locked = "Sign-in locked out: username='specialist' ip=203.0.113.7 after {} failed attempts, for 15 minutes"
    assert security_lines(caplog) == [
        ("WARNING", "Sign-in failed: username='nobody-here' ip=203.0.113.7"),
        *[failed] * 4,
        ("WARNING", locked.format(5)),
        failed,
        # A try while locked counts too and starts the cool-off again (axes' default).
        ("WARNING", locked.format(6)),
        failed,
    ]
    # No password in any log line, wrong or right.
    assert not [r for r in caplog.records if "wrong" in r.getMessage() or "correct-horse" in r.getMessage()]


def test_a_username_cannot_forge_log_lines(client, db, caplog):
    caplog.set_level("WARNING", logger="backoffice.security")
    client.post("/admin/login/", {"username": "x\nSign-in ok: admin", "password": "wrong"})
    assert security_lines(caplog) == [("WARNING", "Sign-in failed: username='x\\nSign-in ok: admin' ip=127.0.0.1")]


def test_failed_sign_ins_are_listed_for_administrators_only(client, specialist, marketer, administrator):
    from axes.models import AccessFailureLog

    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "specialist", "wrong")
    rows = list(AccessFailureLog.objects.order_by("attempt_time").values_list("username", "ip_address", "locked_out"))
    assert rows == [("specialist", "127.0.0.1", False)] * 4 + [("specialist", "127.0.0.1", True)]
    url = "/admin/accounts/failedsignin/"
    for user in (specialist, marketer):
        client.force_login(user)
        assert client.get(url).status_code == 403
        assert "Failed sign-ins" not in client.get("/admin/").content.decode()
    client.force_login(administrator)
    assert "Failed sign-ins" in client.get("/admin/").content.decode()
    assert client.get("/admin/axes/accessfailurelog/").status_code == 404  # only under its own name
    page = client.get(url)
    assert page.status_code == 200
    assert page.content.decode().count('<td class="field-username">specialist</td>') == 5
    entry = AccessFailureLog.objects.first()
    assert client.post(f"{url}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"{url}{entry.pk}/change/", {"username": "someone-else"}).status_code == 403
    assert client.get(f"{url}add/").status_code == 403
    assert AccessFailureLog.objects.count() == 5
