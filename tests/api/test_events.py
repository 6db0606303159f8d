"""Webshop events: the intake service (validation per event, idempotency by event_id, bulk
storage), the CTR-per-link aggregation, and POST /api/v1/events/ (status codes, scopes,
pinned query count)."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from merchandising.api.tokens import tracking_token
from merchandising.models import WebshopEvent
from merchandising.selectors.events import event_totals, link_event_stats
from merchandising.services.events import MAX_BATCH, EventBatchError, EventRejection, events_ingest

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
NOT_ISO = "not an ISO 8601 date and time (e.g. 2026-05-04T13:45:00+02:00)"
NO_ZONE = "must include a time zone (Z or an offset such as +02:00)"
KINDS_MESSAGE = "required: one of impression, click, add_to_cart, purchase"


def token(
    link_id: int = 7, *, generation: int = 3, source_id: int = 11, target_id: int = 12, touchpoint="product_page"
):
    return tracking_token(
        link_id=link_id, generation=generation, source_id=source_id, target_id=target_id, touchpoint=touchpoint
    )


def event(eid: str = "e-1", **overrides) -> dict:
    body = {
        "event_id": eid,
        "type": "impression",
        "token": token(),
        "account": "C00042",
        "occurred_at": "2026-06-01T13:55:00+02:00",
    }
    body.update(overrides)
    return body


def ingest(events, now=NOW, client_id=5):
    return events_ingest(events=events, client_id=client_id, now=now)


# --- the service ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_good_event_is_stored_with_what_its_token_says():
    result = ingest([event()])

    assert (result.accepted, result.duplicates, result.rejected) == (1, 0, [])
    stored = WebshopEvent.objects.get()
    assert (
        stored.event_id, stored.kind, stored.link_id, stored.generation, stored.source_id, stored.target_id,
        stored.touchpoint, stored.account, stored.client_id,
    ) == ("e-1", "impression", 7, 3, 11, 12, "product_page", "C00042", 5)  # fmt: skip
    assert stored.occurred_at == datetime.datetime(2026, 6, 1, 11, 55, tzinfo=datetime.UTC)
    assert stored.received_at is not None


@pytest.mark.django_db
def test_the_same_batch_twice_is_stored_once_and_counted_as_duplicates():
    batch = [event(f"e-{n}", type=kind) for n, kind in enumerate(["impression", "click", "add_to_cart", "purchase"])]

    first = ingest(batch)
    second = ingest(batch)

    assert (first.accepted, first.duplicates) == (4, 0)
    assert (second.accepted, second.duplicates, second.rejected) == (0, 4, [])
    assert sorted(WebshopEvent.objects.values_list("event_id", "kind")) == [
        ("e-0", "impression"), ("e-1", "click"), ("e-2", "add_to_cart"), ("e-3", "purchase"),
    ]  # fmt: skip


@pytest.mark.django_db
def test_a_repeat_within_one_batch_is_a_duplicate_and_the_first_one_wins():
    result = ingest([event("e-1", type="click"), event("e-2"), event("e-1", type="purchase")])

    assert (result.accepted, result.duplicates) == (2, 1)
    assert WebshopEvent.objects.get(event_id="e-1").kind == "click"


@pytest.mark.django_db
def test_a_partly_new_batch_stores_only_the_new_events():
    ingest([event("e-1"), event("e-2")])

    result = ingest([event("e-2"), event("e-3"), event("e-1"), event("e-4")])

    assert (result.accepted, result.duplicates) == (2, 2)
    assert WebshopEvent.objects.count() == 4


@pytest.mark.django_db
def test_bad_events_are_rejected_with_reasons_and_the_good_ones_kept():
    result = ingest([event("good-1"), event("bad-1", type="view"), event("good-2", type="click")])

    assert (result.accepted, result.duplicates) == (2, 0)
    assert result.rejected == [
        EventRejection(
            index=1, event_id="bad-1", errors={"type": "required: one of impression, click, add_to_cart, purchase"}
        )
    ]
    assert sorted(WebshopEvent.objects.values_list("event_id", flat=True)) == ["good-1", "good-2"]


OLDEST = NOW - datetime.timedelta(days=90)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"event_id": ""}, "event_id", "required: a non-empty string"),
        ({"event_id": None}, "event_id", "required: a non-empty string"),
        ({"event_id": 17}, "event_id", "required: a non-empty string"),
        ({"event_id": "x" * 101}, "event_id", "at most 100 characters"),
        ({"event_id": "a\x00b"}, "event_id", "must not contain control characters"),
        ({"type": None}, "type", "required: one of impression, click, add_to_cart, purchase"),
        ({"type": "Click"}, "type", "required: one of impression, click, add_to_cart, purchase"),
        ({"token": None}, "token", "required: the tracking token of the recommended item"),
        ({"token": ""}, "token", "required: the tracking token of the recommended item"),
        ({"token": "not-a-token"}, "token", "unknown or altered tracking token"),
        ({"token": token()[:-1] + ("A" if token()[-1] != "A" else "B")}, "token", "unknown or altered tracking token"),
        ({"token": "x" * 5000}, "token", "unknown or altered tracking token"),
        ({"account": 42}, "account", "must be a string (the customer account id) or null"),
        ({"account": "C" * 65}, "account", "at most 64 characters"),
        ({"account": "C\n1"}, "account", "must not contain control characters"),
        ({"occurred_at": None}, "occurred_at", "required: an ISO 8601 date and time with a time zone"),
        ({"occurred_at": 1780000000}, "occurred_at", "required: an ISO 8601 date and time with a time zone"),
        ({"occurred_at": "yesterday"}, "occurred_at", NOT_ISO),
        ({"occurred_at": "2026-06-01T25:00:00Z"}, "occurred_at", NOT_ISO),
        ({"occurred_at": "2026-06-01T11:00:00"}, "occurred_at", NO_ZONE),
        ({"occurred_at": "2026-06-01T12:05:01Z"}, "occurred_at", "lies in the future (more than 5 minutes)"),
        ({"occurred_at": (OLDEST - datetime.timedelta(seconds=1)).isoformat()}, "occurred_at", "older than 90 days"),
    ],
)  # fmt: skip
@pytest.mark.django_db
def test_each_field_is_validated(overrides, field, message):
    result = ingest([event("e-1", **overrides)])

    assert result.accepted == 0
    assert len(result.rejected) == 1
    rejection = result.rejected[0]
    assert rejection.index == 0
    assert rejection.errors == {field: message}
    assert rejection.event_id == (None if field == "event_id" else "e-1")
    assert WebshopEvent.objects.count() == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"account": None},
        {"account": ""},
        {"occurred_at": "2026-06-01T12:05:00Z"},  # at the skew limit
        {"occurred_at": OLDEST.isoformat()},  # exactly 90 days old
        {"occurred_at": "2026-06-01T12:00:00.123456+00:00"},
        {"occurred_at": "2026-06-01 13:00:00+01:00"},
        {"unknown_field": "ignored"},
    ],
)
@pytest.mark.django_db
def test_values_at_the_limits_are_accepted(overrides):
    result = ingest([event("e-1", **overrides)])

    assert (result.accepted, result.rejected) == (1, [])


@pytest.mark.django_db
def test_missing_account_stores_an_empty_one():
    body = event()
    del body["account"]

    assert ingest([body]).accepted == 1
    assert WebshopEvent.objects.get().account == ""


@pytest.mark.django_db
def test_every_bad_field_of_an_event_is_reported_at_once():
    result = ingest([{"event_id": "e-1", "type": "nope", "token": "bad", "occurred_at": "soon"}, "not an object"])

    assert [(r.index, r.event_id, sorted(r.errors)) for r in result.rejected] == [
        (0, "e-1", ["occurred_at", "token", "type"]),
        (1, None, ["event"]),
    ]
    assert result.rejected[1].errors == {"event": "must be a JSON object"}


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (None, '"events" must be a list of events'),
        ({"event_id": "e-1"}, '"events" must be a list of events'),
        ("e-1", '"events" must be a list of events'),
        ([], '"events" is empty: send at least one event'),
        ([{}] * (MAX_BATCH + 1), f'"events" holds {MAX_BATCH + 1} events; at most {MAX_BATCH} per batch'),
    ],
)
@pytest.mark.django_db
def test_an_unusable_batch_is_refused_as_a_whole(events, message):
    with pytest.raises(EventBatchError) as caught:
        ingest(events)

    assert str(caught.value) == message
    assert WebshopEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_full_batch_costs_three_queries_on_postgresql_and_the_same_as_a_single_event():
    def queries(count: int, prefix: str) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            result = ingest([event(f"{prefix}-{n}") for n in range(count)])
        assert result.accepted == count
        return [query["sql"] for query in captured.captured_queries]

    single = queries(1, "one")
    full = queries(MAX_BATCH, "full")

    # The read, the insert, and the batch's one audit row (issue 11).
    assert len(single) == 3
    assert single[0].startswith("SELECT")
    assert single[1].startswith("INSERT")
    assert single[2].startswith('INSERT INTO "audit_auditentry"')
    if connection.vendor == "postgresql":
        assert len(full) == 3
        assert "ON CONFLICT DO NOTHING" in full[1]
    else:  # SQLite: Django splits the insert at 999 parameters (11 columns: 90 rows each)
        assert len(full) == 2 + -(-MAX_BATCH // (999 // 11))
    assert WebshopEvent.objects.count() == MAX_BATCH + 1


@pytest.mark.django_db
def test_no_query_at_all_when_every_event_is_rejected():
    with CaptureQueriesContext(connection) as captured:
        result = ingest([event(type="bad"), event(token="bad")])

    assert len(result.rejected) == 2
    assert len(captured) == 0


@pytest.mark.django_db
def test_an_event_stored_between_the_check_and_the_insert_is_not_stored_twice():
    """The unique constraint, not the pre-check, is what keeps an event_id unique: an insert
    racing a concurrent one conflicts and is skipped (ON CONFLICT DO NOTHING)."""
    WebshopEvent.objects.bulk_create(
        [WebshopEvent(event_id="e-1", kind="click", occurred_at=NOW), WebshopEvent(event_id="e-1", kind="impression",
         occurred_at=NOW)], ignore_conflicts=True,
    )  # fmt: skip

    assert list(WebshopEvent.objects.values_list("event_id", "kind")) == [("e-1", "click")]


# --- the aggregation --------------------------------------------------------------------------------


def _store(link_id: int, kind: str, occurred_at: datetime.datetime, n: int = 1, touchpoint: str = "product_page"):
    WebshopEvent.objects.bulk_create(
        WebshopEvent(
            event_id=f"{link_id}-{kind}-{occurred_at.isoformat()}-{touchpoint}-{i}",
            kind=kind,
            link_id=link_id,
            generation=1,
            source_id=link_id * 10,
            target_id=link_id * 10 + 1,
            touchpoint=touchpoint,
            occurred_at=occurred_at,
        )
        for i in range(n)
    )


MAY_10 = datetime.datetime(2026, 5, 10, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def stored_events(db):
    # link 1: 200 impressions, 10 clicks, 4 add-to-carts, 1 purchase on 10 May
    _store(1, "impression", MAY_10, 200)
    _store(1, "click", MAY_10, 10)
    _store(1, "add_to_cart", MAY_10, 4)
    _store(1, "purchase", MAY_10, 1)
    # link 2: 50 impressions on 10 May (20 of them in the cart), 5 clicks on 11 May
    _store(2, "impression", MAY_10, 30)
    _store(2, "impression", MAY_10, 20, touchpoint="cart")
    _store(2, "click", MAY_10 + datetime.timedelta(days=1), 5)
    # link 3: clicks only (its impressions were never sent)
    _store(3, "click", MAY_10, 2)
    # link 4: outside the range on both sides (TIME_ZONE Europe/Amsterdam: UTC+2 in May)
    _store(4, "impression", datetime.datetime(2026, 5, 9, 21, 59, 59, tzinfo=datetime.UTC), 7)  # 9 May 23:59:59
    _store(4, "impression", datetime.datetime(2026, 5, 11, 22, 0, tzinfo=datetime.UTC), 3)  # 12 May 00:00
    # link 5: on the range's edges in local time, inside
    _store(5, "impression", datetime.datetime(2026, 5, 9, 22, 0, tzinfo=datetime.UTC), 6)  # 10 May 00:00
    _store(5, "click", datetime.datetime(2026, 5, 11, 21, 59, 59, tzinfo=datetime.UTC), 1)  # 11 May 23:59:59


def test_ctr_per_link_over_a_date_range(stored_events):
    with CaptureQueriesContext(connection) as captured:
        stats = link_event_stats(start=datetime.date(2026, 5, 10), end=datetime.date(2026, 5, 11))

    assert len(captured) == 1
    rows = [(s.link_id, s.source_id, s.target_id, s.impressions, s.clicks, s.add_to_carts, s.purchases) for s in stats]
    assert rows == [
        (1, 10, 11, 200, 10, 4, 1),
        (2, 20, 21, 50, 5, 0, 0),
        (5, 50, 51, 6, 1, 0, 0),
        (3, 30, 31, 0, 2, 0, 0),
    ]  # fmt: skip
    first, second, fifth, third = stats
    assert (first.ctr, first.add_to_cart_rate, first.purchase_rate) == (0.05, 0.02, 0.005)
    assert (second.ctr, second.add_to_cart_rate, second.purchase_rate) == (0.1, 0.0, 0.0)
    assert fifth.ctr == pytest.approx(1 / 6)
    assert (third.ctr, third.add_to_cart_rate, third.purchase_rate) == (None, None, None)


def test_ctr_for_one_day_some_links_and_one_touchpoint(stored_events):
    may_10 = datetime.date(2026, 5, 10)

    one_day = link_event_stats(start=may_10, end=may_10, link_ids=[2, 4])
    cart = link_event_stats(start=may_10, end=datetime.date(2026, 5, 11), touchpoint="cart")

    assert [(s.link_id, s.impressions, s.clicks) for s in one_day] == [(2, 50, 0)]
    assert [(s.link_id, s.impressions, s.clicks) for s in cart] == [(2, 20, 0)]
    assert link_event_stats(start=may_10, end=may_10, link_ids=[]) == []


def test_event_totals_per_kind(stored_events):
    totals = event_totals(start=datetime.date(2026, 5, 10), end=datetime.date(2026, 5, 11))

    assert totals == {"impression": 256, "click": 18, "add_to_cart": 4, "purchase": 1}
    assert event_totals(start=datetime.date(2026, 1, 1), end=datetime.date(2026, 1, 2)) == {
        "impression": 0, "click": 0, "add_to_cart": 0, "purchase": 0,
    }  # fmt: skip


def test_a_range_that_ends_before_it_starts_is_an_error(db):
    with pytest.raises(ValueError, match="ends"):
        link_event_stats(start=datetime.date(2026, 5, 11), end=datetime.date(2026, 5, 10))


@pytest.mark.django_db
def test_ingested_events_feed_the_aggregation():
    ingest([event("i-1"), event("i-2"), event("c-1", type="click"), event("o-1", token=token(8))])

    stats = link_event_stats(start=datetime.date(2026, 6, 1), end=datetime.date(2026, 6, 1))

    assert [(s.link_id, s.impressions, s.clicks, s.ctr) for s in stats] == [(7, 2, 1, 0.5), (8, 1, 0, 0.0)]


# --- POST /api/v1/events/ ---------------------------------------------------------------------------

URL = "/api/v1/events/"


def api_key(scopes: list[str], name: str = "webshop", **key_options) -> str:
    from accounts.services import api_client_create, api_key_issue

    client = api_client_create(name=name, scopes=scopes, actor=None)
    return api_key_issue(client=client, actor=None, **key_options).secret


def recent_event(eid: str, **overrides) -> dict:
    from django.utils import timezone

    return event(eid, **{"occurred_at": (timezone.now() - datetime.timedelta(minutes=3)).isoformat(), **overrides})


@pytest.fixture
def api():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def events_key(db):
    return api_key(["events"])


def post(api, body, key=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    if isinstance(body, str | bytes):
        return api.post(URL, body, content_type="application/json", **headers, **extra)
    return api.post(URL, body, format="json", **headers, **extra)


def test_a_good_batch_answers_200_with_the_counts(api, events_key):
    response = post(api, {"events": [recent_event("e-1"), recent_event("e-2", type="click")]}, events_key)

    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    from accounts.models import ApiClient

    client_id = ApiClient.objects.get(name="webshop").pk
    assert sorted(WebshopEvent.objects.values_list("event_id", "kind", "link_id", "client_id")) == [
        ("e-1", "impression", 7, client_id), ("e-2", "click", 7, client_id),
    ]  # fmt: skip


def test_the_same_batch_posted_twice_is_stored_once(api, events_key):
    batch = {"events": [recent_event("e-1"), recent_event("e-2", type="purchase")]}

    first = post(api, batch, events_key)
    second = post(api, batch, events_key)

    assert (first.status_code, first.json()) == (200, {"accepted": 2, "duplicates": 0, "rejected": []})
    assert (second.status_code, second.json()) == (200, {"accepted": 0, "duplicates": 2, "rejected": []})
    assert WebshopEvent.objects.count() == 2


def test_a_partly_bad_batch_answers_207_and_keeps_the_good_events(api, events_key):
    batch = {"events": [recent_event("e-1"), recent_event("e-2", token="forged"), recent_event("e-3", type="view")]}

    response = post(api, batch, events_key)

    assert response.status_code == 207
    assert response.json() == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": [
            {"index": 1, "event_id": "e-2", "errors": {"token": "unknown or altered tracking token"}},
            {"index": 2, "event_id": "e-3", "errors": {"type": KINDS_MESSAGE}},
        ],
    }  # fmt: skip
    assert list(WebshopEvent.objects.values_list("event_id", flat=True)) == ["e-1"]


def test_duplicates_and_rejections_together_answer_207(api, events_key):
    post(api, {"events": [recent_event("e-1")]}, events_key)

    response = post(api, {"events": [recent_event("e-1"), recent_event("e-2", occurred_at="2020-01-01T00:00:00Z")]},
                    events_key)  # fmt: skip

    assert response.status_code == 207
    assert response.json() == {
        "accepted": 0,
        "duplicates": 1,
        "rejected": [{"index": 1, "event_id": "e-2", "errors": {"occurred_at": "older than 90 days"}}],
    }


def test_a_batch_of_only_bad_events_answers_400_with_the_reasons(api, events_key):
    response = post(api, {"events": [recent_event("e-1", token="forged"), {"event_id": 5}]}, events_key)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == {"code": "invalid_events", "message": "None of the 2 events could be stored; see rejected."}
    assert (body["accepted"], body["duplicates"]) == (0, 0)
    assert [(r["index"], r["event_id"], sorted(r["errors"])) for r in body["rejected"]] == [
        (0, "e-1", ["token"]),
        (1, None, ["event_id", "occurred_at", "token", "type"]),
    ]
    assert WebshopEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ([recent_event("e-1")], "bad_request", 'The body must be a JSON object {"events": [...]}.'),
        ({"event": []}, "bad_request", 'The body must be a JSON object {"events": [...]}.'),
        ({"events": {"event_id": "e-1"}}, "invalid_batch", '"events" must be a list of events'),
        ({"events": []}, "invalid_batch", '"events" is empty: send at least one event'),
        ({"events": [{}] * 1001}, "invalid_batch", '"events" holds 1001 events; at most 1000 per batch'),
    ],
)
def test_an_unusable_body_answers_400(api, events_key, body, code, message):
    response = post(api, body, events_key)

    assert response.status_code == 400
    assert response.json() == {"error": {"code": code, "message": message}}
    assert WebshopEvent.objects.count() == 0


def test_a_body_that_is_not_json_answers_400_in_the_api_error_shape(api, events_key):
    response = post(api, '{"events": [', events_key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_a_form_body_answers_415(api, events_key):
    response = api.post(URL, {"events": "x"}, HTTP_AUTHORIZATION=f"Bearer {events_key}")

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_reading_the_events_endpoint_is_not_allowed(api, db):
    response = api.get(URL, HTTP_AUTHORIZATION=f"Bearer {api_key(['read', 'events'])}")

    assert response.status_code == 405


@pytest.mark.parametrize(
    ("scopes", "key_options", "status"),
    [
        (["events"], {}, 200),
        (["read", "events"], {}, 200),
        (["read"], {}, 403),
        (["events"], {"expires_at": "past"}, 401),
        (["events"], {"revoked": True}, 401),
    ],
)
def test_only_a_live_key_with_the_events_scope_may_post(api, db, scopes, key_options, status):
    from django.utils import timezone

    from accounts.models import ApiKey

    key = api_key(scopes)
    if key_options.get("expires_at"):
        ApiKey.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    if key_options.get("revoked"):
        ApiKey.objects.update(revoked_at=timezone.now())

    response = post(api, {"events": [recent_event("e-1")]}, key)

    assert response.status_code == status
    assert WebshopEvent.objects.count() == (1 if status == 200 else 0)
    if status == 403:
        assert response.json()["error"]["message"] == "This API key's client lacks the scope 'events'."


def test_without_a_key_the_answer_is_401(api, db):
    response = post(api, {"events": [recent_event("e-1")]})

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert WebshopEvent.objects.count() == 0


def test_a_wrong_key_is_401(api, events_key):
    response = post(api, {"events": [recent_event("e-1")]}, events_key[:-2] + "xx")

    assert response.status_code == 401
    assert WebshopEvent.objects.count() == 0


@pytest.mark.parametrize("user_fixture", ["specialist", "marketer", "administrator", "no_role_user"])
def test_back_office_sessions_cannot_post_events(api, request, user_fixture):
    api.force_login(request.getfixturevalue(user_fixture))

    response = post(api, {"events": [recent_event("e-1")]})

    assert response.status_code == 403
    assert WebshopEvent.objects.count() == 0


def test_a_staff_session_with_a_csrf_token_still_cannot_post_events(specialist):
    from rest_framework.test import APIClient

    api = APIClient(enforce_csrf_checks=True)
    api.force_login(specialist)
    from django.middleware.csrf import _get_new_csrf_string

    token_value = _get_new_csrf_string()
    api.cookies[django_settings.CSRF_COOKIE_NAME] = token_value

    response = post(api, {"events": [recent_event("e-1")]}, HTTP_X_CSRFTOKEN=token_value)

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Back-office sessions may only read the API."
    assert WebshopEvent.objects.count() == 0


@pytest.mark.parametrize("size", [1, 50])
def test_the_query_count_does_not_grow_with_the_batch(api, events_key, django_assert_num_queries, size):
    post(api, {"events": [recent_event("warm-up")]}, events_key)  # writes the key's last_used_at once

    # the key (with its client), the stored event_ids, one INSERT (50 rows fit one on SQLite
    # too), the batch's audit row
    with django_assert_num_queries(4):
        response = post(api, {"events": [recent_event(f"e-{n}") for n in range(size)]}, events_key)

    assert response.json() == {"accepted": size, "duplicates": 0, "rejected": []}


def test_the_client_rate_limit_applies(api, db, settings):
    from django.core.cache import cache

    from accounts.models import ApiClient

    cache.clear()
    key = api_key(["events"])
    ApiClient.objects.update(rate_per_minute=2)

    answers = [post(api, {"events": [recent_event(f"e-{n}")]}, key) for n in range(3)]

    assert [answer.status_code for answer in answers[:2]] == [200, 200]
    assert answers[2].status_code == 429
    assert int(answers[2]["Retry-After"]) >= 1
    assert WebshopEvent.objects.count() == 2
    cache.clear()
