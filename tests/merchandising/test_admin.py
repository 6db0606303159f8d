"""The merchandising admin: role matrix, the recompute button, progress polling, the backtest
page, suggestion filters, exclusion rules and settings, with pinned query counts."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import Category
from catalog.services import category_save
from config.celery import app
from merchandising import tasks
from merchandising.models import ExclusionRule, MiningRun, MiningSettings, Suggestion, SuggestionStatus
from tests.factories import BrandFactory, ProductFactory
from tests.merchandising.factories import NOW, MiningRunFactory, SuggestionFactory, baskets_create

pytestmark = pytest.mark.django_db

RUNS = "/admin/merchandising/miningrun/"
SUGGESTIONS = "/admin/merchandising/suggestion/"
RULES = "/admin/merchandising/exclusionrule/"
SETTINGS = "/admin/merchandising/miningsettings/"
BACKTEST = RUNS + "backtest/"
RECOMPUTE = RUNS + "recompute/"


def count_queries(client, url):
    client.get(url)  # warm caches that fill once per process (content types), not per request
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return len(queries)


@pytest.fixture
def sample():
    run = MiningRunFactory()
    running = MiningRunFactory(
        status=MiningRun.Status.RUNNING, phase="mining block 1 of 2", progress=40, heartbeat_at=timezone.now()
    )
    suggestion = SuggestionFactory(last_run=run, first_run=run)
    rule = ExclusionRule.objects.create(kind=ExclusionRule.Kind.BRAND, brand=BrandFactory(), reason="competitor")
    return {"run": run, "running": running, "suggestion": suggestion, "rule": rule}


def view_urls(sample) -> list[str]:
    return [
        RUNS,
        f"{RUNS}{sample['run'].pk}/change/",
        f"{RUNS}{sample['running'].pk}/progress/",
        BACKTEST,
        f"{BACKTEST}?cutoff=2026-05-01&score=cosine",
        SUGGESTIONS,
        f"{SUGGESTIONS}{sample['suggestion'].pk}/change/",
        RULES,
        f"{RULES}{sample['rule'].pk}/change/",
        f"{SETTINGS}1/change/",
    ]


# --- role matrix ------------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_login_page(client, sample):
    for url in [*view_urls(sample), SETTINGS, f"{RULES}add/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next="), url
    assert client.post(RECOMPUTE).status_code == 302
    assert MiningRun.objects.count() == 2


def test_users_without_a_role_get_403(client, no_role_user, sample):
    client.force_login(no_role_user)
    for url in [*view_urls(sample), SETTINGS, f"{RULES}add/"]:
        assert client.get(url).status_code == 403, url
    assert client.post(RECOMPUTE).status_code == 403
    assert MiningRun.objects.count() == 2


def test_marketing_reads_but_cannot_recompute_or_change(client, marketer, sample):
    client.force_login(marketer)
    for url in view_urls(sample):
        assert client.get(url).status_code == 200, url
    assert client.get(SETTINGS).status_code == 302
    assert "Recompute now" not in client.get(RUNS).content.decode()
    assert client.post(RECOMPUTE).status_code == 403
    assert client.get(f"{RULES}add/").status_code == 403
    response = client.post(f"{SETTINGS}1/change/", {"min_count": "1"})
    assert response.status_code == 403
    assert MiningRun.objects.count() == 2
    assert MiningSettings.objects.get().min_count == 3


@pytest.mark.parametrize("role", ["specialist", "administrator"])
def test_specialists_and_administrators_can_recompute(
    client, request, role, monkeypatch, django_capture_on_commit_callbacks
):
    user = request.getfixturevalue(role)
    client.force_login(user)
    assert "Recompute now" in client.get(RUNS).content.decode()
    queued = []
    monkeypatch.setattr(tasks.recompute_suggestions, "delay", lambda run_id: queued.append(run_id))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(RECOMPUTE)
    run = MiningRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{RUNS}{run.pk}/change/"
    assert queued == [run.pk]
    assert (run.status, run.trigger, run.started_by) == (MiningRun.Status.QUEUED, MiningRun.Trigger.MANUAL, user)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [f"Mining run #{run.pk} started: queued."]


def test_recompute_needs_post_and_a_csrf_token(specialist):
    client = Client(enforce_csrf_checks=True)
    client.force_login(specialist)
    assert client.get(RECOMPUTE).status_code == 405
    assert client.post(RECOMPUTE).status_code == 403  # no CSRF token
    assert MiningRun.objects.count() == 0


def test_without_a_broker_the_button_mines_in_process_once_committed(
    client, specialist, settings, django_capture_on_commit_callbacks
):
    previous = app.conf.task_always_eager  # Celery's own copy: read it before anything changes
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    a, b = ProductFactory(sku="A"), ProductFactory(sku="B")
    baskets_create([[a, b]] * 3)
    client.force_login(specialist)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(RECOMPUTE).status_code == 302
            assert MiningRun.objects.get().status == MiningRun.Status.QUEUED  # nothing runs before the commit
    finally:
        app.conf.task_always_eager = previous
    run = MiningRun.objects.get()
    assert (run.status, run.suggestions_new) == (MiningRun.Status.SUCCEEDED, 2)
    assert Suggestion.objects.count() == 2


# --- progress -------------------------------------------------------------------------------------


def test_progress_endpoint_returns_the_runs_state(client, marketer, sample):
    client.force_login(marketer)
    running = sample["running"]
    response = client.get(f"{RUNS}{running.pk}/progress/")
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    assert response.json() == {
        "id": running.pk,
        "status": "running",
        "status_display": "Running",
        "phase": "mining block 1 of 2",
        "progress": 40,
        "finished": False,
        "error": "",
        "suggestions_new": 0,
        "suggestions_updated": 0,
        "suggestions_unchanged": 0,
        "suggestions_stale": 0,
    }
    assert client.get(f"{RUNS}999999/progress/").status_code == 404
    assert count_queries(client, f"{RUNS}{running.pk}/progress/") == 9


def test_running_runs_show_a_polled_progress_bar_without_inline_scripts(client, specialist, sample):
    client.force_login(specialist)
    running = sample["running"]
    for url in (RUNS, f"{RUNS}{running.pk}/change/"):
        page = client.get(url).content.decode()
        assert f'data-progress-url="{RUNS}{running.pk}/progress/"' in page
        assert '<progress max="100" value="40">40%</progress>' in page
        assert 'src="/static/merchandising/run_progress.js"' in page
        scripts = re.findall(r"<script\b[^>]*>", page)
        assert scripts and all("src=" in tag for tag in scripts), scripts
    finished = client.get(f"{RUNS}{sample['run'].pk}/change/").content.decode()
    assert "data-progress-url" not in finished


# --- pinned query counts -------------------------------------------------------------------------


def test_run_list_query_count_does_not_grow_with_rows(client, specialist, sample):
    client.force_login(specialist)
    few = count_queries(client, RUNS)
    for _ in range(15):
        MiningRunFactory(started_by=specialist)
    many = count_queries(client, RUNS)
    assert few == many == 11


def test_run_detail_and_backtest_query_counts(client, specialist, sample):
    client.force_login(specialist)
    assert count_queries(client, f"{RUNS}{sample['running'].pk}/change/") == 9
    assert count_queries(client, BACKTEST) == 8
    assert count_queries(client, f"{BACKTEST}?cutoff=2026-05-01&score=cosine") == 11


def test_suggestion_list_query_count_does_not_grow_with_rows(client, specialist, sample):
    client.force_login(specialist)
    few = count_queries(client, SUGGESTIONS)
    for _ in range(25):
        SuggestionFactory(last_run=sample["run"], status=SuggestionStatus.APPROVED)
    many = count_queries(client, SUGGESTIONS)
    assert few == many == 14
    assert count_queries(client, f"{SUGGESTIONS}{sample['suggestion'].pk}/change/") == 13


def test_rule_and_settings_pages_query_counts(client, specialist, sample):
    client.force_login(specialist)
    few = count_queries(client, RULES)
    for _ in range(10):
        ExclusionRule.objects.create(
            kind=ExclusionRule.Kind.CATEGORY_PAIR,
            category=category_save(category=Category(name=f"L{_}")),
            other_category=category_save(category=Category(name=f"R{_}")),
            created_by=specialist,
        )
    many = count_queries(client, RULES)
    assert few == many == 11
    assert count_queries(client, f"{SETTINGS}1/change/") == 9


# --- the backtest page ------------------------------------------------------------------------------


def test_backtest_page_shows_the_metrics_table(client, marketer):
    a, b, c, d, e, f = (ProductFactory(sku=sku) for sku in "ABCDEF")
    baskets_create([[a, b]] * 3 + [[a, c]] * 2 + [[d, e]] * 2 + [[b]], ordered_at=NOW - datetime.timedelta(days=60))
    baskets_create([[a, b], [a, c, e], [d, c], [e, f]], ordered_at=NOW)
    MiningSettings.objects.create(pk=1, min_count=2, min_confidence=0, min_lift=0)
    client.force_login(marketer)
    page = client.get(f"{BACKTEST}?cutoff=2026-05-01&score=cosine").content.decode()
    table = re.search(r'<table class="backtest" id="backtest-result">(.*?)</table>', page, re.S).group(1)
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
    assert [row for row in rows if row] == [
        ["configured (cosine)", "0.5000", "0.3750"],
        ["bestsellers", "0.8750", "0.8750"],
        ["co_count", "0.5000", "0.3750"],
    ]
    assert "Cutoff 2026-05-01: 8 cases" in page
    assert MiningRun.objects.count() == 0
    invalid = client.get(f"{BACKTEST}?cutoff=yesterday&score=cosine")
    assert invalid.status_code == 200
    assert "Enter a valid date." in invalid.content.decode()


# --- suggestion filters -----------------------------------------------------------------------------


def test_suggestion_list_filters(client, marketer):
    tools = category_save(category=Category(name="Tools"))
    drills = category_save(category=Category(name="Drills", parent=tools))
    garden = category_save(category=Category(name="Garden"))
    acme = BrandFactory(name="Acme")
    old_run, new_run = MiningRunFactory(), MiningRunFactory()
    drill = ProductFactory(sku="DRILL", category=drills, brand=acme)
    saw = ProductFactory(sku="SAW", category=tools)
    hose = ProductFactory(sku="HOSE", category=garden)
    SuggestionFactory(source=drill, target=hose, lift=4.0, co_count=25, status="approved", last_run=new_run)
    SuggestionFactory(source=saw, target=hose, lift=1.2, co_count=4, stale=True, last_run=old_run)
    SuggestionFactory(source=hose, target=drill, lift=2.5, co_count=12, status="rejected", reject_reason="other",
                      last_run=new_run)  # fmt: skip
    client.force_login(marketer)

    def listed(query: str) -> list[str]:
        response = client.get(f"{SUGGESTIONS}?{query}")
        assert response.status_code == 200
        return sorted(f"{s.source.sku}>{s.target.sku}" for s in response.context["cl"].result_list)

    assert listed("") == ["DRILL>HOSE", "HOSE>DRILL", "SAW>HOSE"]
    assert listed("status__exact=approved") == ["DRILL>HOSE"]
    assert listed("stale__exact=1") == ["SAW>HOSE"]
    assert listed(f"source_category={tools.pk}") == ["DRILL>HOSE", "SAW>HOSE"]  # Tools and Tools > Drills
    assert listed(f"source_category={drills.pk}") == ["DRILL>HOSE"]
    assert listed(f"source_brand={acme.pk}") == ["DRILL>HOSE"]
    assert listed("min_lift=2") == ["DRILL>HOSE", "HOSE>DRILL"]
    assert listed("min_co_count=20") == ["DRILL>HOSE"]
    assert listed(f"run={old_run.pk}") == ["SAW>HOSE"]
    assert listed(f"run={new_run.pk}&min_lift=3") == ["DRILL>HOSE"]
    assert listed("q=SAW") == ["SAW>HOSE"]


def test_suggestions_are_read_only_in_the_admin(client, specialist, sample):
    client.force_login(specialist)
    suggestion = sample["suggestion"]
    response = client.post(f"{SUGGESTIONS}{suggestion.pk}/change/", {"status": "approved"})
    assert response.status_code == 403
    assert Suggestion.objects.get().status == SuggestionStatus.PENDING
    assert client.get(f"{SUGGESTIONS}add/").status_code == 403


# --- exclusion rules and settings ---------------------------------------------------------------


def test_exclusion_rule_records_its_author_and_keeps_only_its_subject(client, specialist):
    client.force_login(specialist)
    acme = BrandFactory(name="Acme")
    product = ProductFactory()
    response = client.post(
        f"{RULES}add/", {"kind": "brand", "brand": acme.pk, "product": product.pk, "reason": "Competitor brand"}
    )
    assert response.status_code == 302
    rule = ExclusionRule.objects.get()
    assert (rule.kind, rule.brand, rule.product, rule.created_by, rule.reason) == (
        "brand",
        acme,
        None,
        specialist,
        "Competitor brand",
    )


def test_exclusion_rule_form_requires_the_subject_of_its_kind(client, specialist):
    client.force_login(specialist)
    tools = category_save(category=Category(name="Tools"))
    response = client.post(f"{RULES}add/", {"kind": "category_pair", "category": tools.pk, "reason": ""})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"other_category": ["This kind of rule needs it."]}
    assert ExclusionRule.objects.count() == 0


def test_settings_admin_validates_and_saves(client, specialist):
    client.force_login(specialist)
    response = client.get(SETTINGS)
    assert response["Location"] == f"{SETTINGS}1/change/"
    values = {
        "min_count": "5",
        "min_confidence": "0.05",
        "min_lift": "1.2",
        "top_k": "10",
        "max_basket_size": "40",
        "lookback_days": "365",
        "half_life_days": "90",
        "loaded_version": "1",  # the version the page was loaded at (the edit-conflict check)
    }
    response = client.post(f"{SETTINGS}1/change/", {**values, "min_confidence": "1.5"})
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == ["min_confidence must be in [0, 1], not 1.5"]
    assert MiningSettings.objects.get().min_confidence == 0.02
    assert client.post(f"{SETTINGS}1/change/", values).status_code == 302
    stored = MiningSettings.objects.get()
    assert (stored.min_count, stored.min_confidence, stored.top_k, stored.half_life_days) == (5, 0.05, 10, 90)
    assert client.get(f"{SETTINGS}add/").status_code == 403


def test_a_running_run_whose_worker_stopped_can_be_marked_failed(client, specialist, marketer, sample):
    running, done = sample["running"], sample["run"]
    data = {"action": "mark_failed", "_selected_action": [running.pk, done.pk]}
    client.force_login(marketer)
    response = client.post(RUNS, data)
    assert response.status_code == 200  # marketing has no such action: the list again, nothing changed
    running.refresh_from_db()
    assert running.status == MiningRun.Status.RUNNING

    client.force_login(specialist)
    response = client.post(RUNS, data)
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Marked 1 run(s) as failed. 1 selected run(s) were not running and were left as they are."
    ]
    running.refresh_from_db()
    done.refresh_from_db()
    assert running.status == MiningRun.Status.FAILED
    assert re.fullmatch(
        r"Marked failed by specialist at \d{4}-\d\d-\d\d \d\d:\d\d \(its worker had stopped\)\.", running.error
    )
    assert running.finished_at is not None
    assert done.status == MiningRun.Status.SUCCEEDED
