"""Fixtures of the webshop API tests: API clients with keys (through the services), published
links (through the merchandising services), and a clean cache per test (throttle counters)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from accounts.roles import PRODUCT_SPECIALIST
from accounts.services import api_client_create, api_key_issue
from merchandising.models import LinkType
from merchandising.selectors.api import cache_max_age_reset
from merchandising.services import link_add
from tests.factories import BrandFactory, ProductFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    cache_max_age_reset()
    yield
    cache.clear()
    cache_max_age_reset()


@pytest.fixture
def make_key(db):
    """make_key(scopes=["read"], name=None, rate=None, expires_days=None) -> (client, raw key)."""
    counter = iter(range(1000))

    def make(scopes=("read",), name=None, rate=None, expires_days=None):
        client = api_client_create(
            name=name or f"client-{next(counter)}", scopes=list(scopes), rate_per_minute=rate, actor=None
        )
        issued = api_key_issue(client=client, actor=None, expires_days=expires_days)
        return client, issued.secret

    return make


@pytest.fixture
def key(make_key):
    return make_key(scopes=["read", "events"])[1]


@pytest.fixture
def api(key):
    """A test client that sends a read+events key with every request."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def curator(db):
    return UserFactory(username="curator", role=PRODUCT_SPECIALIST)


class Catalog:
    """A drill with three cross-sells, an accessory and a spare part, published (no batches)."""

    def __init__(self, curator):
        self.bosch, self.makita, self.hilti = (BrandFactory(name=name) for name in ("Bosch", "Makita", "Hilti"))
        self.drill = ProductFactory(sku="DRILL", name="Drill", brand=self.bosch)
        self.bits = ProductFactory(sku="BITS", name="Bits", brand=self.makita)
        self.case = ProductFactory(sku="CASE", name="Case", brand=self.bosch)
        self.gloves = ProductFactory(sku="GLOVES", name="Gloves", brand=self.hilti)
        self.battery = ProductFactory(sku="BATTERY", name="Battery", brand=self.bosch)
        self.chuck = ProductFactory(sku="CHUCK", name="Chuck", brand=None)
        self.curator = curator
        self.links = {}
        for target in (self.bits, self.case, self.gloves):
            self.add(self.drill, target, LinkType.CROSS_SELL)
        self.add(self.drill, self.battery, LinkType.ACCESSORY)
        self.add(self.drill, self.chuck, LinkType.SPARE_PART)

    def add(self, source, target, link_type=LinkType.CROSS_SELL, **kwargs):
        link = link_add(source=source, target=target, link_type=link_type, actor=self.curator, **kwargs)
        self.links[(source.sku, target.sku, link_type)] = link
        return link


@pytest.fixture
def catalog(curator):
    return Catalog(curator)


def skus(body, link_type=LinkType.CROSS_SELL) -> list[str]:
    return [item["sku"] for item in body["links"].get(link_type, [])]
