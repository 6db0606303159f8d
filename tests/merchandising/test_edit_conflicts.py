"""Two people editing the same links page or the mining settings: the first save wins, the
second is refused naming what changed and who saved, with the second person's input kept."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.test import Client

from accounts.roles import PRODUCT_SPECIALIST
from audit.conflicts import EditConflict
from audit.models import AuditEntry, Via
from audit.services import audit_record
from merchandising.models import Decision, Link, LinkChange, LinkList, LinkType, MiningSettings, PublishState
from merchandising.services import link_add, links_reorder, mining_settings_update, suggestions_bulk_decide
from tests.factories import BrandFactory, ProductFactory, UserFactory
from tests.forms import admin_form_data
from tests.merchandising.factories import SuggestionFactory

pytestmark = pytest.mark.django_db

SAVED_AT = datetime.datetime(2026, 11, 22, 17, 42, tzinfo=datetime.UTC)  # 18:42 in Amsterdam
NOT_SAVED = "Your changes were not saved; review and save again."
SETTINGS_URL = "/admin/merchandising/miningsettings/1/change/"


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def frozen():
    """The clock stands still: every change of the test happens at SAVED_AT."""
    with time_machine.travel(SAVED_AT, tick=False):
        yield


@pytest.fixture
def people(db):
    return UserFactory(username="ann", role=PRODUCT_SPECIALIST), UserFactory(username="bob", role=PRODUCT_SPECIALIST)


@pytest.fixture
def products():
    brand = BrandFactory(name="Acme")
    return [ProductFactory(sku=f"P-{n}", name=f"Product {n}", brand=brand) for n in range(1, 6)]


def page_url(product) -> str:
    return f"/products/{product.sku}/links/"


def reorder_url(product) -> str:
    return f"/links/reorder/{product.pk}/"


def working(source, link_type=LinkType.CROSS_SELL) -> list[str]:
    links = Link.objects.active().filter(source=source, type=link_type).order_by("position")
    return list(links.values_list("target__sku", flat=True))


def reorder_form(response, link_type: str, new_order: list[str] | None = None) -> dict:
    """The reorder form of one group as the page shows it; ``new_order`` (SKUs): as dragged."""
    assert response.status_code in (200, 409)
    (group,) = [group for group in response.context["groups"] if group.type == link_type]
    shown = [(link.pk, link.target.sku, getattr(link, "form_position", link.position), link.position)
             for link in group.links]  # fmt: skip
    if new_order is not None:
        shown.sort(key=lambda row: new_order.index(row[1]))
    data = {"type": link_type, "version": str(group.version), "order": [str(row[0]) for row in shown]}
    for index, (pk, _sku, form_position, position) in enumerate(shown, start=1):
        data[f"was-{pk}"] = str(position)
        data[f"position-{pk}"] = str(index if new_order is not None else form_position)
    return data


def test_second_reorder_of_a_links_page_is_refused_with_what_changed_and_who(frozen, people, products):
    ann, bob = people
    source = products[0]
    for target in products[1:4]:
        link_add(source=source, target=target, link_type=LinkType.CROSS_SELL, actor=ann)
    ann_session, bob_session = session(ann), session(bob)
    ann_page = ann_session.get(page_url(source))
    bob_page = bob_session.get(page_url(source))
    form = reorder_form(ann_page, LinkType.CROSS_SELL, ["P-4", "P-2", "P-3"])
    assert ann_session.post(reorder_url(source), form).status_code == 302
    assert working(source) == ["P-4", "P-2", "P-3"]

    response = bob_session.post(reorder_url(source), reorder_form(bob_page, LinkType.CROSS_SELL, ["P-3", "P-2", "P-4"]))
    assert response.status_code == 409
    message = (
        "Saved meanwhile by ann at 2026-11-22 18:42: frequently bought with order P-2, P-3, P-4 → P-4, P-2, P-3. "
        + NOT_SAVED
    )
    assert response.context["conflict"] == message
    assert message in response.content.decode()
    assert working(source) == ["P-4", "P-2", "P-3"]  # Ann's order stands
    assert LinkChange.objects.filter(action=LinkChange.Action.REORDERED).count() == 1
    # Bob's order is what the page shows now, on top of the stored list's version...
    (group,) = response.context["groups"]
    assert [(link.target.sku, link.form_position) for link in group.links] == [("P-3", 1), ("P-2", 2), ("P-4", 3)]
    assert group.version == LinkList.objects.get(source=source, type=LinkType.CROSS_SELL).version == 5
    # ... so "Save order" applies it.
    assert bob_session.post(reorder_url(source), reorder_form(response, LinkType.CROSS_SELL)).status_code == 302
    assert working(source) == ["P-3", "P-2", "P-4"]


def test_a_bulk_approval_between_load_and_save_refuses_the_reorder(people, products):
    ann, bob = people
    source = products[0]
    for target in products[1:3]:
        link_add(source=source, target=target, link_type=LinkType.CROSS_SELL, actor=ann)
    bob_session = session(bob)
    bob_page = bob_session.get(page_url(source))
    suggestion = SuggestionFactory(source=source, target=products[4])
    outcome = suggestions_bulk_decide(suggestion_ids=[suggestion.pk], action=Decision.Action.APPROVE, actor=ann)
    assert len(outcome.decided) == 1
    response = bob_session.post(reorder_url(source), reorder_form(bob_page, LinkType.CROSS_SELL, ["P-3", "P-2"]))
    assert response.status_code == 409
    assert response.context["conflict"].endswith(
        f": frequently bought with order P-2, P-3 → P-2, P-3, P-5. {NOT_SAVED}"
    )
    assert working(source) == ["P-2", "P-3", "P-5"]


def test_a_reorder_service_call_with_a_stale_version_raises(people, products):
    ann, _bob = people
    source = products[0]
    links = [
        link_add(source=source, target=target, link_type=LinkType.ACCESSORY, actor=ann) for target in products[1:3]
    ]
    assert LinkList.objects.get(source=source, type=LinkType.ACCESSORY).version == 3
    links_reorder(source=source, link_type=LinkType.ACCESSORY, link_ids=[links[1].pk, links[0].pk], actor=ann,
                  expected_version=3)  # fmt: skip
    with pytest.raises(EditConflict) as raised:
        links_reorder(source=source, link_type=LinkType.ACCESSORY, link_ids=[links[0].pk, links[1].pk], actor=ann,
                      expected_version=3, shown_ids=[links[0].pk, links[1].pk])  # fmt: skip
    assert raised.value.current_version == 4
    assert working(source, LinkType.ACCESSORY) == ["P-3", "P-2"]
    # Another type's list has a version of its own: not a conflict.
    assert not LinkList.objects.filter(source=source, type=LinkType.CROSS_SELL).exists()


def test_a_reorder_that_changes_nothing_writes_nothing(people, products):
    """Saving the order as stored raises no version, writes no history and publishes nothing,
    with the page's version, without one, or with an older one (nothing to lose)."""
    ann, _bob = people
    source = products[0]
    stored = [
        link_add(source=source, target=target, link_type=LinkType.ACCESSORY, actor=ann).pk for target in products[1:4]
    ]
    counts = (LinkChange.objects.count(), AuditEntry.objects.count(), PublishState.load().generation)
    assert LinkList.objects.get(source=source, type=LinkType.ACCESSORY).version == 4
    for expected_version in (4, None, 2):
        result = links_reorder(source=source, link_type=LinkType.ACCESSORY, link_ids=stored, actor=ann,
                               expected_version=expected_version)  # fmt: skip
        assert [link.pk for link in result] == stored
    assert LinkList.objects.get(source=source, type=LinkType.ACCESSORY).version == 4
    assert (LinkChange.objects.count(), AuditEntry.objects.count(), PublishState.load().generation) == counts
    assert working(source, LinkType.ACCESSORY) == ["P-2", "P-3", "P-4"]
    # A list that was never changed has no list row, and an empty "reorder" makes none.
    assert links_reorder(source=source, link_type=LinkType.SPARE_PART, link_ids=[], actor=ann, expected_version=1) == []
    assert not LinkList.objects.filter(source=source, type=LinkType.SPARE_PART).exists()
    # An older version with a different order is still refused.
    with pytest.raises(EditConflict):
        links_reorder(source=source, link_type=LinkType.ACCESSORY, link_ids=stored[::-1], actor=ann,
                      expected_version=2)  # fmt: skip
    assert LinkList.objects.get(source=source, type=LinkType.ACCESSORY).version == 4


# --- mining settings --------------------------------------------------------------------------


def test_second_settings_save_is_refused_with_what_changed_and_who(frozen, people):
    ann, bob = people
    MiningSettings.load()
    ann_session, bob_session = session(ann), session(bob)
    ann_form = admin_form_data(ann_session.get(SETTINGS_URL))
    bob_form = admin_form_data(bob_session.get(SETTINGS_URL))
    assert ann_session.post(SETTINGS_URL, {**ann_form, "min_count": "5", "top_k": "10"}).status_code == 302
    audit_record(obj=MiningSettings.load(), action=AuditEntry.Action.UPDATE, actor=ann, via=Via.FORM)
    response = bob_session.post(SETTINGS_URL, {**bob_form, "lookback_days": "365"})
    assert response.status_code == 200
    assert list(response.context["adminform"].form.non_field_errors()) == [
        f"Saved meanwhile by ann at 2026-11-22 18:42: min count 3 → 5; top k 20 → 10. {NOT_SAVED}"
    ]
    form = response.context["adminform"].form
    assert (form["lookback_days"].value(), form["min_count"].value(), form["top_k"].value()) == ("365", "5", "10")
    stored = MiningSettings.objects.get()
    assert (stored.min_count, stored.top_k, stored.lookback_days, stored.version) == (5, 10, 730, 2)
    # Saving the form again as shown: Bob's look-back, and Ann's two values stay.
    assert bob_session.post(SETTINGS_URL, admin_form_data(response)).status_code == 302
    stored = MiningSettings.objects.get()
    assert (stored.min_count, stored.top_k, stored.lookback_days, stored.version) == (5, 10, 365, 3)


def test_mining_settings_update_with_a_stale_version_raises():
    settings = MiningSettings.load()
    settings.min_count = 4
    mining_settings_update(settings=settings, expected_version=1)
    stale = MiningSettings.objects.get()
    stale.min_count = 9
    with pytest.raises(EditConflict):
        mining_settings_update(settings=stale, expected_version=1)
    assert MiningSettings.objects.values_list("min_count", "version").get() == (4, 2)


def test_mining_settings_saved_unchanged_raise_no_version():
    mining_settings_update(settings=MiningSettings.load(), expected_version=1)
    assert MiningSettings.objects.values_list("version", flat=True).get() == 1
