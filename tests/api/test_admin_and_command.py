"""API clients in the admin (administrators only; keys shown once) and the
create_api_client command (create, rotate)."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import ApiClient, ApiKey
from accounts.services import api_key_authenticate

pytestmark = pytest.mark.django_db

KEY = re.compile(r"mk_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}")


# --- admin ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/admin/accounts/apiclient/", "/admin/accounts/apiclient/add/", "/admin/accounts/apikey/"],
)
def test_only_administrators_see_api_clients(client, specialist, marketer, administrator, url):
    for user in (specialist, marketer):
        client.force_login(user)
        assert client.get(url).status_code == 403, (user, url)
    client.force_login(administrator)
    assert client.get(url).status_code == 200


def test_create_client_then_issue_a_key_shown_once(client, administrator):
    client.force_login(administrator)
    response = client.post(
        "/admin/accounts/apiclient/add/", {"name": "webshop", "scopes": ["read", "events"], "rate_per_minute": "600"}
    )
    api_client = ApiClient.objects.get()
    assert (api_client.name, api_client.scopes, api_client.rate_per_minute) == ("webshop", ["read", "events"], 600)
    assert api_client.created_by == administrator
    issue_url = f"/admin/accounts/apiclient/{api_client.pk}/issue-key/"
    assert response["Location"] == issue_url
    assert client.get(issue_url).status_code == 200
    assert not ApiKey.objects.exists()  # showing the form issues nothing

    response = client.post(issue_url, {"expires_days": "30"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = KEY.search(response.content.decode()).group(0)
    key = api_key_authenticate(raw_key=secret)
    assert key.client == api_client and key.created_by == administrator and key.expires_at is not None
    # Never again: the client's page shows the prefix only.
    page = client.get(f"/admin/accounts/apiclient/{api_client.pk}/change/").content.decode()
    assert key.prefix in page and secret not in page


def test_admin_revokes_keys_and_clients(client, administrator, make_key):
    api_client, raw = make_key()
    client.force_login(administrator)
    response = client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke_keys", "_selected_action": [api_client.keys.get().pk]},
        follow=True,
    )
    assert "Revoked 1 key(s)." in response.content.decode()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/links/").status_code == 401
    other, other_raw = make_key()
    client.post("/admin/accounts/apiclient/", {"action": "revoke_clients", "_selected_action": [other.pk]})
    other.refresh_from_db()
    assert other.revoked_at is not None
    assert Client(HTTP_AUTHORIZATION=f"Bearer {other_raw}").get("/api/v1/links/").status_code == 401
    # A revoked client gets no new key.
    response = client.post(f"/admin/accounts/apiclient/{other.pk}/issue-key/", {}, follow=True)
    assert "revoked" in response.content.decode()
    assert other.keys.count() == 1


def test_admin_edits_scopes_through_the_service(client, administrator, make_key):
    api_client, _raw = make_key(scopes=["read"])
    client.force_login(administrator)
    client.post(
        f"/admin/accounts/apiclient/{api_client.pk}/change/",
        {"scopes": ["events"], "rate_per_minute": "", "keys-TOTAL_FORMS": "1", "keys-INITIAL_FORMS": "1"},
    )
    api_client.refresh_from_db()
    assert (api_client.scopes, api_client.rate_per_minute) == (["events"], None)


def test_issue_key_page_is_for_administrators_only(client, specialist, make_key):
    api_client, _raw = make_key()
    client.force_login(specialist)
    assert client.post(f"/admin/accounts/apiclient/{api_client.pk}/issue-key/").status_code == 403
    assert api_client.keys.count() == 1


# --- command ---------------------------------------------------------------------------------------------------


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_client", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_command_creates_a_client_and_prints_the_key_once(db):
    key, messages = run("webshop", "--scopes", "read,events", "--expires-days", "90")
    assert KEY.fullmatch(key)
    client = ApiClient.objects.get(name="webshop")
    assert client.scopes == ["read", "events"]
    stored = api_key_authenticate(raw_key=key)
    assert stored.expires_at is not None
    assert key not in messages and stored.prefix in messages


def test_command_rotation_issues_a_second_live_key(db):
    first, _ = run("webshop")
    with pytest.raises(CommandError, match="--rotate"):
        run("webshop")
    second, _ = run("webshop", "--rotate")
    assert first != second
    assert api_key_authenticate(raw_key=first).client == api_key_authenticate(raw_key=second).client
    assert ApiKey.objects.filter(client__name="webshop", revoked_at__isnull=True).count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--scopes", "write"], "Unknown scope"),
        (["x", "--scopes", ""], "at least one scope"),
        (["x", "--expires-days", "-1"], r"0 \(never\) or more"),
        (["nobody", "--rotate"], "no API client"),
    ],
)
def test_command_errors(db, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not ApiKey.objects.exists()
