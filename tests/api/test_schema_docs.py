"""The OpenAPI schema (generated without warnings, served to staff and clients only), the
docs page (our static Redoc, no inline script, no CDN), and the documented shapes matching
the bodies the selectors build."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client

from merchandising.api import serializers

pytestmark = pytest.mark.django_db


def test_schema_generates_and_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    err = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target), stderr=err)
    text = target.read_text()
    for path in ("/api/v1/products/{sku}/recommendations/", "/api/v1/cart/recommendations/", "/api/v1/links/"):
        assert f"{path}:" in text
    assert "/api/v1/docs/" not in text


def test_schema_endpoint_json_and_yaml(api):
    response = api.get("/api/v1/schema/")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    operation = schema["paths"]["/api/v1/products/{sku}/recommendations/"]["get"]
    assert {"200", "304", "400", "401", "403", "404", "429"} <= set(operation["responses"])
    yaml = api.get("/api/v1/schema/", {"format": "yaml"})
    assert yaml.status_code == 200
    assert yaml.content.startswith(b"openapi: 3.")


def test_docs_page_for_staff_and_clients(client, specialist, key):
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/docs/")
    assert response.status_code == 200
    client.force_login(specialist)
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts == [(' src="/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"', "")]
    assert "http" not in html  # nothing from a CDN
    assert 'spec-url="/api/v1/schema/?format=json"' in html
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert finders.find("drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js")


def test_docs_page_sends_anonymous_browsers_to_the_login(client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/api/v1/docs/"


def test_docs_page_refuses_no_role_users_and_bad_keys(client, no_role_user):
    response = Client(HTTP_AUTHORIZATION="Bearer mk_bad").get("/api/v1/docs/")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_key")
    client.force_login(no_role_user)
    assert client.get("/api/v1/docs/").status_code == 403


def _fields(serializer) -> set[str]:
    return set(serializer.fields)


def test_documented_shapes_match_the_bodies(api, catalog):
    from tests.factories import ProductFactory

    body = api.get("/api/v1/products/DRILL/recommendations/").json()
    assert set(body) == _fields(serializers.RecommendationsSerializer())
    item = body["links"]["cross_sell"][0]
    assert set(item) == _fields(serializers.ItemSerializer())
    assert set(item["provenance"]) == _fields(serializers.ProvenanceSerializer())

    saw = ProductFactory(sku="SAW")
    catalog.add(saw, catalog.gloves)
    cart = api.post("/api/v1/cart/recommendations/", {"skus": ["DRILL", "SAW"]}, content_type="application/json")
    cart = cart.json()
    assert set(cart) == _fields(serializers.CartRecommendationsSerializer())
    assert set(cart["links"]["cross_sell"][0]) == _fields(serializers.CartItemSerializer())

    page = api.get("/api/v1/links/").json()
    assert set(page) == _fields(serializers.LinksPageSerializer())
    assert set(page["results"][0]) == _fields(serializers.SyncLinkSerializer())

    error = api.get("/api/v1/products/NOPE/recommendations/").json()
    assert set(error) == _fields(serializers.ErrorSerializer())
