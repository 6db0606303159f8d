from __future__ import annotations

from fnmatch import fnmatchcase

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from accounts.models import CustomerAccount, User
from accounts.roles import ROLE_PERMISSIONS


@transaction.atomic
def roles_sync(*, using: str = "default") -> dict[str, int]:
    """Create the role groups and set their permissions exactly as ROLE_PERMISSIONS says.

    Idempotent; returns the number of permissions per role.
    """
    permissions = list(Permission.objects.using(using).select_related("content_type"))
    counts: dict[str, int] = {}
    for role, patterns in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=role)
        granted = [pattern for pattern in patterns if not pattern.startswith("!")]
        withheld = [pattern[1:] for pattern in patterns if pattern.startswith("!")]
        wanted = [
            perm
            for perm in permissions
            if any(fnmatchcase(f"{perm.content_type.app_label}.{perm.codename}", pattern) for pattern in granted)
            and not any(fnmatchcase(f"{perm.content_type.app_label}.{perm.codename}", pattern) for pattern in withheld)
        ]
        group.permissions.set(wanted)
        counts[role] = len(wanted)
    return counts


@transaction.atomic
def user_create(
    *, username: str, password: str, role: str | None = None, email: str = "", first_name: str = "", last_name: str = ""
) -> User:
    """Create a back-office user with one role. The admin site admits by role
    (config/admin_site.py); ``is_staff`` is set too so the user looks like staff everywhere."""
    user = User(username=username, email=email, first_name=first_name, last_name=last_name, is_staff=True)
    user.set_password(password)
    user.full_clean()
    user.save()
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@transaction.atomic
def customer_accounts_upsert(*, accounts: list[dict]) -> dict[str, int]:
    """Create or update customer accounts by ``external_id``.

    Each dict: external_id, name, segment, industry, brand_mode, preferred_brands and
    excluded_brands (brand names; unknown names raise ValueError). Brand preferences are set
    to exactly the given ones. Returns {"created": n, "updated": n, "unchanged": n}.
    """
    from catalog.models import Brand

    brands = {name.lower(): pk for pk, name in Brand.objects.values_list("id", "name")}

    def brand_ids(names) -> set[int]:
        missing = [name for name in names if name.lower() not in brands]
        if missing:
            raise ValueError(f"unknown brands: {', '.join(missing)}")
        return {brands[name.lower()] for name in names}

    fields = ("name", "segment", "industry", "brand_mode")
    existing = CustomerAccount.objects.in_bulk([a["external_id"] for a in accounts], field_name="external_id")
    new = [
        CustomerAccount(external_id=a["external_id"], **{f: a[f] for f in fields})
        for a in accounts
        if a["external_id"] not in existing
    ]
    for account in new:
        account.full_clean(validate_unique=False)
    CustomerAccount.objects.bulk_create(new)
    changed = []
    for spec in accounts:
        account = existing.get(spec["external_id"])
        if account is not None and any(getattr(account, f) != spec[f] for f in fields):
            for f in fields:
                setattr(account, f, spec[f])
            changed.append(account)
    CustomerAccount.objects.bulk_update(changed, fields)
    by_external = CustomerAccount.objects.in_bulk([a["external_id"] for a in accounts], field_name="external_id")
    preferred = CustomerAccount.preferred_brands.through
    excluded = CustomerAccount.excluded_brands.through
    relation_changed: set[str] = set()
    for through, key in ((preferred, "preferred_brands"), (excluded, "excluded_brands")):
        current: dict[int, set[int]] = {}
        for account_id, brand_id in through.objects.filter(customeraccount__in=by_external.values()).values_list(
            "customeraccount_id", "brand_id"
        ):
            current.setdefault(account_id, set()).add(brand_id)
        for spec in accounts:
            account = by_external[spec["external_id"]]
            wanted = brand_ids(spec[key])
            if current.get(account.pk, set()) != wanted:
                relation_changed.add(spec["external_id"])
                through.objects.filter(customeraccount=account).delete()
                through.objects.bulk_create([through(customeraccount=account, brand_id=b) for b in sorted(wanted)])
    updated = {a.external_id for a in changed} | (relation_changed - {a.external_id for a in new})
    return {"created": len(new), "updated": len(updated), "unchanged": len(accounts) - len(new) - len(updated)}
