import pytest
from django.db import IntegrityError, transaction

from accounts.models import CustomerAccount
from accounts.services import customer_accounts_upsert
from tests.factories import BrandFactory

pytestmark = pytest.mark.django_db


def spec(external_id="C1", **overrides):
    values = {
        "external_id": external_id,
        "name": "Bakker Bouw BV",
        "segment": "construction",
        "industry": "Carpentry",
        "brand_mode": "prefer",
        "preferred_brands": ["Bosch"],
        "excluded_brands": [],
    }
    return {**values, **overrides}


def test_upsert_creates_updates_and_is_idempotent():
    BrandFactory(name="Bosch")
    BrandFactory(name="Makita")
    assert customer_accounts_upsert(accounts=[spec(), spec("C2", preferred_brands=[])]) == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
    }
    assert customer_accounts_upsert(accounts=[spec(), spec("C2", preferred_brands=[])]) == {
        "created": 0,
        "updated": 0,
        "unchanged": 2,
    }
    result = customer_accounts_upsert(
        accounts=[spec(preferred_brands=["makita"], excluded_brands=["Bosch"]), spec("C2", segment="facility")]
    )
    assert result == {"created": 0, "updated": 2, "unchanged": 0}
    first = CustomerAccount.objects.get(external_id="C1")
    assert [b.name for b in first.preferred_brands.all()] == ["Makita"]
    assert [b.name for b in first.excluded_brands.all()] == ["Bosch"]
    assert CustomerAccount.objects.get(external_id="C2").segment == "facility"


def test_unknown_brand_writes_nothing():
    BrandFactory(name="Bosch")
    with pytest.raises(ValueError, match="unknown brands: Festool"):
        customer_accounts_upsert(accounts=[spec(preferred_brands=["Festool"])])
    assert CustomerAccount.objects.count() == 0


def test_constraints():
    with pytest.raises(IntegrityError), transaction.atomic():
        CustomerAccount.objects.create(external_id="")
    with pytest.raises(IntegrityError), transaction.atomic():
        CustomerAccount.objects.create(external_id="C9", brand_mode="sometimes")
    assert CustomerAccount.objects.count() == 0


def test_upsert_queries_do_not_grow_with_the_accounts():
    """The audit rows' before and after values come from two prefetching reads, not per account
    (the brand preferences of new accounts are still written per account)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    BrandFactory(name="Bosch")

    def queries(count: int, name: str) -> int:
        specs = [spec(f"N{count}-{i}", name=name) for i in range(count)]
        with CaptureQueriesContext(connection) as captured:
            customer_accounts_upsert(accounts=specs)
        return len(captured)

    queries(3, "First")  # created (not pinned: each new account's brands are written on their own)
    queries(30, "First")
    assert queries(3, "Renamed") == queries(30, "Renamed")  # updated
    assert queries(3, "Renamed") == queries(30, "Renamed")  # unchanged
