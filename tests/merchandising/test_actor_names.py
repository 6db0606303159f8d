"""Who acted stays on the row when the user is deleted: every service that records a person
writes the user name next to the user key (SET_NULL) in the same write, the pages show it as
"name (deleted user)", and migration 0009 fills the existing rows."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.urls import reverse

from accounts.roles import ADMINISTRATOR, PRODUCT_SPECIALIST
from merchandising.models import (
    Decision,
    ExclusionRule,
    Link,
    LinkChange,
    LinkType,
    MiningRun,
    PublishEvent,
    PublishState,
    Suggestion,
)
from merchandising.services import (
    AlreadyDecided,
    decision_undo,
    exclusion_rule_create,
    exclusion_rule_delete,
    exclusion_rule_save,
    link_add,
    link_retire,
    links_reorder,
    mining_run_create,
    suggestion_approve,
    suggestion_reject,
    suggestion_snooze,
    suggestions_bulk_decide,
)
from tests.factories import ProductFactory, UserFactory
from tests.merchandising.factories import MiningRunFactory, SuggestionFactory

pytestmark = pytest.mark.django_db

GONE = "ann (deleted user)"


@pytest.fixture
def ann(db):
    return UserFactory(username="ann", role=PRODUCT_SPECIALIST)


@pytest.fixture
def run(db):
    return MiningRunFactory()


def pending(run, n: int) -> list[Suggestion]:
    return [SuggestionFactory(first_run=run, last_run=run, score=1.0 - i / 100) for i in range(n)]


def test_every_service_keeps_the_name_and_it_outlives_the_user(ann, run):
    s = pending(run, 8)
    suggestion_approve(suggestion_id=s[0].pk, actor=ann)
    suggestion_reject(suggestion_id=s[1].pk, actor=ann, reason="unrelated")
    suggestion_snooze(suggestion_id=s[2].pk, actor=ann)
    suggestions_bulk_decide(suggestion_ids=[s[3].pk, s[4].pk], action="approve", actor=ann)
    suggestions_bulk_decide(suggestion_ids=[s[5].pk], action="reject", actor=ann, reason="unrelated")
    exclusion_rule_create(rule=ExclusionRule(kind=ExclusionRule.Kind.PRODUCT, product=s[6].target), actor=ann)
    exclusion_rule_save(rule=ExclusionRule(kind=ExclusionRule.Kind.PRODUCT, product=ProductFactory()), actor=ann)
    source = ProductFactory()
    manual = [link_add(source=source, target=ProductFactory(), link_type=LinkType.ACCESSORY, actor=ann) for _ in "ab"]
    links_reorder(source=source, link_type=LinkType.ACCESSORY, link_ids=[manual[1].pk, manual[0].pk], actor=ann)
    link_retire(link_id=manual[0].pk, actor=ann)
    mining_run_create(trigger=MiningRun.Trigger.MANUAL, actor=ann)

    ann.delete()

    decisions = Decision.objects.order_by("pk")
    assert [(d.action, d.actor_id, d.actor_name, d.actor_label) for d in decisions] == [
        ("approve", None, "ann", GONE),
        ("reject", None, "ann", GONE),
        ("snooze", None, "ann", GONE),
        ("approve", None, "ann", GONE),
        ("approve", None, "ann", GONE),
        ("reject", None, "ann", GONE),
        ("exclude", None, "ann", GONE),
    ]
    decided = Suggestion.objects.exclude(status="pending").order_by("pk")
    assert [(x.pk, x.decided_by_id, x.decided_by_name, x.decided_by_label) for x in decided] == [
        (s[i].pk, None, "ann", GONE) for i in (0, 1, 3, 4, 5, 6)
    ]
    assert Suggestion.objects.get(pk=s[2].pk).decided_by_name == ""  # a snooze decides nothing
    links = Link.objects.order_by("pk")
    assert [(x.created_by_id, x.created_by_name, x.created_by_label) for x in links] == [(None, "ann", GONE)] * 5
    assert [(x.retired_by_name, x.retired_by_label) for x in links] == [("", "")] * 3 + [("ann", GONE), ("", "")]
    changes = LinkChange.objects.order_by("pk")
    assert [(c.action, c.actor_name, c.actor_label) for c in changes] == [
        ("added", "ann", GONE),
        ("added", "ann", GONE),
        ("added", "ann", GONE),
        ("added", "ann", GONE),
        ("added", "ann", GONE),
        ("reordered", "ann", GONE),
        ("retired", "ann", GONE),
    ]
    events = PublishEvent.objects.order_by("generation")
    assert [(e.actor_id, e.actor_name, e.actor_label) for e in events] == [(None, "ann", GONE)] * 6
    state = PublishState.load()
    assert (state.published_by_id, state.published_by_name, state.published_by_label) == (None, "ann", GONE)
    rules = ExclusionRule.objects.order_by("pk")
    assert [(r.created_by_id, r.created_by_name, r.created_by_label) for r in rules] == [(None, "ann", GONE)] * 2
    started = MiningRun.objects.exclude(pk=run.pk).get()
    assert (started.started_by_id, started.started_by_name, started.started_by_label) == (None, "ann", GONE)


def test_a_live_user_is_shown_by_its_current_name_and_nobody_as_before(ann, run):
    (one,) = pending(run, 1)
    suggestion_approve(suggestion_id=one.pk, actor=ann)
    ann.username = "ann.b"
    ann.save()
    decision = Decision.objects.select_related("actor").get()
    assert (decision.actor_name, decision.actor_label) == ("ann", "ann.b")
    link = link_add(source=ProductFactory(), target=ProductFactory(), link_type=LinkType.ACCESSORY, actor=None)
    assert (link.created_by_name, link.created_by_label) == ("", "")
    assert LinkChange.objects.get(link=link).actor_label == "system"


def test_undo_and_a_deleted_rule_clear_the_name_with_the_decision(ann, run):
    first, second = pending(run, 2)
    suggestion_reject(suggestion_id=first.pk, actor=ann, reason="unrelated")
    decision_undo(actor=ann)
    outcome = exclusion_rule_create(
        rule=ExclusionRule(kind=ExclusionRule.Kind.PRODUCT, product=second.source), actor=ann
    )
    assert Suggestion.objects.get(pk=second.pk).decided_by_name == "ann"
    exclusion_rule_delete(rule_id=outcome.rule.pk, actor=ann)

    rows = Suggestion.objects.order_by("pk").values_list("status", "decided_by_id", "decided_by_name")
    assert list(rows) == [("pending", None, ""), ("pending", None, "")]


def test_a_conflict_names_the_deleted_user(ann, run, specialist):
    (one,) = pending(run, 1)
    suggestion_approve(suggestion_id=one.pk, actor=ann)
    ann.delete()

    with pytest.raises(AlreadyDecided) as caught:
        suggestion_reject(suggestion_id=one.pk, actor=specialist, reason="unrelated")
    assert caught.value.messages[0].startswith(f"Already approved by {GONE} at ")
    assert Decision.objects.count() == 1  # the refused decision wrote nothing


# --- where it is shown -----------------------------------------------------------------------------


def test_the_pages_show_the_deleted_users_name(client, ann, run, specialist):
    (one,) = pending(run, 1)
    suggestion_approve(suggestion_id=one.pk, actor=ann)
    ann.delete()
    client.force_login(specialist)

    row = client.post(reverse("merchandising:review_approve", args=[one.pk]), HTTP_HX_REQUEST="true")
    assert row.status_code == 200
    assert f"by {GONE} at " in row.content.decode()

    history = client.get(reverse("merchandising:product_links", args=[one.source.sku])).content.decode()
    history = history[history.index('id="history"') :]
    assert history.count(f"<td>{GONE}</td>") == 1

    publish = client.get(reverse("merchandising:publish")).content.decode()
    assert f"by {GONE}" in publish
    assert f"<td>{GONE}</td>" in publish


def test_the_admin_shows_the_deleted_users_name(client, ann, run):
    (one,) = pending(run, 1)
    suggestion_approve(suggestion_id=one.pk, actor=ann)
    ann.delete()
    client.force_login(UserFactory(username="boss", role=ADMINISTRATOR))

    for model in ("linkchange", "publishevent", "link"):
        html = client.get(reverse(f"admin:merchandising_{model}_changelist")).content.decode()
        assert html.count(GONE) == 1, model
    html = client.get(reverse("admin:merchandising_suggestion_change", args=[one.pk])).content.decode()
    assert html.count(GONE) == 1


# --- the data migration --------------------------------------------------------------------------


def test_the_migration_fills_names_from_the_users_and_its_reverse_clears_them(ann, run):
    migration = importlib.import_module("merchandising.migrations.0009_decision_actor_name")
    one, two = pending(run, 2)
    suggestion_approve(suggestion_id=one.pk, actor=ann)
    suggestion_reject(suggestion_id=two.pk, actor=None, reason="unrelated")
    for model_name, _key, name in migration.ACTOR_FIELDS:
        apps.get_model("merchandising", model_name).objects.update(**{name: ""})  # as before 0009

    migration.fill_names(apps, None)

    assert list(Decision.objects.order_by("pk").values_list("actor_name", flat=True)) == ["ann", ""]
    assert list(Suggestion.objects.order_by("pk").values_list("decided_by_name", flat=True)) == ["ann", ""]
    assert list(Link.objects.values_list("created_by_name", flat=True)) == ["ann"]
    assert list(LinkChange.objects.values_list("actor_name", flat=True)) == ["ann"]
    assert list(PublishEvent.objects.values_list("actor_name", flat=True)) == ["ann"]
    assert PublishState.load().published_by_name == "ann"

    migration.clear_names(apps, None)

    assert set(Decision.objects.values_list("actor_name", flat=True)) == {""}
    assert set(Link.objects.values_list("created_by_name", flat=True)) == {""}
