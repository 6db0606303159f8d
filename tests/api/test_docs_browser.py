"""The API docs page in a real headless Chromium: Redoc from our static files renders the
schema under the project's Content-Security-Policy (script-src 'self', no inline script),
with no script error, CSP refusal or failed request.

Skips without /usr/bin/chromium or Playwright, except with REQUIRE_SERVICES=1 (CI), where it fails.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings

from accounts.roles import MARKETING
from tests.factories import UserFactory
from tests.merchandising.test_review_browser import page  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.django_db(transaction=True)


def test_redoc_renders_the_schema_under_the_csp(page, live_server, client):  # noqa: F811
    from accounts.services import roles_sync

    roles_sync()
    user = UserFactory(username="reader", role=MARKETING)
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    # Secure and on path /, as the __Host- prefix requires (Chromium counts http://localhost as secure).
    page.context.add_cookies(
        [
            {
                "name": django_settings.SESSION_COOKIE_NAME,
                "value": cookie.value,
                # Host-only (no Domain attribute is sent for it), as the __Host- prefix requires.
                "domain": urlsplit(live_server.url).hostname,
                "path": "/",
                "secure": True,
            }
        ]
    )
    page.goto(f"{live_server.url}/api/v1/docs/")
    page.wait_for_selector("h2:has-text('Recommendations for a whole cart')", timeout=20_000)
    assert page.locator("h2:has-text('Bulk sync of the published links')").count() == 1
    # Redoc's "API docs by Redocly" footer always asks for its logo from cdn.redoc.ly; the CSP
    # refuses it (so nothing is loaded from a CDN) and Redoc then hides the image.
    errors = [error for error in page.console_errors if "cdn.redoc.ly/redoc/logo-mini.svg" not in error]
    assert errors == []
