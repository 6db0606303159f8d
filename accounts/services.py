from __future__ import annotations

from fnmatch import fnmatchcase

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from accounts.models import User
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
        wanted = [
            perm
            for perm in permissions
            if any(fnmatchcase(f"{perm.content_type.app_label}.{perm.codename}", pattern) for pattern in patterns)
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
