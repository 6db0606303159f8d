"""Bodies over their size limit are refused with 413 before they are read: the API's JSON
bodies (events, cart), the products CSV upload in the admin, and bodies sent without
Content-Length (chunked), which are cut off at the limit."""

from __future__ import annotations

import io
import json

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_started
from django.db import close_old_connections
from django.test import override_settings
from django.urls import reverse

from catalog.models import ProductImport
from config.middleware import ChunkedBodyLimit
from merchandising.models import WebshopEvent
from tests.api.test_events import recent_event

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events/"
CART = "/api/v1/cart/recommendations/"
LIMIT = 2621440  # DATA_UPLOAD_MAX_MEMORY_SIZE: Django's default, kept


class UnreadableInput:
    """A wsgi.input that fails the test if anyone reads more than ``allowed`` bytes of it."""

    def __init__(self, allowed: int = 0):
        self.allowed = allowed
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        wanted = size if size is not None and size >= 0 else 1 << 40
        self.read_bytes += wanted
        if self.read_bytes > self.allowed:
            raise AssertionError(f"the body was read ({self.read_bytes} bytes asked)")
        return b"x" * wanted

    readline = read


def declared(size: int, content_type: str = "application/json", allowed: int = 0) -> dict:
    """Request extras for a body that claims ``size`` bytes and may not be read."""
    return {"CONTENT_LENGTH": str(size), "CONTENT_TYPE": content_type, "wsgi.input": UnreadableInput(allowed)}


def test_an_events_batch_over_the_limit_is_413_unread_and_stores_nothing(api):
    response = api.generic("POST", EVENTS, b"", **declared(LIMIT + 1))

    assert response.status_code == 413
    assert response.json() == {
        "error": {
            "code": "request_too_large",
            "message": "The request body is 2.5 MB; at most 2621440 bytes (2.5 MB) are accepted. "
            "Send smaller requests (e.g. events in several batches).",
        }
    }
    assert WebshopEvent.objects.count() == 0


def test_a_cart_over_the_limit_is_413_unread(api):
    response = api.generic("POST", CART, b"", **declared(10 * 1024 * 1024))

    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "request_too_large",
        "message": "The request body is 10 MB; at most 2621440 bytes (2.5 MB) are accepted. "
        "Send smaller requests (e.g. events in several batches).",
    }


def test_a_body_at_the_limit_is_read_as_usual(api):
    body = json.dumps({"events": [recent_event("e-1")]}).encode()
    padded = body + b" " * (LIMIT - len(body))  # JSON allows trailing white space

    response = api.generic("POST", EVENTS, padded, content_type="application/json")

    assert len(padded) == LIMIT
    assert response.status_code == 200
    assert list(WebshopEvent.objects.values_list("event_id", flat=True)) == ["e-1"]


def test_the_limit_is_checked_before_authentication(client):
    # No key at all: the size is refused first, so an anonymous client cannot make us read.
    response = client.generic("POST", EVENTS, b"", **declared(LIMIT + 1))
    assert response.status_code == 413


# --- the products CSV upload (admin) ----------------------------------------------------------------


def test_a_products_csv_over_max_upload_is_413_with_a_page_and_nothing_stored(client, specialist):
    client.force_login(specialist)
    url = reverse("admin:catalog_product_import")

    with override_settings(MAX_UPLOAD_BYTES=1000, MAX_UPLOAD_MB=1):
        response = client.generic("POST", url, b"", **declared(1001, "multipart/form-data; boundary=xyz"))

    assert response.status_code == 413
    assert response["Content-Type"] == "text/html; charset=utf-8"
    html = response.content.decode()
    assert "<h1>Upload too large</h1>" in html
    assert "The request was 1001 bytes; the back office accepts uploads of at most 1000 bytes." in html
    assert ProductImport.objects.count() == 0


def test_the_upload_page_names_the_sizes(client, specialist):
    client.force_login(specialist)
    response = client.generic(
        "POST",
        reverse("admin:catalog_product_import"),
        b"",
        **declared(150 * 1024 * 1024, "multipart/form-data; boundary=xyz"),
    )

    assert response.status_code == 413
    html = response.content.decode()
    assert "The request was 150 MB; the back office accepts uploads of at most 100 MB. Nothing was stored." in html
    assert '<a href="/admin/catalog/product/import/">Back to the form</a>' in html
    assert "Content-Security-Policy" in response  # answered inside the usual middleware
    assert ProductImport.objects.count() == 0


def test_a_products_csv_under_max_upload_is_previewed(client, specialist):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(specialist)
    data = b"sku,name,brand,category,unit_price,pack_quantity,unit,status\nA-1,Drill,Makita,Tools,10.00,1,pcs,active\n"
    with override_settings(MAX_UPLOAD_BYTES=100_000):
        response = client.post(
            reverse("admin:catalog_product_import"), {"file": SimpleUploadedFile("p.csv", data, "text/csv")}
        )

    assert response.status_code == 302
    assert list(ProductImport.objects.values_list("file_name", flat=True)) == ["p.csv"]


def test_an_anonymous_file_upload_is_held_to_the_json_limit(api, client):
    # The upload limit (MAX_UPLOAD_MB) is for signed-in users: a client without a session
    # (an API client too: its key is checked later, by the view) cannot make us read more.
    response = api.generic("POST", EVENTS, b"", **declared(LIMIT + 1, "multipart/form-data; boundary=x", LIMIT + 1))
    assert (response.status_code, response.json()["error"]["code"]) == (413, "request_too_large")
    url = reverse("admin:catalog_product_import")
    response = client.generic("POST", url, b"", **declared(LIMIT + 1, "multipart/form-data; boundary=x"))
    assert response.status_code == 413
    assert ProductImport.objects.count() == 0


@pytest.mark.parametrize(
    ("url", "status"),
    [("/account/mfa/", 413), ("/account/mfa/setup/", 413), ("/admin/catalog/product/import/", 302)],
)
def test_a_password_alone_does_not_earn_the_upload_limit(client, specialist, settings, url, status):
    # With MFA required, a session that has not passed the second factor (a phished password)
    # reaches the second-factor pages, which read a form body: it is held to the small limit.
    settings.MFA_REQUIRED = True
    client.force_login(specialist)
    response = client.generic("POST", url, b"", **declared(LIMIT + 1, "multipart/form-data; boundary=x"))
    assert response.status_code == status  # 413, or sent to the code page: unread either way
    assert ProductImport.objects.count() == 0


def test_a_signed_in_upload_gets_the_upload_limit(client, specialist):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(specialist)
    data = b"not,a,products,header\n" + b"x" * LIMIT  # over the anonymous limit, under MAX_UPLOAD_MB
    response = client.post(reverse("admin:catalog_product_import"), {"file": SimpleUploadedFile("p.csv", data)})
    assert response.status_code == 302  # past the size check: previewed (and refused for its header)
    assert [len(bytes(content)) for content in ProductImport.objects.values_list("content", flat=True)] == [len(data)]


# --- bodies without Content-Length (chunked) ---------------------------------------------------------


class EndlessInput:
    """A de-chunked stream that never ends: counts what was read."""

    def __init__(self):
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        assert size is not None and size > 0, "an unbounded read of an endless stream"
        self.read_bytes += size
        return b"x" * size


@pytest.fixture
def wsgi_app():
    """The WSGI application as gunicorn runs it (config/wsgi.py), on the test's database
    connection (the handler would close it at each request, as the test client avoids too)."""
    request_started.disconnect(close_old_connections)
    yield ChunkedBodyLimit(WSGIHandler())
    request_started.connect(close_old_connections)


def call(app, *, path: str, stream, content_type: str = "application/json", key: str | None = None):
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "wsgi.input_terminated": True,
        "HTTP_TRANSFER_ENCODING": "chunked",
        "CONTENT_TYPE": content_type,
        "REMOTE_ADDR": "127.0.0.1",
    }
    if key:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    status = []
    body = b"".join(app(environ, lambda line, headers: status.append(line)))
    return status[0], body


@override_settings(SECURE_SSL_REDIRECT=False)
def test_a_chunked_body_is_cut_off_one_byte_past_the_limit(wsgi_app, key):
    stream = EndlessInput()

    status, body = call(wsgi_app, path=EVENTS, stream=stream, key=key)

    assert status == "413 Request Entity Too Large"
    assert json.loads(body) == {
        "error": {
            "code": "request_too_large",
            "message": "The request body is more than 2.5 MB; at most 2621440 bytes (2.5 MB) are accepted. "
            "Send smaller requests (e.g. events in several batches).",
        }
    }
    assert stream.read_bytes == LIMIT + 1
    assert WebshopEvent.objects.count() == 0


@override_settings(SECURE_SSL_REDIRECT=False)
def test_a_chunked_body_within_the_limit_is_handled(wsgi_app, key):
    body = json.dumps({"events": [recent_event("e-1")]}).encode()

    status, answer = call(wsgi_app, path=EVENTS, stream=io.BytesIO(body), key=key)

    assert status == "200 OK"
    assert json.loads(answer) == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert list(WebshopEvent.objects.values_list("event_id", flat=True)) == ["e-1"]


@override_settings(SECURE_SSL_REDIRECT=False, MAX_UPLOAD_BYTES=50_000, DATA_UPLOAD_MAX_MEMORY_SIZE=5000)
def test_a_chunked_upload_is_cut_off_at_the_anonymous_limit(wsgi_app):
    # Before Django no session is read, so a chunked body gets the limit of a client that has
    # not signed in, whatever its type; browsers send uploads with a Content-Length.
    stream = EndlessInput()

    status, body = call(
        wsgi_app,
        path=reverse("admin:catalog_product_import"),
        stream=stream,
        content_type="multipart/form-data; boundary=x",
    )

    assert status == "413 Request Entity Too Large"
    assert "The request was more than 4.9 KB; the back office accepts uploads of at most 4.9 KB." in body.decode()
    assert stream.read_bytes == 5001
    assert ProductImport.objects.count() == 0
