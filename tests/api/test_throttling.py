"""Throttling per client: 429 with Retry-After beyond the client's rate, per client, and the
settings' default for clients without a rate."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

RECS = "/api/v1/products/DRILL/recommendations/"


def test_client_rate_then_429_with_retry_after(make_key, catalog):
    _client, raw = make_key(rate=3)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert [api.get(RECS).status_code for _ in range(3)] == [200, 200, 200]
    response = api.get(RECS)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    error = response.json()["error"]
    assert error["code"] == "throttled"
    assert f"{response['Retry-After']} seconds" in error["message"]
    # The cart and the sync count against the same budget.
    assert (
        api.post("/api/v1/cart/recommendations/", {"skus": ["DRILL"]}, content_type="application/json").status_code
        == 429
    )


def test_clients_are_throttled_separately(make_key, catalog):
    _first, slow = make_key(rate=1)
    _second, other = make_key(rate=1)
    slow_api, other_api = Client(HTTP_AUTHORIZATION=f"Bearer {slow}"), Client(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert slow_api.get(RECS).status_code == 200
    assert slow_api.get(RECS).status_code == 429
    assert other_api.get(RECS).status_code == 200


def test_default_rate_from_settings(make_key, catalog, settings):
    settings.API_RATE_PER_MINUTE = 2
    _client, raw = make_key()
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert [api.get(RECS).status_code for _ in range(3)] == [200, 200, 429]


def test_two_keys_of_one_client_share_its_budget(make_key, catalog):
    from accounts.services import api_key_issue

    client, raw = make_key(rate=2)
    second = api_key_issue(client=client, actor=None).secret
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(RECS).status_code == 200
    assert Client(HTTP_AUTHORIZATION=f"Bearer {second}").get(RECS).status_code == 200
    assert Client(HTTP_AUTHORIZATION=f"Bearer {second}").get(RECS).status_code == 429
