"""Cross-sell suggestions and the mining runs that produce them; their review (decisions,
exclusion rules); links and what is published of them.

Tiers, specials and the webshop API arrive with their issues.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce

from audit.conflicts import VersionedModel

# --- who acted ----------------------------------------------------------------------------------
#: User.username's length: the name kept next to a user foreign key.
ACTOR_NAME_LENGTH = 150


def actor_name(user) -> str:
    """The name to keep on a row next to its user foreign key, written with it: when the
    account is deleted the key becomes null (SET_NULL) and the row still says who acted."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return user.get_username()[:ACTOR_NAME_LENGTH]


def actor_label_of(user, name: str, default: str = "") -> str:
    """Who acted, for display: the user while the account exists (its current name), the
    kept name marked "(deleted user)" once it is gone, ``default`` when nobody acted."""
    if user is not None:
        return user.get_username()
    if name:
        return f"{name} (deleted user)"
    return default


def actor_name_field(of: str) -> models.CharField:
    # db_default as well: rows written by raw SQL (the recompute's INSERT) get "" too.
    return models.CharField(
        max_length=ACTOR_NAME_LENGTH,
        blank=True,
        default="",
        db_default="",
        editable=False,
        help_text=f"The user name of {of} when it was written; kept when the account is deleted.",
    )



class MiningSettings(VersionedModel):
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
    started_by_name = actor_name_field("started_by")
    parameters = models.JSONField(default=dict, blank=True)
    phase = models.CharField(max_length=40, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with every progress update and by a background thread every
    # MINING_HEARTBEAT_SECONDS: a running run silent for MINING_ABANDONED_AFTER_HEARTBEATS
    # intervals has lost its worker (see merchandising.services.runs).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The owner: the Celery task (message) id that claimed the run. A delivery of that same
    # message (a redelivery after its worker died) takes the run over at once.
    task_id = models.CharField(max_length=255, blank=True, db_index=True)
    # Raised by every claim or take-over: progress, heartbeats and the store of an earlier
    # attempt (a worker that was in fact alive) match no row and stop (RunLost).
    attempt = models.PositiveIntegerField(default=0)
    # The abandoned run this one was queued to replace (by the sweep; at most one each).
    retry_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retry", editable=False
    )
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
    def started_by_label(self) -> str:
        return actor_label_of(self.started_by, self.started_by_name)

    @property
    def audit_label(self) -> str:
        """How the audit trail names the run when its task writes (audit.services.actor_parts)."""
        return f"task:{self.pk}"

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
    EXCLUDED = "excluded", "Excluded by a rule"


#: The reasons a reviewer picks (keys 1-5 in the queue); EXCLUDED is set by exclusion rules.
REVIEW_REJECT_REASONS = [
    RejectReason.UNRELATED,
    RejectReason.INCOMPATIBLE,
    RejectReason.WRONG_BRAND,
    RejectReason.COMPETITOR,
    RejectReason.OTHER,
]


class SuggestionQuerySet(models.QuerySet):
    def pending_review(self) -> SuggestionQuerySet:
        return self.filter(status=SuggestionStatus.PENDING, stale=False)

    def with_trend(self) -> SuggestionQuerySet:
        """Annotate ``changed_in_latest_run``: the latest successful run gave the row new
        metrics (a recompute does not write unchanged rows, so ``previous_co_count`` is the
        co_count before the last change); see ``Suggestion.trend``."""
        latest = MiningRun.objects.filter(status=MiningRun.Status.SUCCEEDED).order_by("-pk").values("pk")[:1]
        return self.annotate(
            changed_in_latest_run=models.ExpressionWrapper(
                Q(last_run_id=models.Subquery(latest)), output_field=models.BooleanField()
            )
        )

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
    previous_co_count = models.PositiveIntegerField(
        null=True, blank=True, help_text="co_count before the run that last changed the metrics (last run)."
    )
    accounts = models.PositiveIntegerField(default=0, help_text="Distinct customer accounts that bought both.")
    status = models.CharField(max_length=10, choices=SuggestionStatus.choices, default=SuggestionStatus.PENDING)
    reject_reason = models.CharField(max_length=20, choices=RejectReason.choices, blank=True)
    reject_note = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    decided_by_name = actor_name_field("decided_by")
    decided_at = models.DateTimeField(null=True, blank=True)
    # Snoozed: left out of the queue until a run newer than this one has succeeded.
    snoozed_run = models.ForeignKey(
        MiningRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    stale = models.BooleanField(default=False, help_text="No longer qualifies in the latest run.")
    stale_since = models.DateTimeField(null=True, blank=True)
    # Provenance pointers without a database constraint: a foreign-key check per written row
    # cost a third of a run's store (1.1M checks at 278k new pairs). Runs are never deleted
    # (the admin is read-only); if one were, Django's SET_NULL still clears these.
    first_run = models.ForeignKey(
        MiningRun, null=True, on_delete=models.SET_NULL, related_name="+", db_index=False, db_constraint=False
    )
    last_run = models.ForeignKey(
        MiningRun,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
        help_text="The run that last changed its metrics; a suggestion that is not stale was also seen by the "
        "latest successful run.",
    )
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

    @property
    def decided_by_label(self) -> str:
        return actor_label_of(self.decided_by, self.decided_by_name)

    @property
    def trend(self) -> int | None:
        """co_count against the run before the latest one: None for a pair new in the latest
        run, 0 when unchanged. Needs ``Suggestion.objects.with_trend()``."""
        if not self.changed_in_latest_run:
            return 0
        if self.previous_co_count is None:
            return None
        return self.co_count - self.previous_co_count


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
    created_by_name = actor_name_field("created_by")
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

    @property
    def created_by_label(self) -> str:
        return actor_label_of(self.created_by, self.created_by_name)


# --- links and publishing ----------------------------------------------------------------------


class LinkType(models.TextChoices):
    CROSS_SELL = "cross_sell", "Cross-sell"
    ACCESSORY = "accessory", "Accessory"
    SPARE_PART = "spare_part", "Spare part"
    SERVICE = "service", "Service"
    CONSUMABLE = "consumable", "Consumable"
    SUBSTITUTE = "substitute", "Substitute"
    SUCCESSOR = "successor", "Successor"


#: How a link reads on its source's page and, inverse, on its target's page.
LINK_LABELS: dict[str, tuple[str, str]] = {
    LinkType.CROSS_SELL: ("Frequently bought with", "Suggested with"),
    LinkType.ACCESSORY: ("Has accessory", "Accessory of"),
    LinkType.SPARE_PART: ("Needs spare part", "Spare part for"),
    LinkType.SERVICE: ("Has service", "Service for"),
    LinkType.CONSUMABLE: ("Uses consumable", "Consumable for"),
    LinkType.SUBSTITUTE: ("Substitute", "Substitute for"),
    LinkType.SUCCESSOR: ("Replaced by", "Replaces"),
}
#: The types counted for coverage (a product "has recommendations").
COVERAGE_TYPES = [LinkType.CROSS_SELL, LinkType.ACCESSORY, LinkType.SPARE_PART]


class LinkOrigin(models.TextChoices):
    MANUAL = "manual", "Manual"
    MINED = "mined", "Mined"


class LinkQuerySet(models.QuerySet):
    def active(self) -> LinkQuerySet:
        """Not retired: what a specialist curates (published at once, or at the next publish
        when publishing in batches)."""
        return self.filter(retired_at__isnull=True)

    def needs_attention(self) -> LinkQuerySet:
        """Active links a person should look at: mined evidence gone stale, target no longer
        active (discontinued or back to draft), or target replaced by a successor. "Keep"
        (``attention_dismissed_at``) hides a link until a newer reason appears: for stale
        evidence, a ``stale_since`` after the keep."""
        from catalog.models import ProductStatus

        replaced = Link.objects.active().filter(type=LinkType.SUCCESSOR).values("source_id")
        undismissed = Q(attention_dismissed_at__isnull=True)
        stale = Q(suggestion__stale=True) & (undismissed | Q(attention_dismissed_at__lt=F("suggestion__stale_since")))
        target_gone = ~Q(target__status=ProductStatus.ACTIVE) & undismissed
        successor = Q(target_id__in=replaced) & undismissed
        return (
            self.active()
            .filter(stale | target_gone | successor)
            .annotate(
                # Coalesce: a manual link has no suggestion, and NULL is not False.
                reason_stale=Coalesce(
                    models.ExpressionWrapper(stale, output_field=models.BooleanField()), models.Value(False)
                ),
                reason_target_inactive=models.ExpressionWrapper(
                    ~Q(target__status=ProductStatus.ACTIVE), output_field=models.BooleanField()
                ),
                reason_successor=models.ExpressionWrapper(
                    Q(target_id__in=replaced), output_field=models.BooleanField()
                ),
            )
        )


class Link(models.Model):
    """A typed link source -> target that a specialist approved or added: the working set.
    What the webshop reads is ``PublishedLink``, written from this by ``links_publish``."""

    source = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="links_from")
    target = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="links_to")
    type = models.CharField(max_length=20, choices=LinkType.choices, default=LinkType.CROSS_SELL)
    position = models.PositiveIntegerField(help_text="Order within the source's links of this type, from 1.")
    origin = models.CharField(max_length=10, choices=LinkOrigin.choices, default=LinkOrigin.MANUAL)
    suggestion = models.ForeignKey(Suggestion, null=True, blank=True, on_delete=models.SET_NULL, related_name="links")
    run = models.ForeignKey(
        MiningRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    # The mined evidence at approval time (a later run changes the suggestion, not these).
    co_count = models.PositiveIntegerField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    lift = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_name = actor_name_field("created_by")
    # The creator's role(s) when the link was made (the API's provenance): a later role
    # change must not rewrite history nor republish every link of that person.
    created_by_role = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    valid_from = models.DateField(null=True, blank=True)
    valid_until = models.DateField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    retired_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    retired_by_name = actor_name_field("retired_by")
    retire_reason = models.CharField(max_length=200, blank=True)
    # "Keep" on the needs-attention list: hidden there until a new reason appears.
    attention_dismissed_at = models.DateTimeField(null=True, blank=True)

    objects = LinkQuerySet.as_manager()

    class Meta:
        ordering = ["source", "type", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "target", "type"],
                condition=Q(retired_at__isnull=True),
                name="merchandising_link_unique_active",
            ),
            models.CheckConstraint(condition=~Q(source=F("target")), name="merchandising_link_no_self_link"),
            models.CheckConstraint(condition=Q(position__gte=1), name="merchandising_link_position_from_1"),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_until__isnull=True)
                | Q(valid_until__gte=F("valid_from")),
                name="merchandising_link_valid_window",
            ),
        ]
        indexes = [models.Index(fields=["source", "type", "position"], name="merch_link_source_idx")]

    def __str__(self) -> str:
        return f"{self.source_id} -[{self.type}]-> {self.target_id}"

    @property
    def created_by_label(self) -> str:
        return actor_label_of(self.created_by, self.created_by_name)

    @property
    def retired_by_label(self) -> str:
        return actor_label_of(self.retired_by, self.retired_by_name)


class PublishState(models.Model):
    """The one row (pk=1) saying what the webshop sees: the publish generation (a number that
    changes with every publish, in the same transaction; the API's ETags use it) and whether
    approvals publish immediately or wait for a batch publish."""

    generation = models.PositiveBigIntegerField(default=0)
    batch_mode = models.BooleanField(
        default=False, help_text="Publish in batches: changes wait for the Publish button instead of going out at once."
    )
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_by_name = actor_name_field("published_by")

    class Meta:
        verbose_name = verbose_name_plural = "publishing"
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="merchandising_publish_state_singleton")]

    def __str__(self) -> str:
        return f"Publish generation {self.generation}"

    @property
    def published_by_label(self) -> str:
        return actor_label_of(self.published_by, self.published_by_name)

    @classmethod
    def load(cls) -> PublishState:
        return cls.objects.get_or_create(pk=1)[0]


class PublishedLinkQuerySet(models.QuerySet):
    def published(self) -> PublishedLinkQuerySet:
        """Published and not removed (before the read-time checks of ``visible``)."""
        return self.filter(removed_generation__isnull=True)

    def visible(self, on: datetime.date) -> PublishedLinkQuerySet:
        """What the webshop may show on day ``on``: published, and ``shown_on(on)``. The one
        definition every API read starts from."""
        return self.published().filter(shown_on(on))


def shown_on(on: datetime.date) -> Q:
    """The read-time conditions for a link (published or, for a preview, working) to reach the
    webshop on day ``on``: inside its validity window, both products active, and the target
    not flagged "exclude from recommendations". ``Link`` and ``PublishedLink`` name these
    fields alike."""
    from catalog.models import ProductStatus

    return (
        (Q(valid_from__isnull=True) | Q(valid_from__lte=on))
        & (Q(valid_until__isnull=True) | Q(valid_until__gte=on))
        & Q(source__status=ProductStatus.ACTIVE, target__status=ProductStatus.ACTIVE)
        & Q(target__exclude_from_recommendations=False)
    )


class PublishedLink(models.Model):
    """A published copy of a link, as the webshop sees it. ``links_publish`` writes these in
    one transaction with the generation; a removed link stays as a tombstone
    (``removed_generation``) so that a bulk sync can delete it."""

    link = models.OneToOneField(Link, on_delete=models.CASCADE, related_name="published")
    source = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=20, choices=LinkType.choices)
    position = models.PositiveIntegerField()
    origin = models.CharField(max_length=10, choices=LinkOrigin.choices)
    co_count = models.PositiveIntegerField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    lift = models.FloatField(null=True, blank=True)
    run_number = models.PositiveBigIntegerField(null=True, blank=True, help_text="The mining run of a mined link.")
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by_role = models.CharField(max_length=80, blank=True)
    valid_from = models.DateField(null=True, blank=True)
    valid_until = models.DateField(null=True, blank=True)
    added_generation = models.PositiveBigIntegerField()
    changed_generation = models.PositiveBigIntegerField()
    removed_generation = models.PositiveBigIntegerField(null=True, blank=True)
    # Whether the link was visible (``visible``) when ``updated_at`` last moved:
    # ``published_links_refresh`` moves ``updated_at`` when that changes without a publish (a
    # date window opening or closing, a product's status or exclusion flag), so that a sync
    # by ``updated_since`` sees it.
    visible = models.BooleanField(default=True)
    updated_at = models.DateTimeField()

    objects = PublishedLinkQuerySet.as_manager()

    class Meta:
        ordering = ["source", "type", "position"]
        indexes = [
            models.Index(fields=["source", "type", "position"], name="merch_published_source_idx"),
            models.Index(fields=["updated_at", "id"], name="merch_published_updated_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id} -[{self.type}]-> {self.target_id} (published)"


class PublishEvent(models.Model):
    """One publish: the generation it made, who, and what changed."""

    generation = models.PositiveBigIntegerField(unique=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = actor_name_field("actor")
    batch = models.BooleanField(default=False, help_text="A batch publish (the Publish button).")
    added = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-generation"]

    def __str__(self) -> str:
        return f"Publish #{self.generation}"

    @property
    def actor_label(self) -> str:
        return actor_label_of(self.actor, self.actor_name, "system")


class LinkList(VersionedModel):
    """The version of one source product's list of links of one type (what the links page
    shows and reorders as a whole). Every link change of the list raises it
    (merchandising.services.links); a reorder sent from a page showing an older version is
    refused. No row yet means the first version."""

    source = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=20, choices=LinkType.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "type"], name="merchandising_linklist_unique")]

    def __str__(self) -> str:
        return f"{self.source_id} {self.type} v{self.version}"


class LinkChange(models.Model):
    """History per product: every link added, reordered, retired, kept or replaced, with
    who, when and how (the same transaction as the change)."""

    class Action(models.TextChoices):
        ADDED = "added", "Added"
        REORDERED = "reordered", "Reordered"
        RETIRED = "retired", "Retired"
        KEPT = "kept", "Kept (needs attention dismissed)"
        REPLACED = "replaced", "Replaced by successor"
        CHANGED = "changed", "Changed"

    class Via(models.TextChoices):
        REVIEW = "review", "Review queue"
        MANUAL = "manual", "Product links page"
        BULK = "bulk", "Bulk action"
        ATTENTION = "attention", "Needs attention"
        IMPORT = "import", "Import"
        COMMAND = "command", "Command"

    link = models.ForeignKey(Link, null=True, on_delete=models.SET_NULL, related_name="changes")
    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="link_changes")
    target = models.ForeignKey("catalog.Product", null=True, on_delete=models.SET_NULL, related_name="+")
    type = models.CharField(max_length=20, choices=LinkType.choices)
    action = models.CharField(max_length=20, choices=Action.choices)
    via = models.CharField(max_length=20, choices=Via.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = actor_name_field("actor")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["product", "-created_at"], name="merch_linkchange_product_idx")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.type} link of {self.product_id}"

    @property
    def actor_label(self) -> str:
        return actor_label_of(self.actor, self.actor_name, "system")


# --- review decisions ----------------------------------------------------------------------------


class Decision(models.Model):
    """Every review decision: who, when, what and why; the undo of a decision is recorded on it."""

    class Action(models.TextChoices):
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"
        SNOOZE = "snooze", "Snoozed"
        EXCLUDE = "exclude", "Rejected by an exclusion rule"

    suggestion = models.ForeignKey(Suggestion, on_delete=models.CASCADE, related_name="decisions")
    action = models.CharField(max_length=10, choices=Action.choices)
    link_type = models.CharField(max_length=20, choices=LinkType.choices, blank=True)
    reject_reason = models.CharField(max_length=20, choices=RejectReason.choices, blank=True)
    note = models.TextField(blank=True)
    link = models.ForeignKey(Link, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rule = models.ForeignKey(ExclusionRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions")
    batch = models.UUIDField(null=True, blank=True, help_text="Decisions taken together (a bulk action).")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = actor_name_field("actor")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["actor", "-created_at"], name="merch_decision_actor_idx")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.suggestion_id}"

    @property
    def actor_label(self) -> str:
        return actor_label_of(self.actor, self.actor_name)


class ReviewPreference(models.Model):
    """A reviewer's saved queue filters."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_preference")
    filters = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Review filters of {self.user_id}"


# --- webshop events -------------------------------------------------------------------------------


class WebshopEvent(models.Model):
    """One event the webshop posted back (impression, click, add to cart, purchase), stored
    as received and aggregated later (CTR per link, A/B results). Idempotent by the client's
    ``event_id``: a batch posted twice stores each event once."""

    class Kind(models.TextChoices):
        IMPRESSION = "impression", "Impression"
        CLICK = "click", "Click"
        ADD_TO_CART = "add_to_cart", "Add to cart"
        PURCHASE = "purchase", "Purchase"

    event_id = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # From the tracking token of the recommended item: the published link and the generation
    # the webshop was shown. Plain numbers: events outlive links and publishes.
    link_id = models.PositiveBigIntegerField(null=True, blank=True)
    generation = models.PositiveBigIntegerField(null=True, blank=True)
    source_id = models.PositiveBigIntegerField(null=True, blank=True)
    target_id = models.PositiveBigIntegerField(null=True, blank=True)
    touchpoint = models.CharField(max_length=20, blank=True)
    account = models.CharField(max_length=64, blank=True, help_text="The customer account id the webshop sent.")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    client_id = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["link_id", "kind"], name="merch_event_link_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["impression", "click", "add_to_cart", "purchase"]), name="merch_event_kind_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.event_id}"
