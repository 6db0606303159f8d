"""Who may open which page: anonymous, a user without a role, and each role."""

import pytest
from django.contrib.auth.models import Group

from accounts.roles import ADMINISTRATOR, MARKETING, PRODUCT_SPECIALIST, ROLES
from accounts.services import roles_sync
from tests.factories import ProductFactory

ANON, NOROLE, SPEC, MKT, ADM = "anonymous", "no role", PRODUCT_SPECIALIST, MARKETING, ADMINISTRATOR
LOGIN = 302

# page -> expected status for (anonymous, no role, specialist, marketing, administrator)
MATRIX = {
    "/": (LOGIN, 403, 200, 200, 200),
    "/admin/": (LOGIN, 403, 200, 200, 200),
    "/admin/catalog/product/": (LOGIN, 403, 200, 200, 200),
    "/admin/catalog/product/add/": (LOGIN, 403, 200, 403, 200),
    "/admin/catalog/product/{product}/change/": (LOGIN, 403, 200, 200, 200),
    "/admin/catalog/product/{product}/delete/": (LOGIN, 403, 200, 403, 200),
    "/admin/catalog/product/import/": (LOGIN, 403, 200, 403, 200),
    "/admin/catalog/product/export/": (LOGIN, 403, 200, 200, 200),
    "/admin/catalog/productchange/": (LOGIN, 403, 200, 200, 200),
    "/admin/catalog/productimport/": (LOGIN, 403, 200, 200, 200),
    "/admin/catalog/brand/": (LOGIN, 403, 200, 200, 200),
    "/admin/catalog/brand/add/": (LOGIN, 403, 200, 403, 200),
    "/admin/catalog/category/add/": (LOGIN, 403, 200, 403, 200),
    "/admin/catalog/attributedefinition/add/": (LOGIN, 403, 200, 403, 200),
    "/admin/accounts/user/": (LOGIN, 403, 403, 403, 200),
    "/admin/accounts/user/add/": (LOGIN, 403, 403, 403, 200),
    "/admin/auth/group/": (LOGIN, 403, 403, 403, 200),
    "/admin/django_celery_beat/periodictask/": (LOGIN, 403, 403, 403, 200),
    "/admin/axes/accessattempt/": (LOGIN, 403, 403, 403, 200),
}
WHO = (ANON, NOROLE, SPEC, MKT, ADM)
CASES = [(url, who, codes[i]) for url, codes in MATRIX.items() for i, who in enumerate(WHO)]


@pytest.fixture
def users(specialist, marketer, administrator, no_role_user):
    return {NOROLE: no_role_user, SPEC: specialist, MKT: marketer, ADM: administrator}


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "who", "expected"), CASES, ids=[f"{u} {w}" for u, w, _ in CASES])
def test_page_matrix(client, users, url, who, expected):
    product = ProductFactory()
    if who != ANON:
        client.force_login(users[who])
    response = client.get(url.format(product=product.pk))
    assert response.status_code == expected
    if expected == LOGIN:
        assert response["Location"].startswith("/admin/login/?next=")
    if expected == 403 and who != ANON:
        assert b"Access denied" in response.content  # our page, not a bare error


@pytest.mark.django_db
def test_health_check_is_public_and_says_nothing_else(client):
    response = client.get("/healthz/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_roles_exist_after_migrate_with_expected_permissions():
    groups = {group.name: group for group in Group.objects.prefetch_related("permissions__content_type")}
    assert set(ROLES) <= set(groups)

    def perms(role):
        return {f"{p.content_type.app_label}.{p.codename}" for p in groups[role].permissions.all()}

    assert "catalog.change_product" in perms(SPEC)
    assert "catalog.delete_product" in perms(SPEC)
    assert "accounts.change_user" not in perms(SPEC)
    assert {p for p in perms(MKT) if p.startswith("catalog.")} == {
        "catalog.view_attributedefinition",
        "catalog.view_brand",
        "catalog.view_category",
        "catalog.view_product",
        "catalog.view_productchange",
        "catalog.view_productimport",
    }
    assert "accounts.add_user" in perms(ADM)
    assert "auth.change_group" in perms(ADM)


@pytest.mark.django_db
def test_roles_sync_is_idempotent_and_repairs_drift():
    first = roles_sync()
    group = Group.objects.get(name=MARKETING)
    group.permissions.clear()
    second = roles_sync()
    assert first == second
    assert group.permissions.count() == first[MARKETING]
    assert Group.objects.filter(name__in=ROLES).count() == 3


@pytest.mark.django_db
def test_inactive_user_with_role_is_refused(client, specialist):
    specialist.is_active = False
    specialist.save()
    client.force_login(specialist)
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_user_without_role_can_still_log_out(client, no_role_user):
    client.force_login(no_role_user)
    response = client.post("/admin/logout/")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_health_check_is_exempt_from_the_https_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz/").status_code == 200
    assert client.get("/").status_code == 301


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy_without_inline_scripts(client, specialist):
    client.force_login(specialist)
    policy = client.get("/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


def test_our_templates_have_no_inline_scripts():
    import re
    from pathlib import Path

    templates = Path(__file__).resolve().parents[2] / "templates"
    offenders = []
    for path in templates.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or re.search(r"\son[a-z]+\s*=", text):
            offenders.append(path.name)
    assert offenders == []
