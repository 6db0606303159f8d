"""GET /api/v1/products/{sku}/recommendations/: the body, nothing unpublished leaking, the
account rules, ETag/304 and Cache-Control, parameter errors."""

from __future__ import annotations

import datetime
import io

import pytest
from django.utils import timezone

from accounts.models import CustomerAccount
from catalog.models import Product, ProductStatus
from catalog.services import products_set_excluded, products_set_status
from merchandising.api.tokens import read_token
from merchandising.models import LinkType, PublishedLink, PublishState, SuggestionStatus
from merchandising.selectors.api import BadParameter, ProductNotFound, recommendations_payload
from merchandising.services import (
    link_retire,
    links_publish,
    publish_settings_update,
    suggestion_approve,
    suggestion_reject,
)
from tests.api.conftest import skus
from tests.factories import ProductFactory
from tests.merchandising.factories import CustomerAccountFactory, MiningRunFactory, SuggestionFactory

pytestmark = pytest.mark.django_db

RECS = "/api/v1/products/{}/recommendations/"


def recs(api, sku="DRILL", **params):
    return api.get(RECS.format(sku), params)


# --- the body -----------------------------------------------------------------------------------------------


def test_body_groups_by_type_in_position_order_with_provenance_and_tokens(api, catalog):
    response = recs(api)
    assert response.status_code == 200
    body = response.json()
    generation = PublishState.load().generation
    assert list(body) == ["sku", "generation", "touchpoint", "links"]
    assert (body["sku"], body["generation"], body["touchpoint"]) == ("DRILL", generation, "product_page")
    assert list(body["links"]) == [LinkType.CROSS_SELL, LinkType.ACCESSORY, LinkType.SPARE_PART]
    assert skus(body) == ["BITS", "CASE", "GLOVES"]
    first = body["links"]["cross_sell"][0]
    link = catalog.links[("DRILL", "BITS", LinkType.CROSS_SELL)]
    assert first == {
        "sku": "BITS",
        "name": "Bits",
        "brand": "Makita",
        "price": "9.95",
        "currency": "EUR",
        "pack_quantity": 1,
        "unit": "pcs",
        "type": "cross_sell",
        "position": 1,
        "provenance": {
            "origin": "manual",
            "co_count": None,
            "confidence": None,
            "lift": None,
            "approved_by_role": "Product specialist",
            "approved_at": link.created_at.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z"),
            "run_id": None,
        },
        "token": first["token"],
    }
    tracked = read_token(first["token"])
    assert (tracked.link_id, tracked.generation, tracked.source_id, tracked.target_id, tracked.touchpoint) == (
        link.pk,
        generation,
        catalog.drill.pk,
        catalog.bits.pk,
        "product_page",
    )
    assert body["links"]["spare_part"][0]["brand"] is None


def test_reorder_shows_in_the_answer_and_touchpoint_goes_into_the_token(api, catalog):
    from merchandising.services import links_reorder

    ids = [catalog.links[("DRILL", sku, LinkType.CROSS_SELL)].pk for sku in ("GLOVES", "BITS", "CASE")]
    links_reorder(source=catalog.drill, link_type=LinkType.CROSS_SELL, link_ids=ids, actor=catalog.curator)
    body = recs(api, touchpoint="category_page").json()
    assert skus(body) == ["GLOVES", "BITS", "CASE"]
    assert [item["position"] for item in body["links"]["cross_sell"]] == [1, 2, 3]
    assert {read_token(item["token"]).touchpoint for item in body["links"]["cross_sell"]} == {"category_page"}


def test_mined_link_provenance(api, catalog):
    run = MiningRunFactory()
    suggestion = SuggestionFactory(
        source=catalog.drill, target=ProductFactory(sku="MINED"), co_count=7, confidence=0.25, lift=3.5, last_run=run
    )
    suggestion_approve(suggestion_id=suggestion.pk, actor=catalog.curator)
    item = recs(api).json()["links"]["cross_sell"][-1]
    assert item["sku"] == "MINED"
    provenance = item["provenance"]
    assert {k: provenance[k] for k in ("origin", "co_count", "confidence", "lift", "run_id", "approved_by_role")} == {
        "origin": "mined",
        "co_count": 7,
        "confidence": 0.25,
        "lift": 3.5,
        "run_id": run.pk,
        "approved_by_role": "Product specialist",
    }


def test_limit_is_per_type(api, catalog):
    body = recs(api, limit=2).json()
    assert skus(body) == ["BITS", "CASE"]
    assert [item["sku"] for item in body["links"]["accessory"]] == ["BATTERY"]


def test_product_without_links_answers_empty_links(api, catalog):
    assert recs(api, "GLOVES").json()["links"] == {}


def test_payload_function_is_the_api_body(api, catalog):
    body = recs(api, touchpoint="cart", limit=5).json()
    payload = recommendations_payload(sku="DRILL", touchpoint="cart", limit=5)
    # Tokens are deterministic (signed, no timestamp), so the bodies are equal as a whole.
    assert payload == body


def test_payload_function_errors():
    with pytest.raises(ProductNotFound):
        recommendations_payload(sku="NOPE")
    with pytest.raises(BadParameter):
        recommendations_payload(sku="NOPE", touchpoint="email")
    with pytest.raises(BadParameter):
        recommendations_payload(sku="NOPE", limit=0)


# --- errors -------------------------------------------------------------------------------------------------


def test_unknown_sku_is_404(api, catalog):
    response = recs(api, "NOPE")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "unknown_sku", "message": "No product has the SKU 'NOPE'."}}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"touchpoint": "email"}, "touchpoint"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1000"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"account": "x" * 65}, "account"),
    ],
)
def test_bad_parameters_are_400(api, catalog, params, field):
    response = recs(api, **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_parameter"
    assert list(error["fields"]) == [field]
    assert field in error["message"]


def test_unknown_parameter_is_400(api, catalog):
    response = recs(api, accout="C1")
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "unknown_parameter", "message": "Unknown parameter(s): accout."}


def test_odd_skus_never_500(api, catalog):
    for sku in ("%20", "a" * 300, "ü", "'; drop table x"):
        assert recs(api, sku).status_code == 404


# --- nothing unpublished leaks ------------------------------------------------------------------------------


def test_pending_and_rejected_suggestions_do_not_show(api, catalog):
    SuggestionFactory(source=catalog.drill, target=ProductFactory(sku="PENDING"), status=SuggestionStatus.PENDING)
    rejected = SuggestionFactory(source=catalog.drill, target=ProductFactory(sku="REJECTED"))
    suggestion_reject(suggestion_id=rejected.pk, actor=catalog.curator, reason="unrelated")
    body = recs(api).json()
    shown = {item["sku"] for items in body["links"].values() for item in items}
    assert shown == {"BITS", "CASE", "GLOVES", "BATTERY", "CHUCK"}


def test_retired_link_leaves_the_answer(api, catalog):
    link_retire(link_id=catalog.links[("DRILL", "CASE", LinkType.CROSS_SELL)].pk, actor=catalog.curator)
    body = recs(api).json()
    assert skus(body) == ["BITS", "GLOVES"]
    assert [item["position"] for item in body["links"]["cross_sell"]] == [1, 2]


def test_links_out_of_their_window_do_not_show(api, catalog):
    today = timezone.localdate()
    catalog.add(catalog.drill, ProductFactory(sku="FUTURE"), valid_from=today + datetime.timedelta(days=1))
    catalog.add(catalog.drill, ProductFactory(sku="PAST"), valid_until=today - datetime.timedelta(days=1))
    catalog.add(catalog.drill, ProductFactory(sku="TODAY"), valid_from=today, valid_until=today)
    assert skus(recs(api).json()) == ["BITS", "CASE", "GLOVES", "TODAY"]
    tomorrow = recommendations_payload(sku="DRILL", on=today + datetime.timedelta(days=1))
    assert skus(tomorrow) == ["BITS", "CASE", "GLOVES", "FUTURE"]


@pytest.mark.parametrize("status", [ProductStatus.DISCONTINUED, ProductStatus.DRAFT])
def test_inactive_target_does_not_show(api, catalog, status):
    products_set_status(products=Product.objects.filter(sku="CASE"), status=status)
    assert skus(recs(api).json()) == ["BITS", "GLOVES"]


def test_target_excluded_from_recommendations_does_not_show(api, catalog):
    products_set_excluded(products=Product.objects.filter(sku="CASE"), excluded=True)
    assert skus(recs(api).json()) == ["BITS", "GLOVES"]


def test_discontinued_source_shows_nothing(api, catalog):
    products_set_status(products=Product.objects.filter(sku="DRILL"), status=ProductStatus.DISCONTINUED)
    response = recs(api)
    assert response.status_code == 200
    assert response.json()["links"] == {}


def test_batch_mode_changes_wait_for_the_publish(api, catalog, administrator):
    publish_settings_update(batch_mode=True, actor=administrator)
    before = recs(api).json()
    catalog.add(catalog.drill, ProductFactory(sku="WAITING"))
    link_retire(link_id=catalog.links[("DRILL", "BITS", LinkType.CROSS_SELL)].pk, actor=catalog.curator)
    waiting = recs(api).json()
    assert waiting == before
    assert skus(waiting) == ["BITS", "CASE", "GLOVES"]
    links_publish(actor=administrator, batch=True)
    after = recs(api).json()
    assert skus(after) == ["CASE", "GLOVES", "WAITING"]
    assert after["generation"] == before["generation"] + 1


# --- account rules ------------------------------------------------------------------------------------------


def account(catalog, external_id, mode, preferred=(), excluded=()) -> CustomerAccount:
    customer = CustomerAccountFactory(external_id=external_id, brand_mode=mode)
    customer.preferred_brands.set(preferred)
    customer.excluded_brands.set(excluded)
    return customer


def test_excluded_brand_is_never_shown(api, catalog):
    account(catalog, "C-EX", "prefer", excluded=[catalog.makita])
    assert skus(recs(api, account="C-EX").json()) == ["CASE", "GLOVES"]


def test_prefer_puts_preferred_brands_first_and_keeps_the_rest_in_order(api, catalog):
    account(catalog, "C-PREF", "prefer", preferred=[catalog.hilti])
    assert skus(recs(api, account="C-PREF").json()) == ["GLOVES", "BITS", "CASE"]
    account(catalog, "C-PREF2", "prefer", preferred=[catalog.hilti, catalog.bosch])
    assert skus(recs(api, account="C-PREF2").json()) == ["CASE", "GLOVES", "BITS"]


def test_only_shows_preferred_brands_only(api, catalog):
    account(catalog, "C-ONLY", "only", preferred=[catalog.bosch])
    body = recs(api, account="C-ONLY").json()
    assert skus(body) == ["CASE"]
    assert [item["sku"] for item in body["links"]["accessory"]] == ["BATTERY"]
    assert "spare_part" not in body["links"]  # the chuck has no brand: not a preferred one


def test_only_with_exclusions_and_preferences(api, catalog):
    account(catalog, "C-BOTH", "only", preferred=[catalog.bosch, catalog.makita], excluded=[catalog.makita])
    assert skus(recs(api, account="C-BOTH").json()) == ["CASE"]


def test_unknown_account_and_account_without_preferences_get_the_generic_answer(api, catalog):
    generic = recs(api)
    account(catalog, "C-PLAIN", "only")
    for who in ("C-UNKNOWN", "C-PLAIN"):
        response = recs(api, account=who)
        assert response.status_code == 200
        assert response.json() == generic.json()
        assert response["ETag"] == generic["ETag"]


def test_limit_applies_after_the_account_rules(api, catalog):
    account(catalog, "C-PREF", "prefer", preferred=[catalog.hilti])
    assert skus(recs(api, account="C-PREF", limit=1).json()) == ["GLOVES"]


# --- caching ------------------------------------------------------------------------------------------------


def test_etag_304_and_cache_headers(api, catalog):
    response = recs(api)
    etag = response["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert response["Cache-Control"] == "max-age=300"
    assert "Authorization" in response["Vary"]
    again = api.get(RECS.format("DRILL"), HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert (again["ETag"], again["Cache-Control"]) == (etag, "max-age=300")
    assert "Authorization" in again["Vary"]
    assert api.get(RECS.format("DRILL"), HTTP_IF_NONE_MATCH=f'"other", W/{etag}').status_code == 304
    assert api.get(RECS.format("DRILL"), HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_304_does_not_build_the_body(api, catalog, django_assert_num_queries, monkeypatch):
    from merchandising.api import views

    etag = recs(api)["ETag"]

    def boom(_request):
        raise AssertionError("the body was built")

    monkeypatch.setattr(views, "recommendations_build", boom)
    assert api.get(RECS.format("DRILL"), HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_rendered_body_is_cached_under_its_etag(api, catalog, monkeypatch):
    from merchandising.api import views

    first = recs(api)
    monkeypatch.setattr(views, "recommendations_build", lambda _request: {"built": "again"})
    again = recs(api)
    assert (again.status_code, again.content, again["ETag"]) == (200, first.content, first["ETag"])
    assert again["Content-Type"] == "application/json"
    # Another answer (here: another limit) is another ETag, so it is built.
    assert recs(api, limit=1).json() == {"built": "again"}


def test_new_generation_changes_the_etag(api, catalog):
    etag = recs(api)["ETag"]
    catalog.add(catalog.drill, ProductFactory(sku="NEW"))
    response = api.get(RECS.format("DRILL"), HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response["ETag"] != etag
    assert "NEW" in skus(response.json())


def test_a_publish_elsewhere_changes_the_etag_too(api, catalog):
    """The generation is global: any publish changes every ETag (simple and safe)."""
    etag = recs(api)["ETag"]
    catalog.add(catalog.gloves, ProductFactory(sku="ELSEWHERE"))
    assert recs(api)["ETag"] != etag


def test_catalog_change_changes_the_etag(api, catalog):
    etag = recs(api)["ETag"]
    products_set_status(products=Product.objects.filter(sku="CASE"), status=ProductStatus.DISCONTINUED)
    response = api.get(RECS.format("DRILL"), HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert skus(response.json()) == ["BITS", "GLOVES"]


def test_account_preferences_parameters_and_day_change_the_etag(api, catalog, monkeypatch):
    customer = account(catalog, "C-PREF", "prefer", preferred=[catalog.hilti])
    tags = {
        recs(api)["ETag"],
        recs(api, account="C-PREF")["ETag"],
        recs(api, touchpoint="cart")["ETag"],
        recs(api, limit=2)["ETag"],
    }
    assert len(tags) == 4
    before = recs(api, account="C-PREF")["ETag"]
    customer.preferred_brands.add(catalog.bosch)
    assert recs(api, account="C-PREF")["ETag"] != before
    customer.brand_mode = "only"
    customer.save()
    changed = recs(api, account="C-PREF")["ETag"]
    assert changed not in tags | {before}
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    monkeypatch.setattr("merchandising.selectors.api.timezone.localdate", lambda: tomorrow)
    assert recs(api, account="C-PREF")["ETag"] != changed


def test_max_age_comes_from_the_recompute_interval(api, catalog, settings):
    from django.core.management import call_command
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from merchandising.selectors.api import cache_max_age_reset

    call_command("setup_mining_schedule", stdout=io.StringIO())  # weekly: bounded to the setting
    assert recs(api)["Cache-Control"] == "max-age=300"
    every_two_minutes = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.update(interval=every_two_minutes, crontab=None)
    cache_max_age_reset()
    assert recs(api)["Cache-Control"] == "max-age=120"
    PeriodicTask.objects.update(enabled=False)
    settings.API_CACHE_MAX_AGE = 60
    cache_max_age_reset()
    assert recs(api)["Cache-Control"] == "max-age=60"


def test_published_link_rows_are_the_source(api, catalog):
    """A PublishedLink tombstone is not shown even if the working link still existed."""
    PublishedLink.objects.filter(target__sku="BITS").update(removed_generation=99)
    assert skus(recs(api).json()) == ["CASE", "GLOVES"]
