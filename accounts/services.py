from __future__ import annotations

import datetime
import hashlib
import hmac
import logging
import math
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_otp import verify_token as otp_verify_token
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiClient, ApiKey, CustomerAccount, User
from accounts.roles import ROLE_PERMISSIONS
from audit.conflicts import version_bump, version_claim
from audit.models import AuditEntry
from audit.services import (
    audit_record,
    audit_record_many,
    audit_saved,
    created_changes,
    instance_values,
    values_diff,
)

logger = logging.getLogger(__name__)


@transaction.atomic
def roles_sync(*, using: str = "default", actor="command:setup_roles") -> dict[str, int]:
    """Create the role groups and set their permissions exactly as ROLE_PERMISSIONS says.

    Idempotent; returns the number of permissions per role. A role whose permissions change
    gets a history row with the permissions added and removed.
    """
    permissions = list(Permission.objects.using(using).select_related("content_type"))
    counts: dict[str, int] = {}
    history = []

    def code(perm: Permission) -> str:
        return f"{perm.content_type.app_label}.{perm.codename}"

    for role, patterns in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=role)
        before = {code(perm) for perm in group.permissions.select_related("content_type")}
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
        after = {code(perm) for perm in wanted}
        if before != after:
            history.append((group.pk, role, {"permissions": [sorted(before - after), sorted(after - before)]}))
    audit_record_many(model=Group, rows=history, action=AuditEntry.Action.UPDATE, actor=actor, using=using)
    return counts


#: Never in the history: the password hash (a change shows as "changed"), and the sign-in stamp.
USER_UNAUDITED = ("password", "last_login")


def _user_values(user: User) -> dict:
    values = {k: v for k, v in instance_values(user).items() if k not in USER_UNAUDITED}
    values["groups"] = sorted(user.groups.values_list("name", flat=True)) if user.pk else []
    values["user_permissions"] = (
        sorted(f"{p.content_type.app_label}.{p.codename}" for p in user.user_permissions.select_related("content_type"))
        if user.pk
        else []
    )
    return values


@transaction.atomic
def user_create(
    *,
    username: str,
    password: str,
    role: str | None = None,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    actor=None,
    via: str | None = None,
) -> User:
    """Create a back-office user with one role. The admin site admits by role
    (config/admin_site.py); ``is_staff`` is set too so the user looks like staff everywhere."""
    user = User(username=username, email=email, first_name=first_name, last_name=last_name, is_staff=True)
    user.set_password(password)
    user.full_clean()
    user.save()
    if role:
        user.groups.add(Group.objects.get(name=role))
    audit_record(
        obj=user, action=AuditEntry.Action.CREATE, actor=actor, via=via, changes=created_changes(_user_values(user))
    )
    return user


@transaction.atomic
def user_save(*, user: User, actor, groups=None, permissions=None, via: str | None = None) -> User:
    """Create or change a user as the admin's forms do (``groups`` and ``permissions``: the
    exact new sets, or None to leave them), recording what changed; a new password shows as
    "changed", never its hash."""
    creating = user.pk is None
    old = None if creating else User.objects.select_for_update().get(pk=user.pk)
    before = {} if old is None else _user_values(old)
    user.full_clean(exclude=["password"])
    user.save()
    if groups is not None:
        user.groups.set(groups)
    if permissions is not None:
        user.user_permissions.set(permissions)
    after = _user_values(user)
    changes = created_changes(after) if creating else values_diff(before, after)
    if not creating and old.password != user.password:
        changes["password"] = ["(set)", "(changed)"]
    if changes:
        audit_record(
            obj=user,
            action=AuditEntry.Action.CREATE if creating else AuditEntry.Action.UPDATE,
            actor=actor,
            via=via,
            changes=changes,
        )
    return user


@transaction.atomic
def user_password_set(*, user: User, password: str | None, actor, via: str | None = None) -> User:
    """Set a user's password (None: password sign-in disabled), recording that it changed."""
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    change = ["(set)", "(changed)" if password is not None else "(disabled)"]
    audit_record(obj=user, action=AuditEntry.Action.UPDATE, actor=actor, via=via, changes={"password": change})
    return user


@transaction.atomic
def user_delete(*, user: User, actor, via: str | None = None) -> None:
    """Delete a user; the history keeps their name (``actor_label``) on what they did."""
    values = _user_values(user)
    audit_record(
        obj=user,
        action=AuditEntry.Action.DELETE,
        actor=actor,
        via=via,
        changes={name: [value, None] for name, value in values.items()},
    )
    user.delete()


@transaction.atomic
def customer_accounts_upsert(*, accounts: list[dict], actor=None, via: str | None = None) -> dict[str, int]:
    """Create or update customer accounts by ``external_id``.

    Each dict: external_id, name, segment, industry, brand_mode, preferred_brands and
    excluded_brands (brand names; unknown names raise ValueError). Brand preferences are set
    to exactly the given ones. Returns {"created": n, "updated": n, "unchanged": n}. One
    history row per account created or changed.
    """
    from catalog.models import Brand

    brands = {name.lower(): pk for pk, name in Brand.objects.values_list("id", "name")}

    def brand_ids(names) -> set[int]:
        missing = [name for name in names if name.lower() not in brands]
        if missing:
            raise ValueError(f"unknown brands: {', '.join(missing)}")
        return {brands[name.lower()] for name in names}

    fields = ("name", "segment", "industry", "brand_mode")
    external_ids = [a["external_id"] for a in accounts]
    existing = _accounts_with_brands().in_bulk(external_ids, field_name="external_id")
    before = {key: _account_values(account) for key, account in existing.items()}
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
    # bulk_update cannot raise a counter; one update for the changed rows (and, below, for
    # those whose brands changed) keeps open edit forms from overwriting this.
    CustomerAccount.objects.filter(pk__in=[a.pk for a in changed]).update(**version_bump())
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
    CustomerAccount.objects.filter(
        external_id__in=relation_changed - {a.external_id for a in new} - {a.external_id for a in changed}
    ).update(**version_bump())
    updated = {a.external_id for a in changed} | (relation_changed - {a.external_id for a in new})
    written = [a.external_id for a in new]
    after = _accounts_with_brands().in_bulk([*written, *updated], field_name="external_id")
    for action, keys in ((AuditEntry.Action.CREATE, written), (AuditEntry.Action.UPDATE, updated)):
        rows = []
        for key in sorted(keys):
            account = after[key]
            rows.append((account.pk, str(account), values_diff(before.get(key, {}), _account_values(account))))
        audit_record_many(model=CustomerAccount, rows=rows, action=action, actor=actor, via=via)
    return {"created": len(new), "updated": len(updated), "unchanged": len(accounts) - len(new) - len(updated)}


def _accounts_with_brands():
    """Accounts with their brand preferences loaded in two queries, whatever their number."""
    return CustomerAccount.objects.prefetch_related("preferred_brands", "excluded_brands")


def _account_values(account: CustomerAccount) -> dict:
    """An account's audited values: its fields and its brand preferences (brand names; from
    the prefetched rows when the account was loaded with ``_accounts_with_brands``)."""
    values = instance_values(account)
    for key in ("preferred_brands", "excluded_brands"):
        values[key] = sorted(brand.name for brand in getattr(account, key).all())
    return values


@transaction.atomic
def customer_account_save(
    *,
    account: CustomerAccount,
    actor,
    preferred_brands: Iterable | None = None,
    excluded_brands: Iterable | None = None,
    expected_version: int | None = None,
    via: str | None = None,
) -> CustomerAccount:
    """Create or change one customer account (the admin's form): fields and, when given, the
    exact brand preferences; a history row with what changed.

    ``expected_version``: the version the edit form loaded; if the account was saved since,
    EditConflict (audit.conflicts) and nothing is written."""
    preferred = set(preferred_brands) if preferred_brands is not None else None
    excluded = set(excluded_brands) if excluded_brands is not None else None
    if preferred is not None and excluded is not None and preferred & excluded:
        names = ", ".join(sorted(brand.name for brand in preferred & excluded))
        raise ValidationError(f"A brand cannot be both preferred and excluded: {names}.")
    creating = account.pk is None
    before = {} if creating else _account_values(CustomerAccount.objects.select_for_update().get(pk=account.pk))
    account.full_clean(exclude=["preferred_brands", "excluded_brands"])
    if not creating:
        wanted = instance_values(account)
        for key, brands in (("preferred_brands", preferred), ("excluded_brands", excluded)):
            wanted[key] = sorted(brand.name for brand in brands) if brands is not None else before[key]
        if wanted == before:
            return account  # an unchanged form saved: nothing written, no version raised
        version_claim(obj=account, expected_version=expected_version)
    account.save()
    if preferred is not None:
        account.preferred_brands.set(preferred)
    if excluded is not None:
        account.excluded_brands.set(excluded)
    changes = values_diff(before, _account_values(account))
    if changes:
        action = AuditEntry.Action.CREATE if creating else AuditEntry.Action.UPDATE
        audit_record(obj=account, action=action, actor=actor, via=via, changes=changes)
    return account


@transaction.atomic
def customer_accounts_delete(*, accounts, actor, via: str | None = None) -> int:
    """Delete customer accounts (their orders are refused by the database: PROTECT), each with
    a history row holding its last values."""
    doomed = list(accounts.select_for_update())
    audit_record_many(
        model=CustomerAccount,
        rows=[(a.pk, str(a), values_diff(_account_values(a), {})) for a in doomed],
        action=AuditEntry.Action.DELETE,
        actor=actor,
        via=via,
    )
    CustomerAccount.objects.filter(pk__in=[a.pk for a in doomed]).delete()
    return len(doomed)


# --- webshop API clients and their keys ---------------------------------------------------------

API_KEY_PREFIX = "mk_"
#: The public part of a key, stored in clear for the lookup and shown in the admin. Letters and
#: digits only, so that the underscores of the key format stay unambiguous separators.
_PREFIX_ALPHABET = string.ascii_letters + string.digits
_PREFIX_LENGTH = 8
#: last_used_at is written at most this often per key, not on every request.
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)


class ApiKeyError(Exception):
    """A key that does not authenticate; ``code`` says why (the API answers 401 with it)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IssuedKey:
    """A freshly issued key: ``secret`` is the whole key, shown once and never stored."""

    key: ApiKey
    secret: str


def api_key_digest(raw_key: str) -> str:
    """SHA-256 (hex) of the whole key.

    A fast hash is right here, unlike for passwords: a key holds 256 random bits, so there is
    nothing to guess that a slow hash (PBKDF2, bcrypt) would protect; it would only add tens of
    milliseconds to every API request. The digest alone cannot be turned back into a key.
    """
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _scopes_clean(scopes) -> list[str]:
    scopes = list(dict.fromkeys(scopes or []))
    unknown = [scope for scope in scopes if scope not in ApiClient.Scope.values]
    if unknown:
        raise ValidationError(
            {"scopes": f"Unknown scope(s): {', '.join(map(str, unknown))}; use {' and '.join(ApiClient.Scope.values)}."}
        )
    if not scopes:
        raise ValidationError({"scopes": "Give the client at least one scope."})
    return scopes


@transaction.atomic
def api_client_create(
    *, name: str, scopes: list[str], actor: User | str | None, rate_per_minute: int | None = None
) -> ApiClient:
    """Create an API client (no key yet: see ``api_key_issue``)."""
    client = ApiClient(
        name=name.strip(), scopes=_scopes_clean(scopes), rate_per_minute=rate_per_minute, created_by=_user(actor)
    )
    client.full_clean()
    client.save()
    audit_record(
        obj=client, action=AuditEntry.Action.CREATE, actor=actor, changes=created_changes(_client_values(client))
    )
    return client


def _user(actor) -> User | None:
    """The user behind an actor; None for a machine label such as "command:create_api_client"."""
    return actor if isinstance(actor, User) else None


def _client_values(client: ApiClient) -> dict:
    return instance_values(client, ["name", "scopes", "rate_per_minute", "revoked_at"])


def _key_values(key: ApiKey) -> dict:
    # Prefix and dates only: the digest is no one's business, not even the history's.
    return instance_values(key, ["client", "prefix", "expires_at", "revoked_at"])


@transaction.atomic
def api_client_update(
    *, client_id: int, scopes: list[str], rate_per_minute: int | None, actor: User | None
) -> ApiClient:
    """Change a client's scopes and rate (its keys stay valid)."""
    client = ApiClient.objects.select_for_update().get(pk=client_id)
    before = _client_values(client)
    client.scopes = _scopes_clean(scopes)
    client.rate_per_minute = rate_per_minute
    client.full_clean()
    client.save(update_fields=["scopes", "rate_per_minute"])
    changes = values_diff(before, _client_values(client))
    if changes:
        audit_record(obj=client, action=AuditEntry.Action.UPDATE, actor=actor, changes=changes)
    logger.info("API client %s updated by %s: scopes=%s rate=%s", client.name, actor, client.scopes, rate_per_minute)
    return client


@transaction.atomic
def api_client_revoke(*, client_id: int, actor: User | None, via: str | None = None) -> bool:
    """Revoke a client: all its keys stop working at once. False if it was already revoked."""
    now = timezone.now()
    revoked = bool(ApiClient.objects.filter(pk=client_id, revoked_at__isnull=True).update(revoked_at=now))
    if revoked:
        client = ApiClient.objects.get(pk=client_id)
        audit_record(
            obj=client, action=AuditEntry.Action.UPDATE, actor=actor, via=via, changes={"revoked_at": [None, now]}
        )
        logger.info("API client %s revoked by %s", client_id, actor)
    return revoked


@transaction.atomic
def api_key_issue(
    *, client: ApiClient, actor: User | str | None, expires_days: int | None = None
) -> IssuedKey:
    """Issue a new key for ``client``: ``mk_<prefix>_<secret>``. Earlier keys stay valid, so a
    webshop can switch to the new key before the old one is revoked (rotation without downtime).

    The key expires after ``expires_days`` days: None for the API_KEY_EXPIRY_DAYS setting, 0
    for never (callers warn about that). Only the prefix and the digest are stored; the
    returned ``secret`` is the one chance to see the key."""
    if client.revoked_at is not None:
        raise ValidationError("This API client is revoked; create a new client instead.")
    if expires_days is None:
        expires_days = settings.API_KEY_EXPIRY_DAYS
    if expires_days < 0:
        raise ValidationError({"expires_days": "Give the expiry in days: 1 or more, or 0 for never."})
    expires_at = timezone.now() + datetime.timedelta(days=expires_days) if expires_days else None
    for _attempt in range(5):
        prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_LENGTH))
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    else:  # pragma: no cover - 62**8 prefixes: five collisions in a row do not happen
        raise RuntimeError("could not find a free key prefix")
    raw = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        client=client, prefix=prefix, digest=api_key_digest(raw), created_by=_user(actor), expires_at=expires_at
    )
    audit_record(obj=key, action=AuditEntry.Action.CREATE, actor=actor, changes=created_changes(_key_values(key)))
    return IssuedKey(key=key, secret=raw)


@transaction.atomic
def api_key_revoke(*, key_id: int, actor: User | None, via: str | None = None) -> bool:
    """Revoke one key (the client's other keys keep working). False if it was already revoked."""
    now = timezone.now()
    revoked = bool(ApiKey.objects.filter(pk=key_id, revoked_at__isnull=True).update(revoked_at=now))
    if revoked:
        key = ApiKey.objects.get(pk=key_id)
        audit_record(
            obj=key, action=AuditEntry.Action.UPDATE, actor=actor, via=via, changes={"revoked_at": [None, now]}
        )
        logger.info("API key %s revoked by %s", key_id, actor)
    return revoked


def api_key_prefix(raw_key: str) -> str | None:
    """The prefix of a well-formed key (the lookup), else None."""
    start, end = len(API_KEY_PREFIX), len(API_KEY_PREFIX) + _PREFIX_LENGTH
    if not raw_key.startswith(API_KEY_PREFIX) or len(raw_key) < end + 2 or raw_key[end] != "_":
        return None
    return raw_key[start:end]


def api_key_check(*, raw_key: str, key: ApiKey | None) -> ApiKey:
    """The checks of an authentication, after the lookup by prefix found ``key`` (with its
    client; None if nothing was found): the digest matches, neither key nor client is revoked,
    the key has not expired. Writes ``last_used_at`` at most once per LAST_USED_RESOLUTION per
    key (a conditional update, so concurrent requests write once). ApiKeyError says why not."""
    # compare_digest: the time taken does not tell how much of a guessed digest matched.
    if key is None or not hmac.compare_digest(key.digest, api_key_digest(raw_key)):
        raise ApiKeyError("invalid_key", "The API key is not valid.")
    now = timezone.now()
    if key.revoked_at is not None or key.client.revoked_at is not None:
        raise ApiKeyError("revoked_key", "The API key has been revoked; ask the back office for a new one.")
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiKeyError(
            "expired_key", f"The API key expired at {key.expires_at.isoformat()}; ask the back office for a new one."
        )
    if key.last_used_at is None or key.last_used_at <= now - LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        key.last_used_at = now
    return key


def api_key_authenticate(*, raw_key: str) -> ApiKey:
    """The live key (with its client) that ``raw_key`` is, or ApiKeyError saying why not: an
    ORM lookup, then ``api_key_check``. (The API's request path does the same lookup as a fixed
    SQL statement: merchandising.api.authentication.key_authenticate.)"""
    prefix = api_key_prefix(raw_key)
    key = ApiKey.objects.select_related("client").filter(prefix=prefix).first() if prefix is not None else None
    return api_key_check(raw_key=raw_key, key=key)


# --- second factor (django-otp) ------------------------------------------------------------------

#: Recovery codes issued at enrolment; each works once, in place of an authenticator code.
RECOVERY_CODE_COUNT = 10
TOTP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"
#: How the audit trail shows a second factor being set up and reset (never its secret).
MFA_SET_UP = ["(none)", "(set up)"]
MFA_RESET = ["(set up)", "(reset)"]


def user_has_mfa(user: User) -> bool:
    """True if the user has a confirmed second factor (an authenticator app)."""
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()


def _lock_user_without_mfa(user: User) -> None:
    """Enrolments of one user run one at a time (the user's row is the lock), and none once a
    second factor is set up: a second confirmed device would be a way in for whoever holds
    the password alone."""
    User.objects.select_for_update().get(pk=user.pk)
    if user_has_mfa(user):
        raise ValidationError("A second factor is already set up; an administrator can reset it.")


@transaction.atomic
def mfa_enrolment_start(*, user: User, device_id: int | None) -> TOTPDevice:
    """The unconfirmed authenticator device of one session's enrolment: ``device_id`` is the
    one the session started (kept in the session, so a reload shows the QR code the user
    already scanned); a session without one, or whose device is gone, gets a new device.
    Never another session's device: whoever holds only the password must not read the secret
    of someone else's unfinished enrolment. A user who already has a confirmed device must
    have it reset by an administrator first (ValidationError)."""
    _lock_user_without_mfa(user)
    device = TOTPDevice.objects.filter(pk=device_id, user=user, confirmed=False).first() if device_id else None
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def mfa_enrolment_confirm(*, user: User, device_id: int | None, token: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the enrolment with a first code from the app: the device becomes the user's
    second factor, the other sessions' pending devices are deleted, and RECOVERY_CODE_COUNT new
    recovery codes replace any earlier ones. Returns the device and the codes (shown once:
    only django-otp's rows keep them). ValidationError for a wrong code, a device that is not
    this user's pending one, or a user whose second factor is already set up."""
    with transaction.atomic():
        _lock_user_without_mfa(user)
        device = TOTPDevice.objects.select_for_update().filter(pk=device_id, user=user, confirmed=False).first()
        if device is None:
            raise ValidationError("This enrolment is no longer pending; start again.")
        _raise_if_throttled(device)
        # A wrong code is raised only after this block: django-otp's throttle count must commit.
        accepted = device.verify_token(token.strip())
        if accepted:
            TOTPDevice.objects.filter(pk=device.pk, confirmed=False).update(confirmed=True)
            device.confirmed = True
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()  # the other sessions' enrolments
            StaticDevice.objects.filter(user=user).delete()
            recovery = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
            codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
            StaticToken.objects.bulk_create([StaticToken(device=recovery, token=code) for code in codes])
            # Never a secret or a code in the history: only that the factor exists now.
            audit_record(obj=user, action=AuditEntry.Action.UPDATE, actor=user, changes={"second_factor": MFA_SET_UP})
    if not accepted:
        raise ValidationError("That code is not right; check the clock of the phone and try the next code.")
    logger.info("Second factor set up by %s", user.get_username())
    return device, codes


def _raise_if_throttled(device: Device) -> None:
    """django-otp's throttle: after each wrong code, the wait before the next try doubles."""
    allowed, extra = device.verify_is_allowed()
    if not allowed:
        locked_until = (extra or {}).get("locked_until")
        if locked_until is None:
            raise ValidationError("Too many wrong codes; try again later.")
        # Said as a wait, not as "too many": the throttle starts at the first wrong code.
        wait = max(1, math.ceil((locked_until - timezone.now()).total_seconds()))
        raise ValidationError(
            f"Wait {wait} second{'s' if wait > 1 else ''} before the next try: the wait doubles with each wrong code."
        )


def mfa_verify(*, user: User, code: str) -> Device:
    """The device of ``user`` that accepts ``code``: exactly the authenticator device's number
    of digits (6) is a code of the app, anything else a recovery code (used up by this).
    Recovery codes are 8 characters of base32 (django-otp's StaticToken.random_token()), so
    now and then all digits: the length, not the digits, tells them apart. The check is
    django-otp's, against that one device, with its throttling (each wrong code doubles the
    wait before the next try). ValidationError says why not; the caller then marks the session verified
    (``django_otp.login``)."""
    code = "".join(code.split()).lower()
    if not code:
        raise ValidationError("Enter the code from your authenticator app, or a recovery code.")
    device = TOTPDevice.objects.devices_for_user(user, confirmed=True).first()
    if device is None or not (len(code) == device.digits and code.isdigit()):
        device = StaticDevice.objects.devices_for_user(user, confirmed=True).first()
        if device is None or not device.token_set.exists():
            raise ValidationError("You have no recovery codes left.")
    _raise_if_throttled(device)
    verified = otp_verify_token(user, device.persistent_id, code)
    if verified is None:
        raise ValidationError("That code is not right.")
    return verified


def user_sessions_end(*, user: User) -> int:
    """End every open session of ``user``: each of their browsers must sign in again. Returns
    how many were ended. The sessions live in the database (SESSION_ENGINE, Django's db
    backend) and name their user only inside their encoded data, so the unexpired ones are
    decoded: they are the sessions used within the idle timeout (30 minutes), a few per
    signed-in staff member, which keeps this simpler than an index of sessions per user that
    every sign-in and sign-out would have to keep in step (and that would need a table)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    ended = 0
    for session in store.get_model_class().objects.filter(expire_date__gt=timezone.now()).iterator():
        if store().decode(session.session_data).get(SESSION_KEY) == str(user.pk):
            store(session_key=session.session_key).delete()  # through the store: a cache too
            ended += 1
    return ended


@transaction.atomic
def user_mfa_reset(*, user: User, actor: User | None, via: str | None = None) -> int:
    """Remove every second-factor device of ``user`` (a lost phone, no recovery codes left) and
    end all their sessions, so that no session opened before the reset (perhaps by whoever
    took the phone or the password) can enrol a new device: the next sign-in asks for the
    password, then sets the app up again. Returns the number of devices removed (0: there was
    no second factor set up, only perhaps a pending enrolment, removed too; the sessions are
    ended all the same)."""
    User.objects.select_for_update().get(pk=user.pk)  # not while an enrolment of theirs confirms
    had_factor = user_has_mfa(user)  # a half-finished enrolment alone is no second factor
    removed = 0
    for model in (TOTPDevice, StaticDevice):
        _total, per_model = model.objects.filter(user=user).delete()  # the total counts tokens too
        removed += per_model.get(model._meta.label, 0)
    sessions = user_sessions_end(user=user)
    if had_factor:
        audit_record(
            obj=user,
            action=AuditEntry.Action.UPDATE,
            actor=actor,
            via=via,
            changes={"second_factor": MFA_RESET},
            extra={"devices_removed": removed, "sessions_ended": sessions},
        )
    logger.warning(
        "Second factor of %s reset by %s (%d devices, %d sessions ended)",
        user.get_username(),
        actor,
        removed,
        sessions,
    )
    return removed if had_factor else 0


# --- periodic task schedules (django-celery-beat), as the admin edits them ----------------------

SCHEDULE_AUDITED = ("name", "task", "crontab", "interval", "solar", "clocked", "enabled", "one_off", "args", "kwargs")


@transaction.atomic
def periodic_task_save(*, task, actor, via: str | None = None):
    """Save a beat schedule entry (the admin's form), recording what changed."""
    from django_celery_beat.models import PeriodicTask

    before = None
    if task.pk is not None:
        before = instance_values(PeriodicTask.objects.select_for_update().get(pk=task.pk), SCHEDULE_AUDITED)
    task.save()  # PeriodicTask.save validates the schedule and tells beat (PeriodicTasks.changed)
    audit_saved(obj=task, before=before, actor=actor, via=via, fields=SCHEDULE_AUDITED)
    return task


@transaction.atomic
def periodic_tasks_set_enabled(*, tasks, enabled: bool | None, actor, via: str | None = None) -> int:
    """Enable, disable (``False``) or toggle (``None``) beat schedule entries; returns how many
    changed. Disabling clears ``last_run_at``, as django-celery-beat's own action does."""
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    rows = list(tasks.select_for_update().values_list("pk", "name", "enabled"))
    changing = [(pk, name, was) for pk, name, was in rows if enabled is None or was != enabled]
    for wanted in (True, False):
        ids = [pk for pk, _name, was in changing if (not was) == wanted]
        if ids:
            extra = {} if wanted else {"last_run_at": None}
            PeriodicTask.objects.filter(pk__in=ids).update(enabled=wanted, **extra)
    if changing:
        PeriodicTasks.update_changed()
    audit_record_many(
        model=PeriodicTask,
        rows=[(pk, name, {"enabled": [was, not was]}) for pk, name, was in changing],
        action=AuditEntry.Action.UPDATE,
        actor=actor,
        via=via,
    )
    return len(changing)


@transaction.atomic
def periodic_tasks_delete(*, tasks, actor, via: str | None = None) -> int:
    from django_celery_beat.models import PeriodicTask

    doomed = list(tasks.select_for_update())
    audit_record_many(
        model=PeriodicTask,
        rows=[(t.pk, t.name, values_diff(instance_values(t, SCHEDULE_AUDITED), {})) for t in doomed],
        action=AuditEntry.Action.DELETE,
        actor=actor,
        via=via,
    )
    for task in doomed:
        task.delete()  # one by one: PeriodicTask.delete tells beat
    return len(doomed)
