"""Two people editing the same customer account: the first save wins, the second is refused
naming what changed and who saved, with the second person's input kept."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.models import CustomerAccount
from accounts.roles import ADMINISTRATOR
from accounts.services import customer_account_save, customer_accounts_upsert
from audit.conflicts import EditConflict
from audit.models import AuditEntry, Via
from audit.services import audit_record
from tests.factories import BrandFactory, UserFactory
from tests.forms import admin_form_data

pytestmark = pytest.mark.django_db

SAVED_AT = datetime.datetime(2026, 11, 22, 17, 42, tzinfo=datetime.UTC)  # 18:42 in Amsterdam
NOT_SAVED = "Your changes were not saved; review and save again."


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(account) -> str:
    return f"/admin/accounts/customeraccount/{account.pk}/change/"


def errors_of(response) -> list[str]:
    return list(response.context["adminform"].form.non_field_errors())


@pytest.fixture
def people(db):
    # Administrators keep the customer accounts (the other roles only read them).
    return UserFactory(username="ann", role=ADMINISTRATOR), UserFactory(username="bob", role=ADMINISTRATOR)


def test_second_account_save_is_refused_with_what_changed_and_who(people):
    ann, bob = people
    makita, bosch = BrandFactory(name="Makita"), BrandFactory(name="Bosch")
    account = CustomerAccount.objects.create(external_id="C-1", name="Builder", segment="construction")
    ann_session, bob_session = session(ann), session(bob)
    with time_machine.travel(SAVED_AT, tick=False):
        ann_form = admin_form_data(ann_session.get(url(account)))
        bob_form = admin_form_data(bob_session.get(url(account)))
        response = ann_session.post(
            url(account), {**ann_form, "segment": "facility", "preferred_brands": [str(makita.pk), str(bosch.pk)]}
        )
        assert response.status_code == 302
        saved = CustomerAccount.objects.get(pk=account.pk)
        audit_record(obj=saved, action=AuditEntry.Action.UPDATE, actor=ann, via=Via.FORM)
        response = bob_session.post(url(account), {**bob_form, "name": "Builder & Sons"})
    assert response.status_code == 200
    assert errors_of(response) == [
        "Saved meanwhile by ann at 2026-11-22 18:42: segment construction → facility; "
        f"preferred brands (empty) → Bosch, Makita. {NOT_SAVED}"
    ]
    form = response.context["adminform"].form
    # Bob's edit is kept; what Ann changed and Bob did not touch shows as Ann saved it.
    assert (form["name"].value(), form["segment"].value(), form["loaded_version"].value()) == (
        "Builder & Sons",
        "facility",
        "2",
    )
    assert sorted(form["preferred_brands"].value()) == sorted([str(makita.pk), str(bosch.pk)])
    stored = CustomerAccount.objects.get(pk=account.pk)
    assert (stored.name, stored.segment, stored.version) == ("Builder", "facility", 2)
    assert sorted(stored.preferred_brands.values_list("name", flat=True)) == ["Bosch", "Makita"]
    # Saving the form again as shown: Bob's name, and Ann's segment and brands stay.
    with time_machine.travel(SAVED_AT, tick=False):  # the sessions' clock (absolute lifetime)
        response = bob_session.post(url(account), admin_form_data(response))
    assert (response.status_code, response.url) == (302, "/admin/accounts/customeraccount/")
    stored = CustomerAccount.objects.get(pk=account.pk)
    assert (stored.name, stored.segment, stored.version) == ("Builder & Sons", "facility", 3)
    assert sorted(stored.preferred_brands.values_list("name", flat=True)) == ["Bosch", "Makita"]


def test_the_demo_upsert_between_load_and_save_refuses_the_save(people):
    _ann, bob = people
    BrandFactory(name="Makita")
    account = CustomerAccount.objects.create(external_id="C-1", name="Builder")
    other = CustomerAccount.objects.create(external_id="C-2", name="Other")
    bob_session = session(bob)
    bob_form = admin_form_data(bob_session.get(url(account)))
    spec = {"segment": "", "industry": "", "brand_mode": "prefer", "excluded_brands": []}
    counts = customer_accounts_upsert(
        accounts=[
            {"external_id": "C-1", "name": "Builder", **spec, "preferred_brands": ["Makita"]},
            {"external_id": "C-2", "name": "Other", **spec, "preferred_brands": []},
        ]
    )
    assert counts == {"created": 0, "updated": 1, "unchanged": 1}
    assert list(CustomerAccount.objects.order_by("external_id").values_list("version", flat=True)) == [2, 1]
    response = bob_session.post(url(account), {**bob_form, "name": "Builder & Sons"})
    assert response.status_code == 200
    assert errors_of(response)[0].endswith(f": preferred brands (empty) → Makita. {NOT_SAVED}")
    assert CustomerAccount.objects.values_list("name", "version").get(pk=account.pk) == ("Builder", 2)
    assert CustomerAccount.objects.get(pk=other.pk).version == 1  # unchanged by the upsert


def test_customer_account_save_checks_the_version_and_the_brands(people):
    ann, _bob = people
    makita = BrandFactory(name="Makita")
    account = CustomerAccount.objects.create(external_id="C-1", name="Builder")
    first = CustomerAccount.objects.get(pk=account.pk)
    first.name = "First"
    customer_account_save(account=first, actor=ann, expected_version=1)
    stale = CustomerAccount.objects.get(pk=account.pk)
    stale.name = "Stale"
    with pytest.raises(EditConflict):
        customer_account_save(account=stale, actor=ann, expected_version=1, preferred_brands=[makita])
    stored = CustomerAccount.objects.get(pk=account.pk)
    assert (stored.name, stored.version, stored.preferred_brands.count()) == ("First", 2, 0)
    with pytest.raises(ValidationError) as raised:
        customer_account_save(
            account=stored, actor=None, preferred_brands=[makita], excluded_brands=[makita], expected_version=2
        )
    assert not isinstance(raised.value, EditConflict)
    assert raised.value.messages == ["A brand cannot be both preferred and excluded: Makita."]
    assert CustomerAccount.objects.get(pk=account.pk).version == 2


def test_a_customer_account_save_that_changes_nothing_raises_no_version(people):
    ann, _bob = people
    makita = BrandFactory(name="Makita")
    account = CustomerAccount.objects.create(external_id="C-1", name="Builder")
    account.preferred_brands.set([makita])
    since = AuditEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    same = CustomerAccount.objects.get(pk=account.pk)
    customer_account_save(account=same, actor=ann, expected_version=1, preferred_brands=[makita], excluded_brands=[])
    assert CustomerAccount.objects.get(pk=account.pk).version == 1
    assert AuditEntry.objects.filter(pk__gt=since).count() == 0
    customer_account_save(account=same, actor=ann, expected_version=1, preferred_brands=[], excluded_brands=[])
    assert CustomerAccount.objects.get(pk=account.pk).version == 2  # the brands changed: a change like any other
    assert list(CustomerAccount.objects.get(pk=account.pk).preferred_brands.all()) == []
