"""Tracking tokens: each recommended item in an API answer carries one, and the webshop sends
it back with its events (impression, click, add to cart, purchase), so an event names the
published link and the publish generation it came from without the webshop knowing our ids.

Signed (``django.core.signing``, HMAC with SECRET_KEY and a salt of its own), not encrypted:
the content is not secret, it must only not be forgeable, so events cannot be attributed to
links that were never shown. Compact, URL-safe, no timestamp (events may arrive days later).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core import signing

SALT = "merchandising.api.tracking-token.v1"
TOUCHPOINTS = ("product_page", "cart", "checkout", "category_page")
SIGNER = signing.Signer(salt=SALT)


@dataclass(frozen=True)
class Tracked:
    link_id: int
    generation: int
    source_id: int
    target_id: int
    touchpoint: str


class BadToken(ValueError):
    """The token was not issued by us (or was altered)."""


def tracking_token(*, link_id: int, generation: int, source_id: int, target_id: int, touchpoint: str) -> str:
    payload = [link_id, generation, source_id, target_id, touchpoint]
    # Signer, not signing.dumps (a TimestampSigner): the same link in the same answer must give
    # the same token, so that one ETag always means one body.
    return SIGNER.sign_object(payload)


def read_token(token: str) -> Tracked:
    """The link behind a token; raises BadToken for anything we did not sign."""
    try:
        link_id, generation, source_id, target_id, touchpoint = SIGNER.unsign_object(token)
    except (signing.BadSignature, TypeError, ValueError) as exc:
        raise BadToken("unknown or altered tracking token") from exc
    return Tracked(int(link_id), int(generation), int(source_id), int(target_id), str(touchpoint))
