"""Review decisions, exclusion rules from the queue, undo, links and atomic publishing
(merchandising/services/review.py and links.py), through the services the views call."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from catalog.models import ProductStatus
from merchandising.models import (
    Decision,
    ExclusionRule,
    Link,
    LinkChange,
    LinkOrigin,
    LinkType,
    MiningRun,
    PublishedLink,
    PublishEvent,
    PublishState,
    RejectReason,
    Suggestion,
    SuggestionStatus,
)
from merchandising.services import (
    AlreadyDecided,
    LinkError,
    ReviewError,
    decision_undo,
    exclusion_rule_create,
    exclusion_rule_delete,
    exclusion_rule_preview,
    link_add,
    link_keep,
    link_replace_by_successor,
    link_retire,
    links_publish,
    links_reorder,
    publish_diff,
    publish_settings_update,
    suggestion_approve,
    suggestion_reject,
    suggestion_snooze,
    suggestions_bulk_decide,
    suggestions_bulk_preview,
    suggestions_recompute,
)
from tests.factories import BrandFactory, CategoryFactory, ProductFactory, UserFactory
from tests.merchandising.factories import MiningRunFactory, SuggestionFactory, baskets_create

pytestmark = pytest.mark.django_db

LOOSE = {"min_count": 2, "min_confidence": 0.0, "min_lift": 0.0, "score": "cosine"}


def recompute():
    run = suggestions_recompute(trigger=MiningRun.Trigger.COMMAND, overrides=LOOSE)
    assert run.status == MiningRun.Status.SUCCEEDED, run.error
    return run


def published() -> list[tuple[str, str, str, int]]:
    rows = PublishedLink.objects.published().values_list("source__sku", "target__sku", "type", "position")
    return sorted(rows)


def generation() -> int:
    return PublishState.load().generation


# --- decisions ----------------------------------------------------------------------------------


def test_approve_creates_the_link_publishes_it_and_records_the_decision(specialist):
    run = MiningRunFactory()
    suggestion = SuggestionFactory(co_count=7, confidence=0.35, lift=2.5, last_run=run, first_run=run)
    outcome = suggestion_approve(suggestion_id=suggestion.pk, actor=specialist, link_type=LinkType.ACCESSORY)
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.decided_by, suggestion.decided_at is not None) == (
        SuggestionStatus.APPROVED,
        specialist,
        True,
    )
    link = Link.objects.get()
    assert (link.source_id, link.target_id, link.type, link.position, link.origin) == (
        suggestion.source_id,
        suggestion.target_id,
        LinkType.ACCESSORY,
        1,
        LinkOrigin.MINED,
    )
    assert (link.co_count, link.confidence, link.lift, link.run_id, link.created_by) == (
        7,
        0.35,
        2.5,
        run.pk,
        specialist,
    )
    decision = outcome.decision
    assert (decision.action, decision.link_type, decision.link, decision.actor) == (
        Decision.Action.APPROVE,
        LinkType.ACCESSORY,
        link,
        specialist,
    )
    assert published() == [(suggestion.source.sku, suggestion.target.sku, LinkType.ACCESSORY, 1)]
    row = PublishedLink.objects.get()
    assert (row.co_count, row.run_number, row.approved_by_role, row.added_generation) == (
        7,
        run.pk,
        "Product specialist",
        1,
    )
    assert generation() == 1
    assert list(LinkChange.objects.values_list("action", "via", "actor")) == [
        (LinkChange.Action.ADDED, LinkChange.Via.REVIEW, specialist.pk)
    ]
    assert outcome.reverse is None


def test_approve_offers_the_reverse_pair_when_it_is_pending(specialist):
    ab = SuggestionFactory()
    ba = SuggestionFactory(source=ab.target, target=ab.source)
    assert suggestion_approve(suggestion_id=ab.pk, actor=specialist).reverse == ba
    suggestion_reject(suggestion_id=ba.pk, actor=specialist, reason=RejectReason.UNRELATED)
    other = SuggestionFactory(source=ab.source)
    SuggestionFactory(source=other.target, target=ab.source, status=SuggestionStatus.REJECTED)
    assert suggestion_approve(suggestion_id=other.pk, actor=specialist).reverse is None


def test_reject_records_reason_and_note_and_needs_a_note_for_other(specialist):
    suggestion = SuggestionFactory()
    with pytest.raises(ReviewError, match="needs a note"):
        suggestion_reject(suggestion_id=suggestion.pk, actor=specialist, reason=RejectReason.OTHER, note="  ")
    with pytest.raises(ReviewError, match="Pick a reason"):
        suggestion_reject(suggestion_id=suggestion.pk, actor=specialist, reason=RejectReason.EXCLUDED)
    assert Decision.objects.count() == 0
    suggestion_reject(suggestion_id=suggestion.pk, actor=specialist, reason=RejectReason.OTHER, note=" fits only 18V ")
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.reject_reason, suggestion.reject_note, suggestion.decided_by) == (
        SuggestionStatus.REJECTED,
        RejectReason.OTHER,
        "fits only 18V",
        specialist,
    )
    assert list(Decision.objects.values_list("action", "reject_reason", "note", "actor")) == [
        (Decision.Action.REJECT, RejectReason.OTHER, "fits only 18V", specialist.pk)
    ]
    assert Link.objects.count() == 0 and generation() == 0


def test_a_decided_suggestion_cannot_be_decided_again(specialist):
    other = UserFactory(username="maria")
    suggestion = SuggestionFactory()
    suggestion_approve(suggestion_id=suggestion.pk, actor=other)
    with pytest.raises(AlreadyDecided, match=r"^\['Already approved by maria at \d{4}-\d\d-\d\d \d\d:\d\d\.'\]$"):
        suggestion_reject(suggestion_id=suggestion.pk, actor=specialist, reason=RejectReason.UNRELATED)
    with pytest.raises(AlreadyDecided):
        suggestion_approve(suggestion_id=suggestion.pk, actor=specialist)
    assert Link.objects.count() == 1
    assert Decision.objects.count() == 1


def test_snooze_hides_until_the_next_run_and_undo_brings_it_back(specialist):
    run = MiningRunFactory()
    suggestion = SuggestionFactory()
    suggestion_snooze(suggestion_id=suggestion.pk, actor=specialist)
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.snoozed_run_id) == (SuggestionStatus.PENDING, run.pk)
    with pytest.raises(AlreadyDecided, match="no longer in the queue"):
        suggestion_snooze(suggestion_id=suggestion.pk, actor=specialist)
    outcome = decision_undo(actor=specialist)
    assert outcome.suggestions == [suggestion.pk]
    suggestion.refresh_from_db()
    assert suggestion.snoozed_run_id is None


# --- concurrency ------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sixteen_reviewers_deciding_at_once_exactly_one_wins():
    users = [UserFactory(username=f"reviewer{n:02d}") for n in range(16)]
    suggestion = SuggestionFactory()
    barrier = threading.Barrier(16)
    results: dict[str, object] = {}

    def decide(user, number):
        try:
            barrier.wait(timeout=30)
            if number % 2:
                results[user.username] = suggestion_approve(suggestion_id=suggestion.pk, actor=user)
            else:
                results[user.username] = suggestion_reject(
                    suggestion_id=suggestion.pk, actor=user, reason=RejectReason.UNRELATED
                )
        except Exception as exc:  # noqa: BLE001 - every outcome is checked below
            results[user.username] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(user, n)) for n, user in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 16
    losers = [name for name, result in results.items() if isinstance(result, AlreadyDecided)]
    winners = [name for name, result in results.items() if not isinstance(result, Exception)]
    assert (len(winners), len(losers)) == (1, 15)
    suggestion.refresh_from_db()
    assert suggestion.decided_by.username == winners[0]
    assert Decision.objects.count() == 1
    assert Link.objects.count() == (1 if suggestion.status == SuggestionStatus.APPROVED else 0)
    expected = f"Already {suggestion.get_status_display().lower()} by {winners[0]} at "
    assert all(results[name].messages[0].startswith(expected) for name in losers)


# --- bulk ---------------------------------------------------------------------------------------


def test_bulk_preview_counts_what_bulk_apply_decides(specialist):
    suggestions = [SuggestionFactory() for _ in range(5)]
    suggestion_reject(suggestion_id=suggestions[0].pk, actor=specialist, reason=RejectReason.UNRELATED)
    ids = [s.pk for s in suggestions] + [999_999]
    preview = suggestions_bulk_preview(suggestion_ids=ids)
    assert (preview.pending, preview.already_decided, preview.missing) == (4, 1, 1)
    state_before = generation()
    outcome = suggestions_bulk_decide(suggestion_ids=ids, action=Decision.Action.APPROVE, actor=specialist)
    assert len(outcome.decided) == preview.pending == 4
    assert sorted(pk for pk, _why in outcome.skipped) == sorted([suggestions[0].pk, 999_999])
    assert Link.objects.count() == 4
    assert generation() == state_before + 1  # one publish for the whole batch
    assert set(Decision.objects.filter(action="approve").values_list("batch", flat=True)) == {outcome.batch}
    # One undo undoes the whole batch: links retired, suggestions pending, one more publish.
    undone = decision_undo(actor=specialist)
    assert sorted(undone.suggestions) == sorted(outcome.decided)
    assert Suggestion.objects.filter(status=SuggestionStatus.PENDING).count() == 4
    assert Link.objects.active().count() == 0
    assert published() == []
    assert generation() == state_before + 2


def test_bulk_reject_needs_a_reason(specialist):
    suggestion = SuggestionFactory()
    with pytest.raises(ReviewError, match="Pick a reason"):
        suggestions_bulk_decide(suggestion_ids=[suggestion.pk], action="reject", actor=specialist)
    outcome = suggestions_bulk_decide(
        suggestion_ids=[suggestion.pk], action="reject", actor=specialist, reason=RejectReason.COMPETITOR
    )
    assert outcome.decided == [suggestion.pk]
    suggestion.refresh_from_db()
    assert suggestion.reject_reason == RejectReason.COMPETITOR


# --- exclusion rules from the queue ---------------------------------------------------------------


def test_exclusion_rule_preview_equals_what_it_rejects_and_the_next_run_respects_it(specialist):
    tools = CategoryFactory(name="Tools")
    gloves = CategoryFactory(name="Gloves")
    drill, saw = ProductFactory(sku="DRILL", category=tools), ProductFactory(sku="SAW", category=tools)
    glove, mitt = ProductFactory(sku="GLOVE", category=gloves), ProductFactory(sku="MITT", category=gloves)
    baskets_create([[drill, glove]] * 3 + [[saw, mitt]] * 3 + [[drill, saw]] * 3)
    recompute()
    assert Suggestion.objects.count() == 6
    # Approve one tools->gloves pair first: a rule never touches a decision already taken.
    kept = Suggestion.objects.get(source=drill, target=glove)
    suggestion_approve(suggestion_id=kept.pk, actor=specialist)
    rule = ExclusionRule(kind=ExclusionRule.Kind.CATEGORY_PAIR, category=tools, other_category=gloves, reason="PPE")
    assert exclusion_rule_preview(rule=rule) == 3  # glove->drill, saw->mitt, mitt->saw
    outcome = exclusion_rule_create(rule=rule, actor=specialist)
    assert outcome.rejected == 3
    assert dict(Suggestion.objects.values_list("source__sku", "target__sku").filter(status="rejected").values_list(
        "source__sku", "reject_reason"
    )) == {"GLOVE": "excluded", "SAW": "excluded", "MITT": "excluded"}  # fmt: skip
    assert Decision.objects.filter(action=Decision.Action.EXCLUDE, rule=rule).count() == 3
    assert rule.created_by == specialist
    run = recompute()
    # The run no longer produces tools<->gloves pairs: they go stale, decisions kept.
    assert run.suggestions_stale == 4
    assert set(Suggestion.objects.filter(stale=False).values_list("source__sku", "target__sku")) == {
        ("DRILL", "SAW"),
        ("SAW", "DRILL"),
    }
    kept.refresh_from_db()
    assert (kept.status, kept.stale) == (SuggestionStatus.APPROVED, True)
    # Deleting the rule: the pairs it rejected are pending again and come back at the next run.
    assert exclusion_rule_delete(rule_id=rule.pk, actor=specialist) == 3
    recompute()
    assert Suggestion.objects.pending_review().count() == 5
    kept.refresh_from_db()
    assert (kept.status, kept.stale) == (SuggestionStatus.APPROVED, False)


def test_product_brand_and_category_rules_cover_either_side(specialist):
    brand = BrandFactory(name="Rival")
    parent = CategoryFactory(name="Power tools")
    child = CategoryFactory(name="Drills", parent=parent, path="Power tools > Drills")
    a = ProductFactory(brand=brand)
    b = ProductFactory(category=child)
    c, d = ProductFactory(), ProductFactory()
    SuggestionFactory(source=a, target=c)
    SuggestionFactory(source=d, target=a)
    SuggestionFactory(source=c, target=b)
    SuggestionFactory(source=c, target=d)
    assert exclusion_rule_preview(rule=ExclusionRule(kind="brand", brand=brand)) == 2
    assert exclusion_rule_preview(rule=ExclusionRule(kind="category", category=parent)) == 1
    assert exclusion_rule_preview(rule=ExclusionRule(kind="product", product=c)) == 3
    outcome = exclusion_rule_create(rule=ExclusionRule(kind="product", product=c), actor=specialist)
    assert outcome.rejected == 3
    # Undo of the exclusion: the rule is gone and the three are pending again.
    undone = decision_undo(actor=specialist)
    assert len(undone.suggestions) == 3
    assert ExclusionRule.objects.count() == 0
    assert Suggestion.objects.filter(status=SuggestionStatus.PENDING).count() == 4


def test_undo_and_a_deleted_rule_put_suggestions_back_exactly_as_undecided(specialist):
    """Both ways back to the queue clear the same fields (BACK_TO_PENDING)."""
    undecided = ("pending", "", "", None, "", None)

    def state(suggestion) -> tuple:
        suggestion.refresh_from_db()
        return (
            suggestion.status,
            suggestion.reject_reason,
            suggestion.reject_note,
            suggestion.decided_by,
            suggestion.decided_by_name,
            suggestion.decided_at,
        )

    rejected = SuggestionFactory()
    suggestion_reject(suggestion_id=rejected.pk, actor=specialist, reason=RejectReason.OTHER, note="odd pair")
    assert state(rejected)[:5] == ("rejected", "other", "odd pair", specialist, specialist.username)
    assert decision_undo(actor=specialist).suggestions == [rejected.pk]
    assert state(rejected) == undecided

    excluded = SuggestionFactory()
    outcome = exclusion_rule_create(rule=ExclusionRule(kind="product", product=excluded.source), actor=specialist)
    assert outcome.rejected == 1
    assert state(excluded)[:5] == ("rejected", "excluded", "", specialist, specialist.username)
    assert exclusion_rule_delete(rule_id=ExclusionRule.objects.get().pk, actor=specialist) == 1
    assert state(excluded) == undecided


# --- decisions survive a recompute, end to end ------------------------------------------------------


def test_rejected_stays_rejected_and_approved_stays_published_across_a_recompute(specialist):
    a, b, c = (ProductFactory(sku=sku) for sku in "ABC")
    baskets_create([[a, b]] * 3 + [[a, c]] * 2)
    recompute()
    ab = Suggestion.objects.get(source=a, target=b)
    ac = Suggestion.objects.get(source=a, target=c)
    suggestion_approve(suggestion_id=ab.pk, actor=specialist)
    suggestion_reject(suggestion_id=ac.pk, actor=specialist, reason=RejectReason.INCOMPATIBLE)
    baskets_create([[a, b, c]] * 2)
    run = recompute()
    assert run.suggestions_updated >= 2
    ab.refresh_from_db()
    ac.refresh_from_db()
    assert (ab.status, ab.co_count) == (SuggestionStatus.APPROVED, 5)
    assert (ac.status, ac.reject_reason, ac.co_count) == (SuggestionStatus.REJECTED, RejectReason.INCOMPATIBLE, 4)
    assert ac not in Suggestion.objects.pending_review()
    assert published() == [("A", "B", LinkType.CROSS_SELL, 1)]
    # The published evidence is the approval's, not the latest run's.
    assert PublishedLink.objects.get().co_count == 3


# --- links and publishing -----------------------------------------------------------------------------


def test_manual_links_positions_reorder_and_retire(specialist):
    source = ProductFactory(sku="S")
    targets = [ProductFactory(sku=f"T{n}") for n in range(3)]
    links = [link_add(source=source, target=t, link_type=LinkType.ACCESSORY, actor=specialist) for t in targets]
    assert [link.position for link in links] == [1, 2, 3]
    first = link_add(
        source=source, target=ProductFactory(sku="T9"), link_type="accessory", actor=specialist, position=1
    )
    assert list(Link.objects.active().filter(source=source).values_list("target__sku", "position")) == [
        ("T9", 1),
        ("T0", 2),
        ("T1", 3),
        ("T2", 4),
    ]
    with pytest.raises(LinkError, match="already has T0"):
        link_add(source=source, target=targets[0], link_type=LinkType.ACCESSORY, actor=specialist)
    with pytest.raises(LinkError, match="itself"):
        link_add(source=source, target=source, link_type=LinkType.ACCESSORY, actor=specialist)
    order = [links[2].pk, first.pk, links[0].pk, links[1].pk]
    with pytest.raises(LinkError, match="every active link"):
        links_reorder(source=source, link_type=LinkType.ACCESSORY, link_ids=order[:3], actor=specialist)
    links_reorder(source=source, link_type=LinkType.ACCESSORY, link_ids=order, actor=specialist)
    assert [p[1] for p in published()] == ["T0", "T1", "T2", "T9"]
    assert sorted((p[1], p[3]) for p in published()) == [("T0", 3), ("T1", 4), ("T2", 1), ("T9", 2)]
    link_retire(link_id=first.pk, actor=specialist, reason="wrong size")
    with pytest.raises(LinkError, match="already retired"):
        link_retire(link_id=first.pk, actor=specialist)
    assert sorted((p[1], p[3]) for p in published()) == [("T0", 2), ("T1", 3), ("T2", 1)]
    tombstone = PublishedLink.objects.get(link=first)
    assert tombstone.removed_generation == generation()
    assert list(LinkChange.objects.filter(product=source).order_by("id").values_list("action", flat=True)) == [
        "added",
        "added",
        "added",
        "added",
        "reordered",
        "retired",
    ]
    reorder = LinkChange.objects.get(action="reordered")
    assert reorder.details == {
        "before": [first.target_id, targets[0].pk, targets[1].pk, targets[2].pk],
        "after": [targets[2].pk, first.target_id, targets[0].pk, targets[1].pk],
    }


def test_batch_mode_waits_for_publish_and_the_diff_shows_exactly_the_changes(specialist, administrator):
    source = ProductFactory(sku="S")
    keep = link_add(source=source, target=ProductFactory(sku="K"), link_type=LinkType.CROSS_SELL, actor=specialist)
    gone = link_add(source=source, target=ProductFactory(sku="G"), link_type=LinkType.CROSS_SELL, actor=specialist)
    assert generation() == 2
    publish_settings_update(batch_mode=True, actor=administrator)
    new = link_add(source=source, target=ProductFactory(sku="N"), link_type=LinkType.CROSS_SELL, actor=specialist)
    link_retire(link_id=gone.pk, actor=specialist)
    links_reorder(source=source, link_type=LinkType.CROSS_SELL, link_ids=[new.pk, keep.pk], actor=specialist)
    assert generation() == 2
    assert published() == [("S", "G", "cross_sell", 2), ("S", "K", "cross_sell", 1)]  # the webshop's view is unchanged
    diff = publish_diff()
    assert diff.counts == {"added": 1, "removed": 1, "reordered": 1, "changed": 0}
    assert [item["link_id"] for item in diff.added] == [new.pk]
    assert [item["link_id"] for item in diff.removed] == [gone.pk]
    assert [(item["link_id"], item["old"]["position"], item["new"]["position"]) for item in diff.reordered] == [
        (keep.pk, 1, 2)
    ]
    result = links_publish(actor=specialist, batch=True)
    assert (result.generation, result.counts) == (3, diff.counts)
    assert published() == [("S", "K", "cross_sell", 2), ("S", "N", "cross_sell", 1)]
    assert not publish_diff()
    assert links_publish(actor=specialist).event is None  # nothing to publish: same generation
    assert generation() == 3
    event = PublishEvent.objects.get(generation=3)
    assert (event.added, event.removed, event.changed, event.batch, event.actor) == (1, 1, 1, True, specialist)
    # Turning batch mode off publishes whatever waits.
    link_add(source=source, target=ProductFactory(sku="W"), link_type=LinkType.CROSS_SELL, actor=specialist)
    assert generation() == 3
    publish_settings_update(batch_mode=False, actor=administrator)
    assert generation() == 4
    assert ("S", "W", "cross_sell", 3) in published()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_reader_during_a_publish_sees_the_old_or_the_new_set_never_half(specialist):
    source = ProductFactory(sku="S")
    PublishState.objects.update_or_create(pk=1, defaults={"batch_mode": True})
    for n in range(50):
        link_add(source=source, target=ProductFactory(sku=f"T{n:02d}"), link_type="cross_sell", actor=specialist)
    links_publish(actor=specialist, batch=True)
    Link.objects.filter(source=source, position__gt=25).update(retired_at=timezone.now())
    for n in range(50, 60):
        link_add(source=source, target=ProductFactory(sku=f"T{n:02d}"), link_type="cross_sell", actor=specialist)
    old_state = (1, 50)
    new_state = (2, 35)
    seen = set()
    stop = threading.Event()

    def read():
        try:
            while not stop.is_set():
                with connection.cursor() as cursor:
                    # One statement: the generation and the published count from one snapshot.
                    cursor.execute(
                        "SELECT (SELECT generation FROM merchandising_publishstate WHERE id = 1),"
                        " (SELECT COUNT(*) FROM merchandising_publishedlink WHERE removed_generation IS NULL)"
                    )
                    seen.add(tuple(cursor.fetchone()))
        finally:
            connection.close()

    reader = threading.Thread(target=read)
    reader.start()
    links_publish(actor=specialist, batch=True)
    stop.set()
    reader.join(timeout=30)
    assert seen <= {old_state, new_state}
    assert old_state in seen or new_state in seen


def test_needs_attention_stale_discontinued_and_successor(specialist):
    source = ProductFactory(sku="S")
    stale_target, gone_target, old_target, successor = (ProductFactory(sku=s) for s in ("ST", "GT", "OT", "NEW"))
    suggestion = SuggestionFactory(source=source, target=stale_target)
    suggestion_approve(suggestion_id=suggestion.pk, actor=specialist)
    link_add(source=source, target=gone_target, link_type="accessory", actor=specialist)
    replaced = link_add(source=source, target=old_target, link_type="accessory", actor=specialist)
    link_add(source=old_target, target=successor, link_type=LinkType.SUCCESSOR, actor=specialist)
    assert Link.objects.needs_attention().count() == 1  # only the successor reason so far
    Suggestion.objects.filter(pk=suggestion.pk).update(stale=True, stale_since=timezone.now())
    gone_target.status = ProductStatus.DISCONTINUED
    gone_target.save()
    rows = {
        link.target.sku: (link.reason_stale, link.reason_target_inactive, link.reason_successor)
        for link in Link.objects.needs_attention().select_related("target")
    }
    assert rows == {"ST": (True, False, False), "GT": (False, True, False), "OT": (False, False, True)}
    stale_link = Link.objects.get(target=stale_target)
    link_keep(link_id=stale_link.pk, actor=specialist)
    assert "ST" not in {link.target.sku for link in Link.objects.needs_attention().select_related("target")}
    # Goes stale again later: back on the list.
    Suggestion.objects.filter(pk=suggestion.pk).update(stale_since=timezone.now())
    assert Link.objects.needs_attention().filter(pk=stale_link.pk).exists()
    new_link = link_replace_by_successor(link_id=replaced.pk, actor=specialist)
    assert (new_link.target, new_link.type, new_link.position) == (successor, "accessory", 2)
    replaced.refresh_from_db()
    assert replaced.retired_at is not None
    assert ("S", "NEW", "accessory", 2) in published()
    assert ("S", "OT", "accessory", 2) not in published()
    assert LinkChange.objects.filter(product=source, action="replaced").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sixteen_reviewers_through_the_queue_view_one_wins_fifteen_see_the_conflict():
    """The same race through HTTP: every request answers 200 with its row, none a server error."""
    from django.test import Client
    from django.urls import reverse

    from accounts.roles import PRODUCT_SPECIALIST

    users = [UserFactory(username=f"desk{n:02d}", role=PRODUCT_SPECIALIST) for n in range(16)]
    suggestion = SuggestionFactory()
    clients = []
    for user in users:
        client = Client(raise_request_exception=False)
        client.force_login(user)
        clients.append(client)
    barrier = threading.Barrier(16)
    responses: dict[str, object] = {}

    def post(number):
        try:
            barrier.wait(timeout=30)
            if number % 2:
                url = reverse("merchandising:review_approve", args=[suggestion.pk])
                data = {"link_type": "cross_sell"}
            else:
                url = reverse("merchandising:review_reject", args=[suggestion.pk])
                data = {"reason": RejectReason.WRONG_BRAND}
            responses[users[number].username] = clients[number].post(url, data, HTTP_HX_REQUEST="true")
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(response.status_code for response in responses.values()) == [200] * 16
    suggestion.refresh_from_db()
    winner = suggestion.decided_by.username
    status = suggestion.get_status_display().lower()
    conflicts = [name for name, response in responses.items() if f"Already {status} by {winner} at" in response.text]
    assert len(conflicts) == 15 and winner not in conflicts
    assert Decision.objects.count() == 1
    assert Decision.objects.get().actor.username == winner
