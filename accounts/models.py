from django.contrib.auth.models import AbstractUser
from django.db import models

from accounts import roles


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


class CustomerAccount(models.Model):
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
