import datetime

from axes.models import AccessFailureLog
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from accounts import roles
from audit.conflicts import VersionedModel


class User(AbstractUser):
    """A back-office user (staff). Webshop customers are not users."""

    class Meta:
        ordering = ["username"]

    @property
    def role_names(self) -> list[str]:
        if not hasattr(self, "_role_names"):
            self._role_names = sorted(self.groups.filter(name__in=roles.ROLES).values_list("name", flat=True))
        return self._role_names

    def has_role(self, *names: str) -> bool:
        """True if the user holds one of the roles (any role when none is named)."""
        if not self.is_active:
            return False
        if self.is_superuser:
            return True
        wanted = set(names or roles.ROLES)
        return bool(wanted.intersection(self.role_names))


class CustomerAccountQuerySet(models.QuerySet):
    def customers(self) -> "CustomerAccountQuerySet":
        """Real customers: not the placeholder that orders without a customer id are loaded
        under (``is_placeholder``); account-based features read only these."""
        return self.filter(is_placeholder=False)

    def placeholders(self) -> "CustomerAccountQuerySet":
        return self.filter(is_placeholder=True)


class CustomerAccount(VersionedModel):
    """A B2B customer of the webshop (not a user of the back office)."""

    class BrandMode(models.TextChoices):
        PREFER = "prefer", "Prefer preferred brands"
        ONLY = "only", "Only preferred brands"

    external_id = models.CharField("account id", max_length=64, unique=True)
    name = models.CharField(max_length=255, blank=True)
    segment = models.CharField(max_length=50, blank=True, db_index=True, help_text="e.g. construction, facility")
    industry = models.CharField(max_length=100, blank=True)
    brand_mode = models.CharField(max_length=10, choices=BrandMode.choices, default=BrandMode.PREFER)
    preferred_brands = models.ManyToManyField("catalog.Brand", blank=True, related_name="preferred_by")
    excluded_brands = models.ManyToManyField("catalog.Brand", blank=True, related_name="excluded_by")
    created_at = models.DateTimeField(auto_now_add=True)
    # The orders import's ``--anonymous`` account (docs/orders.md): many unknown customers, so
    # their baskets count for mining but nothing is counted or tailored per this "account".
    # db_default: the import writes accounts with SQL of its own.
    is_placeholder = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Holds the orders that have no customer id (orders import --anonymous); "
        "never counted as a customer, never gets brand preferences applied.",
    )

    objects = CustomerAccountQuerySet.as_manager()

    class Meta:
        ordering = ["external_id"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(external_id=""), name="accounts_customer_external_id_set"),
            models.CheckConstraint(
                condition=models.Q(brand_mode__in=["prefer", "only"]), name="accounts_customer_brand_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} {self.name}".strip()


class ApiClient(models.Model):
    """A machine client of the webshop API (the webshop itself, a search indexer, ...),
    managed by administrators. It authenticates with one of its keys (``ApiKey``)."""

    class Scope(models.TextChoices):
        READ = "read", "Read published data"
        EVENTS = "events", "Post events"

    name = models.CharField(max_length=100, unique=True)
    scopes = models.JSONField(default=list, help_text='Any of "read" and "events".')
    # Requests per minute this client may make (throttling); None: the settings' default.
    rate_per_minute = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="A revoked client's keys all stop working.")

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=~models.Q(name=""), name="accounts_api_client_name_set")]

    def __str__(self) -> str:
        return self.name

    @property
    def audit_label(self) -> str:
        """How the audit trail names this client when it acts (audit.services.actor_parts)."""
        return f"api:{self.name}"

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])


#: The overview lists administrators the keys that expire within this period.
API_KEY_EXPIRY_NOTICE = datetime.timedelta(days=30)


class ApiKeyQuerySet(models.QuerySet):
    def live(self, *, at=None):
        """Keys that authenticate at ``at`` (default: now): neither they nor their client are
        revoked, and they have not expired."""
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True, client__revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=at)
        )

    def expiring_within(self, period: datetime.timedelta):
        """Live keys whose expiry falls within ``period`` from now, soonest first."""
        now = timezone.now()
        return self.live(at=now).filter(expires_at__lte=now + period).order_by("expires_at", "pk")


class ApiKey(models.Model):
    """One key of an API client. The key is shown once when issued; only its prefix (for
    lookup and display) and a SHA-256 digest are stored. A client may hold several live keys
    at once, so a new key can be rolled out before the old one expires or is revoked."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="keys")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64, help_text="SHA-256 (hex) of the whole key.")
    created_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.client} key {self.prefix}…"


class FailedSignIn(AccessFailureLog):
    """django-axes' record of failed sign-ins, under the name administrators look for (a proxy:
    the rows stay axes' own, in its table)."""

    class Meta:
        proxy = True
        verbose_name = "failed sign-in"
        verbose_name_plural = "failed sign-ins"
        ordering = ["-attempt_time"]
