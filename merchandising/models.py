"""Cross-sell suggestions and the mining runs that produce them.

Links, tiers, specials and the webshop API arrive with their issues.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class MiningSettings(models.Model):
    """The stored default configuration of a mining run (one row, pk=1). A run copies these
    into its own ``parameters``; command options override them for one run."""

    min_count = models.PositiveIntegerField(default=3, help_text="Minimum number of orders containing both.")
    min_confidence = models.FloatField(default=0.02)
    min_lift = models.FloatField(default=1.0)
    top_k = models.PositiveIntegerField(default=20, help_text="Suggestions kept per source product.")
    max_basket_size = models.PositiveIntegerField(default=50, help_text="Bigger orders are down-weighted.")
    lookback_days = models.PositiveIntegerField(default=730, help_text="Only orders this recent are mined.")
    half_life_days = models.PositiveIntegerField(default=180, help_text="Half-life of the time-decayed co-count.")

    class Meta:
        verbose_name = verbose_name_plural = "mining settings"
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="merchandising_settings_singleton")]

    def __str__(self) -> str:
        return "Mining settings"

    @classmethod
    def load(cls) -> MiningSettings:
        return cls.objects.get_or_create(pk=1)[0]


class MiningRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (another run was in progress)"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Recompute button"
        SCHEDULE = "schedule", "Schedule"
        COMMAND = "command", "Command"
        DEMO = "demo", "Demo data"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    parameters = models.JSONField(default=dict, blank=True)
    phase = models.CharField(max_length=40, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with every progress update: a running run silent for longer than a task's hard
    # time limit has lost its worker, and the single-flight claim may take its place.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    orders = models.PositiveIntegerField(default=0)
    lines = models.PositiveIntegerField(default=0)
    products = models.PositiveIntegerField(default=0)
    pairs_scored = models.PositiveBigIntegerField(default=0)
    suggestions_new = models.PositiveIntegerField(default=0)
    suggestions_updated = models.PositiveIntegerField(default=0)
    suggestions_unchanged = models.PositiveIntegerField(default=0)
    suggestions_stale = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="merchandising_run_progress_max_100"),
            # At most one run works at a time: the single-flight claim of recompute_suggestions.
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="running"), name="merchandising_run_single_running"
            ),
        ]

    def __str__(self) -> str:
        return f"Run #{self.pk} ({self.get_status_display()})"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class SuggestionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class RejectReason(models.TextChoices):
    UNRELATED = "unrelated", "Unrelated"
    INCOMPATIBLE = "incompatible", "Incompatible"
    WRONG_BRAND = "wrong_brand", "Wrong brand"
    COMPETITOR = "competitor", "Competitor product"
    OTHER = "other", "Other"


class SuggestionQuerySet(models.QuerySet):
    def pending_review(self) -> SuggestionQuerySet:
        return self.filter(status=SuggestionStatus.PENDING, stale=False)

    def needs_attention(self) -> SuggestionQuerySet:
        """Approved pairs whose evidence dropped below the thresholds: a person decides."""
        return self.filter(status=SuggestionStatus.APPROVED, stale=True)


class Suggestion(models.Model):
    """A mined directed pair source -> target with its latest metrics and its review state.
    A recompute updates the metrics; it never changes a human decision."""

    # A recompute rewrites every row, so each index costs on every run: source is served by the
    # (source, target) and (source, -score) indexes, and the run and user columns are not searched.
    source = models.ForeignKey(
        "catalog.Product", on_delete=models.CASCADE, related_name="suggestions_from", db_index=False
    )
    target = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="suggestions_to")
    co_count = models.PositiveIntegerField()
    support = models.FloatField()
    confidence = models.FloatField()
    lift = models.FloatField()
    jaccard = models.FloatField()
    decayed_co_count = models.FloatField()
    score = models.FloatField(db_index=True)
    previous_co_count = models.PositiveIntegerField(null=True, blank=True, help_text="co_count in the run before.")
    accounts = models.PositiveIntegerField(default=0, help_text="Distinct customer accounts that bought both.")
    status = models.CharField(max_length=10, choices=SuggestionStatus.choices, default=SuggestionStatus.PENDING)
    reject_reason = models.CharField(max_length=20, choices=RejectReason.choices, blank=True)
    reject_note = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    stale = models.BooleanField(default=False, help_text="No longer qualifies in the latest run.")
    stale_since = models.DateTimeField(null=True, blank=True)
    first_run = models.ForeignKey(MiningRun, null=True, on_delete=models.SET_NULL, related_name="+", db_index=False)
    last_run = models.ForeignKey(MiningRun, null=True, on_delete=models.SET_NULL, related_name="+", db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SuggestionQuerySet.as_manager()

    class Meta:
        ordering = ["-score", "id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "target"], name="merchandising_suggestion_unique_pair"),
            models.CheckConstraint(condition=~Q(source=F("target")), name="merchandising_suggestion_no_self_pair"),
            models.CheckConstraint(
                condition=Q(status__in=SuggestionStatus.values), name="merchandising_suggestion_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="rejected") | Q(reject_reason=""), name="merchandising_suggestion_reason_if_rejected"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "stale", "-score"], name="merch_suggestion_queue_idx"),
            models.Index(fields=["source", "-score"], name="merch_suggestion_source_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id} -> {self.target_id} ({self.status})"


class ExclusionRule(models.Model):
    """Pairs a specialist never wants suggested; the mining run respects them."""

    class Kind(models.TextChoices):
        PRODUCT = "product", "Never suggest this product"
        BRAND = "brand", "Exclude brand"
        CATEGORY = "category", "Exclude category"
        CATEGORY_PAIR = "category_pair", "Never pair these categories"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    product = models.ForeignKey("catalog.Product", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    brand = models.ForeignKey("catalog.Brand", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    category = models.ForeignKey("catalog.Category", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    other_category = models.ForeignKey(
        "catalog.Category", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="product", product__isnull=False, brand__isnull=True, category__isnull=True)
                    | Q(kind="brand", brand__isnull=False, product__isnull=True, category__isnull=True)
                    | Q(kind="category", category__isnull=False, product__isnull=True, brand__isnull=True)
                    | Q(kind="category_pair", category__isnull=False, other_category__isnull=False)
                ),
                name="merchandising_exclusion_fields_match_kind",
            ),
        ]

    def __str__(self) -> str:
        return self.get_kind_display()
