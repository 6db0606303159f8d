from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

from audit.conflicts import VersionedModel

CATEGORY_SEPARATOR = " > "
SKU_VALIDATOR = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", "Use letters, digits and . _ / - only, no spaces.")
CODE_VALIDATOR = RegexValidator(r"^[a-z][a-z0-9_]*$", "Use lower-case letters, digits and _ , starting with a letter.")


def default_currency() -> str:
    return settings.DEFAULT_CURRENCY


class Brand(VersionedModel):
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="catalog_brand_name_ci_unique"),
            models.CheckConstraint(condition=~Q(name=""), name="catalog_brand_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class Category(VersionedModel):
    """A node of the category tree; ``path`` ("Tools > Drills") is kept by catalog.services."""

    name = models.CharField(max_length=100)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    path = models.CharField(max_length=500, unique=True, editable=False)

    class Meta:
        ordering = ["path"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(fields=["parent", "name"], name="catalog_category_unique_name_per_parent"),
            models.UniqueConstraint(
                fields=["name"], condition=Q(parent__isnull=True), name="catalog_category_unique_root_name"
            ),
            models.CheckConstraint(condition=~Q(parent=F("id")), name="catalog_category_not_own_parent"),
            models.CheckConstraint(condition=~Q(name="") & ~Q(name__contains=">"), name="catalog_category_name_valid"),
        ]

    def __str__(self) -> str:
        return self.path


class AttributeType(models.TextChoices):
    TEXT = "text", "Text"
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "Yes/no"
    CHOICE = "choice", "Choice"


class AttributeDefinition(models.Model):
    """An attribute that products may carry; values are validated against it."""

    code = models.CharField(max_length=50, unique=True, validators=[CODE_VALIDATOR])
    label = models.CharField(max_length=100)
    type = models.CharField(max_length=10, choices=AttributeType.choices, default=AttributeType.TEXT)
    unit = models.CharField(max_length=20, blank=True, help_text="Unit of a number, e.g. mm, V, kg.")
    choices = models.JSONField(default=list, blank=True, help_text='Allowed values of a choice, e.g. ["S", "M", "L"].')

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(type__in=AttributeType.values), name="catalog_attributedefinition_type_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.code})"

    def clean(self) -> None:
        if self.type == AttributeType.CHOICE:
            if (
                not isinstance(self.choices, list)
                or not self.choices
                or not all(isinstance(c, str) and c for c in self.choices)
            ):
                raise ValidationError({"choices": "A choice attribute needs a list of non-empty texts."})
            if len(set(self.choices)) != len(self.choices):
                raise ValidationError({"choices": "Choices must be distinct."})
        elif self.choices:
            raise ValidationError({"choices": "Only choice attributes have choices."})


class ProductStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    DISCONTINUED = "discontinued", "Discontinued"


class ProductQuerySet(models.QuerySet):
    def active(self) -> ProductQuerySet:
        return self.filter(status=ProductStatus.ACTIVE)

    def recommendable(self) -> ProductQuerySet:
        """Active products that may appear in recommendations."""
        return self.active().filter(exclude_from_recommendations=False)

    def with_relations(self) -> ProductQuerySet:
        return self.select_related("brand", "category", "base")


class Product(VersionedModel):
    """A sellable item. ``unit_price`` is the price of one sellable unit (one pack of
    ``pack_quantity`` units of measure); ``price_per_unit`` is what buyers compare."""

    sku = models.CharField("SKU", max_length=64, unique=True, validators=[SKU_VALIDATOR])
    name = models.CharField(max_length=255)
    brand = models.ForeignKey(Brand, null=True, blank=True, on_delete=models.PROTECT, related_name="products")
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.PROTECT, related_name="products")
    description = models.TextField(blank=True)
    unit_price = models.DecimalField(max_digits=12, decimal_places=4)
    currency = models.CharField(max_length=3, default=default_currency)
    pack_quantity = models.PositiveIntegerField(default=1, help_text="Units of measure in one sellable unit.")
    unit = models.CharField("unit of measure", max_length=20, default="pcs")
    base = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="variants",
        verbose_name="base product",
        help_text="Makes this product a pack variant of the base product (one level only).",
    )
    status = models.CharField(max_length=12, choices=ProductStatus.choices, default=ProductStatus.DRAFT)
    exclude_from_recommendations = models.BooleanField(default=False)
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["sku"]
        indexes = [
            models.Index(fields=["status"], name="catalog_product_status_idx"),
            models.Index(fields=["updated_at"], name="catalog_product_updated_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="catalog_product_price_not_negative"),
            models.CheckConstraint(condition=Q(pack_quantity__gte=1), name="catalog_product_pack_quantity_positive"),
            models.CheckConstraint(condition=~Q(base=F("id")), name="catalog_product_not_own_base"),
            models.CheckConstraint(condition=Q(status__in=ProductStatus.values), name="catalog_product_status_valid"),
            models.CheckConstraint(condition=~Q(sku=""), name="catalog_product_sku_not_empty"),
            # "One level of base only" spans rows, which a CHECK cannot see: it is a trigger,
            # see migration 0002_product_one_level_base_trigger.
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"

    @property
    def price_per_unit(self) -> Decimal:
        return (self.unit_price / self.pack_quantity).quantize(Decimal("0.0001"))

    def clean(self) -> None:
        if self.base_id is not None:
            if self.pk is not None and self.base_id == self.pk:
                raise ValidationError({"base": "A product cannot be its own base product."})
            if self.base is not None and self.base.base_id is not None:
                raise ValidationError({"base": f"{self.base.sku} is itself a pack variant; pick its base product."})
            if self.pk is not None and Product.objects.filter(base_id=self.pk).exists():
                raise ValidationError({"base": "This product has pack variants of its own, so it cannot be one."})


class ChangeSource(models.TextChoices):
    ADMIN = "admin", "Back office"
    IMPORT = "import", "CSV import"
    BULK_ACTION = "bulk_action", "Bulk action"
    COMMAND = "command", "Command"
    DEMO = "demo", "Demo data"


class ProductChange(models.Model):
    """Who changed what on a product, written in the same transaction as the change."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        DELETED = "deleted", "Deleted"

    # The history outlives the product: a deleted product's rows keep its SKU.
    product = models.ForeignKey(Product, null=True, on_delete=models.SET_NULL, related_name="changes")
    sku = models.CharField("SKU", max_length=64, db_index=True)
    changed_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=20, choices=ChangeSource.choices)
    reference = models.CharField(max_length=255, blank=True, help_text="The import, action or command behind it.")
    action = models.CharField(max_length=10, choices=Action.choices)
    changes = models.JSONField(help_text='{"field": [old, new], ...}')

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["product", "-changed_at"], name="catalog_change_product_idx")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ({self.get_source_display()})"

    @property
    def summary(self) -> str:
        parts = []
        for field, (old, new) in sorted(self.changes.items()):
            if self.action == self.Action.CREATED:
                parts.append(f"{field}: {new!s}")
            elif self.action == self.Action.DELETED:
                parts.append(f"{field}: {old!s}")
            else:
                parts.append(f"{field}: {old!s} → {new!s}")
        return "; ".join(parts)


class ProductImport(models.Model):
    """An uploaded products CSV between preview and confirmation (kept in the database, so
    any web process can apply it), and afterwards the record of what it did."""

    class Status(models.TextChoices):
        PREVIEWED = "previewed", "Previewed"
        APPLIED = "applied", "Applied"
        REJECTED = "rejected", "Rejected (errors)"

    file_name = models.CharField(max_length=255)
    content = models.BinaryField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PREVIEWED)
    summary = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_status_display()})"
