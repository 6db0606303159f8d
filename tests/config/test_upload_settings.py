"""MAX_UPLOAD_MB: read from the environment, checked, and turned into the byte limits that
config.middleware.RequestSizeLimitMiddleware applies."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.config.test_settings import load


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "MAX_UPLOAD_MB=0 is below the minimum of 1."),
        ("lots", "MAX_UPLOAD_MB='lots' is not a whole number."),
        ("1001", "MAX_UPLOAD_MB=1001 is above 1000; import bigger files with the command."),
    ],
)
def test_nonsense_upload_sizes_stop_start_up(monkeypatch, value, message):
    with pytest.raises(ImproperlyConfigured) as caught:
        load(monkeypatch, MAX_UPLOAD_MB=value)
    assert str(caught.value) == message


def test_upload_limits(monkeypatch):
    monkeypatch.delenv("MAX_UPLOAD_MB", raising=False)
    values = load(monkeypatch)
    assert (values["MAX_UPLOAD_MB"], values["MAX_UPLOAD_BYTES"]) == (100, 104857600)
    assert (values["DATA_UPLOAD_MAX_MEMORY_SIZE"], values["FILE_UPLOAD_MAX_MEMORY_SIZE"]) == (2621440, 2621440)
    assert "config.middleware.RequestSizeLimitMiddleware" in values["MIDDLEWARE"]
    # After authentication (only signed-in users get the upload limit). No middleware reads a
    # body in its request phase; CSRF reads a form's in process_view, after all of them.
    middleware = values["MIDDLEWARE"]
    assert middleware.index("config.middleware.RequestSizeLimitMiddleware") > middleware.index(
        "django.contrib.auth.middleware.AuthenticationMiddleware"
    )
    assert load(monkeypatch, MAX_UPLOAD_MB="5")["MAX_UPLOAD_BYTES"] == 5242880
