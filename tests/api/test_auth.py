"""Who gets in: API keys (missing, bad, revoked, expired, wrong scope, in the query string),
back-office sessions (read-only, role needed), rotation, and webshop keys kept out of every
back-office URL."""

from __future__ import annotations

import datetime
import hashlib
import re

import pytest
import time_machine
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import (
    ApiKeyError,
    api_client_revoke,
    api_key_authenticate,
    api_key_issue,
    api_key_revoke,
)

pytestmark = pytest.mark.django_db

RECS = "/api/v1/products/DRILL/recommendations/"
CART = "/api/v1/cart/recommendations/"
LINKS = "/api/v1/links/"
SCHEMA = "/api/v1/schema/"
READS = [RECS, LINKS, SCHEMA]


def get(client, url, **extra):
    return client.get(url, **extra)


def post_cart(client, **extra):
    return client.post(CART, {"skus": ["DRILL"]}, content_type="application/json", **extra)


def error_code(response) -> str:
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.json()["error"]["code"]


def bearer(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


# --- the key itself -------------------------------------------------------------------------------------


def test_key_format_and_only_its_digest_is_stored(make_key):
    client, raw = make_key()
    assert re.fullmatch(r"mk_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}", raw)
    stored = ApiKey.objects.get(client=client)
    assert stored.prefix == raw[3:11]
    assert stored.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {stored.prefix, stored.digest}


def test_authenticate_rejects_a_wrong_secret_with_a_known_prefix(make_key):
    _client, raw = make_key()
    with pytest.raises(ApiKeyError) as error:
        api_key_authenticate(raw_key=raw[:-1] + ("A" if raw[-1] != "A" else "B"))
    assert error.value.code == "invalid_key"


def test_last_used_is_written_at_most_once_a_minute(make_key, django_assert_num_queries):
    _client, raw = make_key()
    with django_assert_num_queries(2):  # lookup + the first last_used_at write
        key = api_key_authenticate(raw_key=raw)
    first = key.last_used_at
    assert first is not None
    with django_assert_num_queries(1):  # lookup only
        api_key_authenticate(raw_key=raw)
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - datetime.timedelta(seconds=61))
    with django_assert_num_queries(2):
        api_key_authenticate(raw_key=raw)
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first


# --- the matrix ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", READS)
def test_no_credentials_is_401_json(client, catalog, url):
    response = client.get(url)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_no_credentials_on_cart_is_401(client, catalog):
    response = post_cart(client)
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer mk_nothere0_" + "x" * 43, "invalid_key"),
        ("Bearer not-a-key", "invalid_key"),
        ("Bearer ", "authentication_failed"),
    ],
)
def test_bad_keys_are_401(catalog, header, code):
    response = Client(HTTP_AUTHORIZATION=header).get(RECS)
    assert (response.status_code, error_code(response)) == (401, code)


@pytest.mark.parametrize("url", READS)
def test_revoked_key_is_401(make_key, catalog, url):
    client, raw = make_key()
    assert api_key_revoke(key_id=client.keys.get().pk, actor=None) is True
    response = bearer(raw).get(url)
    assert (response.status_code, error_code(response)) == (401, "revoked_key")


def test_revoked_client_is_401_for_every_key(make_key, catalog):
    client, raw = make_key()
    other = api_key_issue(client=client, actor=None).secret
    assert api_client_revoke(client_id=client.pk, actor=None) is True
    assert api_client_revoke(client_id=client.pk, actor=None) is False  # already revoked: nothing changes
    for key in (raw, other):
        response = bearer(key).get(RECS)
        assert (response.status_code, error_code(response)) == (401, "revoked_key")
        assert error_code(post_cart(bearer(key))) == "revoked_key"


def test_expired_key_is_401_and_a_key_before_its_expiry_works(make_key, catalog):
    _client, raw = make_key()
    ApiKey.objects.update(expires_at=timezone.now() + datetime.timedelta(hours=1))
    assert bearer(raw).get(RECS).status_code == 200
    ApiKey.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    response = bearer(raw).get(RECS)
    assert (response.status_code, error_code(response)) == (401, "expired_key")


@pytest.mark.parametrize("url", READS)
def test_events_only_client_cannot_read(make_key, catalog, url):
    _client, raw = make_key(scopes=["events"])
    response = bearer(raw).get(url)
    assert (response.status_code, error_code(response)) == (403, "permission_denied")
    assert "read" in response.json()["error"]["message"]


def test_events_only_client_cannot_ask_the_cart(make_key, catalog):
    _client, raw = make_key(scopes=["events"])
    assert post_cart(bearer(raw)).status_code == 403


def test_read_client_may_read_and_ask_the_cart(make_key, catalog):
    _client, raw = make_key(scopes=["read"])
    for url in READS:
        assert bearer(raw).get(url).status_code == 200, url
    assert post_cart(bearer(raw)).status_code == 200


@pytest.mark.parametrize("param", ["key", "api_key", "apikey", "token", "access_token"])
def test_key_in_the_query_string_is_refused(api, key, catalog, param):
    response = Client().get(RECS, {param: key})
    assert (response.status_code, error_code(response)) == (400, "key_in_query_string")
    assert "Authorization: Bearer" in response.json()["error"]["message"]
    # Even alongside a valid header: the key has leaked into a URL.
    response = api.get(RECS, {param: key})
    assert (response.status_code, error_code(response)) == (400, "key_in_query_string")


def test_staff_session_reads_but_cannot_write(client, specialist, catalog):
    client.force_login(specialist)
    for url in READS:
        assert client.get(url).status_code == 200, url
    response = client.post(CART, {"skus": ["DRILL"]}, content_type="application/json")
    assert response.status_code == 403
    assert error_code(response) in {"permission_denied"}


def test_session_user_without_role_is_403(client, no_role_user, catalog):
    client.force_login(no_role_user)
    for url in READS:
        response = client.get(url)
        assert (response.status_code, error_code(response)) == (403, "permission_denied"), url


def test_unknown_api_url_and_method_answer_json(api):
    response = api.get("/api/v1/nothing-here/")
    assert (response.status_code, error_code(response)) == (404, "not_found")
    response = api.delete(LINKS)
    assert (response.status_code, error_code(response)) == (405, "method_not_allowed")
    response = api.get(CART)
    assert (response.status_code, error_code(response)) == (405, "method_not_allowed")


# --- rotation ------------------------------------------------------------------------------------------------


def test_rotation_two_keys_live_then_the_old_one_revoked(make_key, catalog):
    client, old = make_key()
    new = api_key_issue(client=client, actor=None).secret
    assert client.keys.filter(revoked_at__isnull=True).count() == 2
    assert bearer(old).get(RECS).status_code == 200
    assert bearer(new).get(RECS).status_code == 200
    api_key_revoke(key_id=client.keys.get(prefix=old[3:11]).pk, actor=None)
    assert bearer(old).get(RECS).status_code == 401
    assert bearer(new).get(RECS).status_code == 200


# --- webshop keys never reach the back office --------------------------------------------------------------


def _sample_paths(patterns=None, prefix: str = "") -> list[str]:
    """A concrete path for every URL pattern of the project (converters and regex groups
    filled with a sample value)."""
    patterns = get_resolver().url_patterns if patterns is None else patterns
    paths = []
    for pattern in patterns:
        text = str(pattern.pattern)
        text = re.sub(r"<(?:(\w+):)?\w+>", lambda m: "x" if m.group(1) in {"str", "slug", "path"} else "1", text)
        text = re.sub(r"\(\?P<\w+>[^)]*\)", "1", text)
        text = text.replace("^", "").replace("$", "").replace("\\", "")
        if isinstance(pattern, URLResolver):
            paths.extend(_sample_paths(pattern.url_patterns, prefix + text))
        elif isinstance(pattern, URLPattern):
            paths.append("/" + prefix + text)
    return sorted(set(paths))


def test_sample_paths_cover_the_back_office():
    paths = [path for path in _sample_paths() if not path.startswith("/api/")]
    for expected in ("/", "/admin/", "/admin/login/", "/review/", "/healthz/", "/admin/accounts/apiclient/"):
        assert expected in paths
    assert len(paths) > 50


def test_webshop_key_gets_403_on_every_back_office_url(api, catalog):
    paths = [path for path in _sample_paths() if not path.startswith("/api/")]
    for path in paths:
        for method in ("get", "post"):
            response = getattr(api, method)(path)
            assert response.status_code == 403, (method, path, response.status_code)
            assert error_code(response) == "api_key_not_allowed", (method, path)
    # Also with a key that is not (or no longer) valid: the header alone is enough.
    response = Client(HTTP_AUTHORIZATION="Bearer whatever").get("/admin/")
    assert (response.status_code, error_code(response)) == (403, "api_key_not_allowed")


def test_a_session_is_not_refused_outside_the_api(client, specialist):
    client.force_login(specialist)
    assert client.get("/").status_code == 200


# --- keys expire by default ----------------------------------------------------------------------------------

NOW = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)


def test_a_new_key_expires_after_the_setting_unless_told_otherwise(db, settings):
    from django.core.exceptions import ValidationError

    from accounts.services import api_client_create

    client = api_client_create(name="webshop", scopes=["read"], actor=None)
    with time_machine.travel(NOW, tick=False):
        assert settings.API_KEY_EXPIRY_DAYS == 365
        assert api_key_issue(client=client, actor=None).key.expires_at == NOW + datetime.timedelta(days=365)
        settings.API_KEY_EXPIRY_DAYS = 90
        assert api_key_issue(client=client, actor=None).key.expires_at == NOW + datetime.timedelta(days=90)
        assert api_key_issue(client=client, actor=None, expires_days=7).key.expires_at == NOW + datetime.timedelta(
            days=7
        )
        assert api_key_issue(client=client, actor=None, expires_days=0).key.expires_at is None
        with pytest.raises(ValidationError, match="0 for never"):
            api_key_issue(client=client, actor=None, expires_days=-1)
    assert client.keys.count() == 4


def test_an_expired_key_gets_401_with_a_readable_message(make_key, catalog):
    with time_machine.travel(NOW, tick=False) as clock:
        _client, raw = make_key(expires_days=30)
        clock.shift(datetime.timedelta(days=30) - datetime.timedelta(seconds=1))
        assert bearer(raw).get(RECS).status_code == 200
        clock.shift(datetime.timedelta(seconds=1))
        response = bearer(raw).get(RECS)
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "expired_key",
            "message": "The API key expired at 2026-04-01T09:00:00+00:00; ask the back office for a new one.",
        }
    }


def test_the_command_defaults_to_the_setting_and_warns_about_a_key_that_never_expires(db):
    import io

    from django.core.management import call_command

    def run(*args):
        out, err = io.StringIO(), io.StringIO()
        call_command("create_api_client", *args, stdout=out, stderr=err)
        return out.getvalue().strip(), err.getvalue()

    with time_machine.travel(NOW, tick=False):
        key, messages = run("webshop")
        assert api_key_authenticate(raw_key=key).expires_at == NOW + datetime.timedelta(days=365)
        assert "expires 2027-03-02T09:00:00+00:00" in messages
        assert "WARNING" not in messages
        key, messages = run("webshop", "--rotate", "--expires-days", "0")
    assert api_key_authenticate(raw_key=key).expires_at is None
    assert "(no expiry)" in messages
    assert "WARNING: this key never expires." in messages


def test_the_admin_offers_the_default_expiry_and_warns_about_never(client, administrator, make_key):
    api_client, _raw = make_key()
    client.force_login(administrator)
    url = f"/admin/accounts/apiclient/{api_client.pk}/issue-key/"
    form = client.get(url).content.decode()
    assert re.search(r'name="expires_days" value="365"', form)
    response = client.post(url, {"expires_days": "0"})
    assert response.status_code == 200
    assert "never expires" in response.content.decode()
    assert [str(m) for m in response.wsgi_request._messages] == [
        "This key never expires: revoke it as soon as it is no longer needed."
    ]
    assert api_client.keys.filter(expires_at__isnull=True).count() == 1
    assert client.post(url, {"expires_days": ""}).status_code == 200  # the form again, with its error
    assert api_client.keys.count() == 2


def test_the_overview_lists_keys_expiring_within_30_days_for_administrators(client, administrator, specialist):
    from accounts.services import api_client_create

    with time_machine.travel(NOW, tick=False) as clock:
        shop = api_client_create(name="webshop", scopes=["read"], actor=None)
        indexer = api_client_create(name="indexer", scopes=["read"], actor=None)
        soon = api_key_issue(client=shop, actor=None, expires_days=10).key
        sooner = api_key_issue(client=indexer, actor=None, expires_days=3).key
        api_key_issue(client=shop, actor=None, expires_days=33)  # 31 days left: not yet
        api_key_issue(client=shop, actor=None, expires_days=0)  # never
        revoked = api_key_issue(client=shop, actor=None, expires_days=5).key
        api_key_revoke(key_id=revoked.pk, actor=None)
        gone = api_key_issue(client=shop, actor=None, expires_days=1).key
        clock.shift(datetime.timedelta(days=2))  # `gone` has expired
        assert [key.pk for key in ApiKey.objects.expiring_within(datetime.timedelta(days=30))] == [
            sooner.pk,
            soon.pk,
        ]
        client.force_login(administrator)
        page = client.get("/").content.decode()
        section = page.split('id="expiring-keys"')[1].split("</table>")[0]
        assert re.findall(r"<code>(\w+)</code>", section) == [sooner.prefix, soon.prefix]
        assert "API keys expiring within 30 days" in page
        assert gone.prefix not in section
        client.force_login(specialist)
        assert "expiring-keys" not in client.get("/").content.decode()
