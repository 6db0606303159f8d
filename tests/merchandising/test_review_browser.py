"""The review queue's keyboard flow in a real headless Chromium (Debian's ``chromium``,
driven by Playwright) against the live test server; the database is checked after each key.

Without /usr/bin/chromium (or Playwright) the test skips, except with REQUIRE_SERVICES=1 (CI's
service run), where it fails: .ci/run installs chromium, so a missing one is a broken CI.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from django.db import connections

from accounts.models import User
from accounts.services import roles_sync
from catalog.demo import DEMO_PASSWORD, demo_users_seed
from merchandising.models import Decision, Suggestion, SuggestionStatus
from tests.merchandising.factories import MiningRunFactory, SuggestionFactory

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
TIMEOUT_MS = 10_000

pytestmark = pytest.mark.django_db(transaction=True)


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "needs Playwright (pip install -r requirements-dev.txt)"
    if not CHROMIUM.exists():
        return f"needs Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture
def page(monkeypatch):
    missing = _missing()
    if missing:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"REQUIRE_SERVICES=1 but the browser test {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls that check the
    # database between keys are plain synchronous calls all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            # Script errors and CSP refusals; failed requests are collected by URL (the browser
            # asks for /favicon.ico, which the back office does not serve).
            page.on(
                "console",
                lambda m: errors.append(m.text) if m.type == "error" and "Failed to load" not in m.text else None,
            )
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "response",
                lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and "favicon" not in r.url else None,
            )
            page.console_errors = errors
            yield page
        finally:
            browser.close()
            # Inside the running event loop, the ORM calls of the test got a connection of
            # their own (Django keeps connections per context there), which pytest-django's
            # teardown does not see: close it here, or the test database cannot be dropped.
            connections.close_all()


def _status(suggestion: Suggestion) -> tuple[str, str]:
    suggestion.refresh_from_db()
    return suggestion.status, suggestion.reject_reason


def test_keyboard_flow(page, live_server):
    # The demo product specialist, as seed_demo creates it (roles first: a transactional test
    # starts from an emptied database).
    roles_sync()
    demo_users_seed()
    user = User.objects.get(username="specialist")
    run = MiningRunFactory()
    rows = [SuggestionFactory(score=0.9 - i / 10, first_run=run, last_run=run) for i in range(4)]
    first, second, third, fourth = rows

    page.goto(f"{live_server.url}/admin/login/?next=/review/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("input[type=submit]")
    # The queue's script is deferred: keys pressed before it ran would be lost ("load" comes
    # after the deferred scripts).
    page.wait_for_url(f"{live_server.url}/review/", wait_until="load")
    page.wait_for_selector("#review-list")
    assert page.locator("#review-list > .review-row").count() == 4

    # j, j: the second row has the focus; a approves exactly that row.
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.locator(".review-row.is-current").get_attribute("id") == f"s-{second.pk}"
    page.keyboard.press("a")
    page.wait_for_selector(f"#s-{second.pk}.review-row--approved")
    assert _status(second) == (SuggestionStatus.APPROVED, "")
    assert [_status(s)[0] for s in (first, third, fourth)] == [SuggestionStatus.PENDING] * 3
    decision = Decision.objects.get()
    assert (decision.suggestion_id, decision.action, decision.link_type, decision.actor_id) == (
        second.pk,
        "approve",
        "cross_sell",
        user.pk,
    )
    # The focus moved on to the next pending row.
    page.wait_for_selector(f"#s-{third.pk}.is-current")

    # r, then 2: reject the focused (third) row as incompatible.
    page.keyboard.press("r")
    page.wait_for_selector(f"#s-{third.pk} details[data-reject][open]")
    page.keyboard.press("2")
    page.wait_for_selector(f"#s-{third.pk}.review-row--rejected")
    assert _status(third) == (SuggestionStatus.REJECTED, "incompatible")
    assert _status(fourth) == (SuggestionStatus.PENDING, "")
    assert Decision.objects.filter(actor=user).count() == 2
    page.wait_for_selector(f"#s-{fourth.pk}.is-current")

    # u: undo the last decision (the rejection); the row is pending again and has the focus.
    page.keyboard.press("u")
    page.wait_for_selector(f"#s-{third.pk}.review-row--pending")
    assert "Undone: rejected" in page.inner_text("#review-status")
    assert _status(third) == (SuggestionStatus.PENDING, "")
    assert _status(second) == (SuggestionStatus.APPROVED, "")
    assert list(Decision.objects.filter(undone_at__isnull=False).values_list("suggestion_id", flat=True)) == [third.pk]
    page.wait_for_selector(f"#s-{third.pk}.is-current")

    # Typing "a" in a filter field decides nothing.
    page.click("#filter-min-lift")
    page.keyboard.press("a")
    page.keyboard.press("s")
    page.wait_for_timeout(300)
    assert Decision.objects.count() == 2
    assert Decision.objects.filter(undone_at__isnull=True).count() == 1
    assert page.locator(".review-row--pending").count() == 3

    # ? shows the help with the keys (from anywhere but a field).
    assert page.locator("#review-help").is_hidden()
    page.click("h1")
    page.keyboard.press("?")
    page.wait_for_selector("#review-help", state="visible")
    assert "undo your last decision" in page.inner_text("#review-help")
    assert page.console_errors == []
