"""The merchandising admin: mining runs (progress, recompute, backtest), settings,
suggestions and exclusion rules. Writes go through merchandising.services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.cache import never_cache

from accounts.roles import ADMINISTRATOR, PRODUCT_SPECIALIST
from audit.forms import VersionedAdminMixin, VersionedModelForm
from audit.models import Via
from config.admin_site import ReadOnlyAdminMixin
from merchandising.filters import (
    LastRunFilter,
    MinCoCountFilter,
    MinLiftFilter,
    SourceBrandFilter,
    SourceCategoryFilter,
)
from merchandising.mining import DEFAULT_SCORE, SCORES
from merchandising.models import (
    ExclusionRule,
    Link,
    LinkChange,
    MiningRun,
    MiningSettings,
    PublishEvent,
    Suggestion,
)
from merchandising.selectors import mining_run_progress
from merchandising.services import (
    LinkError,
    exclusion_rule_create,
    exclusion_rule_delete,
    exclusion_rule_save,
    link_retire,
    mining_backtest,
    mining_run_mark_failed,
    mining_run_request,
    mining_settings_update,
    mining_settings_validate,
)
from merchandising.services.rules import SETTINGS_FIELDS

RECOMPUTE_PERMISSION = "merchandising.add_miningrun"
ACTIVE_STATUSES = (MiningRun.Status.QUEUED, MiningRun.Status.RUNNING)


def _who(field: str, description: str):
    """An admin column for who acted: the user, or the name kept on the row once the user
    was deleted (see merchandising.models.actor_label_of)."""

    @admin.display(description=description, ordering=field)
    def show(self, obj) -> str:
        return getattr(obj, f"{field}_label")

    return show


def _progress_html(run: MiningRun, url: str) -> str:
    return format_html(
        '<span class="mining-progress" data-progress-url="{}">'
        '<progress max="100" value="{}">{}%</progress> <span class="mining-progress-label">{}{}</span></span>',
        url,
        run.progress,
        run.progress,
        run.get_status_display(),
        f" – {run.phase}" if run.phase else "",
    )


class BacktestForm(forms.Form):
    cutoff = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Mine the orders before this date; test on the orders from it on.",
    )
    score = forms.ChoiceField(
        choices=[(name, name) for name in sorted(SCORES)],
        initial=DEFAULT_SCORE,
        help_text=f"The ranking to test (the default is {DEFAULT_SCORE}).",
    )


@admin.register(MiningRun)
class MiningRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "status",
        "trigger",
        "started_by_display",
        "progress_display",
        "duration_display",
        "orders",
        "pairs_scored",
        "suggestions_new",
        "suggestions_updated",
        "suggestions_unchanged",
        "suggestions_stale",
    ]
    list_filter = ["status", "trigger"]
    list_select_related = ["started_by"]
    actions = ["mark_failed"]
    started_by_display = _who("started_by", "started by")
    fieldsets = [
        (None, {"fields": ["status", "trigger", "started_by_display", "progress_display", "error"]}),
        ("Timing", {"fields": ["created_at", "started_at", "finished_at", "duration_display"]}),
        ("Parameters", {"fields": ["parameters"]}),
        (
            "Counts",
            {
                "fields": [
                    "orders",
                    "lines",
                    "products",
                    "pairs_scored",
                    "suggestions_new",
                    "suggestions_updated",
                    "suggestions_unchanged",
                    "suggestions_stale",
                ]
            },
        ),
    ]
    readonly_fields = [
        "status",
        "trigger",
        "started_by_display",
        "progress_display",
        "error",
        "created_at",
        "started_at",
        "finished_at",
        "duration_display",
        "parameters",
        "orders",
        "lines",
        "products",
        "pairs_scored",
        "suggestions_new",
        "suggestions_updated",
        "suggestions_unchanged",
        "suggestions_stale",
    ]

    class Media:
        js = ["merchandising/run_progress.js"]
        css = {"all": ["merchandising/mining.css"]}

    # Runs are records of what happened: made by the button, the schedule or the command.

    @admin.display(description="progress")
    def has_mark_failed_permission(self, request) -> bool:
        # Whoever may start a run (Recompute now) may end one whose worker is gone.
        return request.user.has_perm("merchandising.add_miningrun")

    @admin.action(
        description="Mark selected running runs as failed (their worker stopped)", permissions=["mark_failed"]
    )
    def mark_failed(self, request, queryset):
        marked = sum(
            mining_run_mark_failed(run_id=pk, actor=request.user) for pk in queryset.values_list("pk", flat=True)
        )
        skipped = queryset.count() - marked
        level = messages.SUCCESS if marked else messages.WARNING
        message = f"Marked {marked} run(s) as failed."
        if skipped:
            message += f" {skipped} selected run(s) were not running and were left as they are."
        self.message_user(request, message, level)

    def progress_display(self, obj: MiningRun) -> str:
        if obj.status not in ACTIVE_STATUSES:
            return f"{obj.progress}%" if obj.status == MiningRun.Status.FAILED else ""
        return _progress_html(obj, reverse("admin:merchandising_miningrun_progress", args=[obj.pk]))

    @admin.display(description="duration")
    def duration_display(self, obj: MiningRun) -> str:
        duration = obj.duration
        return f"{duration.total_seconds():.1f} s" if duration is not None else ""

    def can_recompute(self, request) -> bool:
        return request.user.has_perm(RECOMPUTE_PERMISSION)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_recompute": self.can_recompute(request)}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("recompute/", wrap(self.recompute_view), name="merchandising_miningrun_recompute"),
            path("backtest/", wrap(self.backtest_view), name="merchandising_miningrun_backtest"),
            path("<int:pk>/progress/", wrap(self.progress_view), name="merchandising_miningrun_progress"),
            *super().get_urls(),
        ]

    def recompute_view(self, request):
        """The "Recompute now" button (POST): a queued run, enqueued once committed."""
        if not self.can_recompute(request):
            raise PermissionDenied("Your role cannot start a mining run.")
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = mining_run_request(actor=request.user)
        run.refresh_from_db()
        status = run.get_status_display().lower()
        self.message_user(request, f"Mining run #{run.pk} started: {status}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:merchandising_miningrun_change", args=[run.pk]))

    @method_decorator(never_cache)
    def progress_view(self, request, pk: int):
        """What the progress bar polls (run_progress.js)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(MiningRun, pk=pk)
        return JsonResponse(mining_run_progress(run=run))

    def backtest_view(self, request):
        """Backtest the stored settings (with a chosen ranking) at a cutoff date; reads only."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = BacktestForm(request.GET if "cutoff" in request.GET else None)
        result = None
        if form.is_bound and form.is_valid():
            cutoff, score = form.cleaned_data["cutoff"], form.cleaned_data["score"]
            result = mining_backtest(cutoff=cutoff, overrides={"score": score})
            result["rows"] = [
                (f"configured ({score})", result["hit_at_10"], result["recall_at_10"]),
                *((name, values["hit_at_10"], values["recall_at_10"]) for name, values in result["baselines"].items()),
            ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Backtest the mining configuration",
            "form": form,
            "result": result,
        }
        return TemplateResponse(request, "admin/merchandising/miningrun/backtest.html", context)


class MiningSettingsForm(VersionedModelForm):
    class Meta:
        model = MiningSettings
        fields = list(SETTINGS_FIELDS)
        help_texts = {
            "top_k": "Suggestions kept per source product (0: all).",
            "max_basket_size": "Orders with more distinct products count for popularity but not for pairs (0: no cap).",
            "lookback_days": "Only orders this recent are mined (0: all).",
            "half_life_days": "Half-life of the time-decayed co-count (0: no decay).",
        }

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            mining_settings_validate(values=cleaned)
        return cleaned


@admin.register(MiningSettings)
class MiningSettingsAdmin(VersionedAdminMixin, admin.ModelAdmin):
    """The one row of default parameters: the list goes straight to it."""

    form = MiningSettingsForm

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        settings = MiningSettings.load()
        return HttpResponseRedirect(reverse("admin:merchandising_miningsettings_change", args=[settings.pk]))

    def get_object(self, request, object_id, from_field=None):
        # The row is created with its defaults on first use (MiningSettings.load()).
        return MiningSettings.load() if str(object_id) == "1" else None

    def save_model(self, request, obj, form, change):
        mining_settings_update(settings=obj, actor=request.user, expected_version=self.expected_version(form))


@admin.register(Suggestion)
class SuggestionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every mined pair with its metrics; reviewing happens in the review queue."""

    list_display = [
        "source_sku",
        "target_sku",
        "co_count",
        "trend",
        "confidence_display",
        "lift_display",
        "score_display",
        "accounts",
        "status",
        "stale",
        "run_display",
    ]
    list_filter = [
        "status",
        "stale",
        SourceCategoryFilter,
        SourceBrandFilter,
        MinLiftFilter,
        MinCoCountFilter,
        LastRunFilter,
    ]
    list_select_related = ["source", "target"]
    search_fields = ["source__sku", "target__sku"]
    list_per_page = 100

    def get_queryset(self, request):
        return super().get_queryset(request).with_trend()

    fields = [
        "source",
        "target",
        "status",
        "reject_reason",
        "reject_note",
        "decided_by_display",
        "decided_at",
        "stale",
        "stale_since",
        "co_count",
        "previous_co_count",
        "support",
        "confidence",
        "lift",
        "jaccard",
        "decayed_co_count",
        "score",
        "accounts",
        "first_run",
        "last_run",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    decided_by_display = _who("decided_by", "decided by")

    @admin.display(description="source", ordering="source__sku")
    def source_sku(self, obj: Suggestion) -> str:
        return f"{obj.source.sku} {obj.source.name}"

    @admin.display(description="target", ordering="target__sku")
    def target_sku(self, obj: Suggestion) -> str:
        return f"{obj.target.sku} {obj.target.name}"

    @admin.display(description="trend")
    def trend(self, obj: Suggestion) -> str:
        change = obj.trend
        if change is None:
            return "new"
        return f"{change:+d}" if change else "="

    @admin.display(description="confidence", ordering="confidence")
    def confidence_display(self, obj: Suggestion) -> str:
        return f"{obj.confidence:.3f}"

    @admin.display(description="lift", ordering="lift")
    def lift_display(self, obj: Suggestion) -> str:
        return f"{obj.lift:.2f}"

    @admin.display(description="score", ordering="score")
    def score_display(self, obj: Suggestion) -> str:
        return f"{obj.score:.4f}"

    @admin.display(description="last run", ordering="last_run")
    def run_display(self, obj: Suggestion) -> str:
        return f"#{obj.last_run_id}" if obj.last_run_id else ""


class ExclusionRuleForm(forms.ModelForm):
    SUBJECTS = {
        ExclusionRule.Kind.PRODUCT: ("product",),
        ExclusionRule.Kind.BRAND: ("brand",),
        ExclusionRule.Kind.CATEGORY: ("category",),
        ExclusionRule.Kind.CATEGORY_PAIR: ("category", "other_category"),
    }

    class Meta:
        model = ExclusionRule
        fields = ["kind", "product", "brand", "category", "other_category", "reason"]
        help_texts = {
            "category": "A category rule covers the categories below it too.",
            "other_category": "Only for category pairs: never pair products of these two categories.",
        }

    def clean(self):
        cleaned = super().clean()
        needed = self.SUBJECTS.get(cleaned.get("kind"), ())
        for name in needed:
            if not cleaned.get(name):
                self.add_error(name, "This kind of rule needs it.")
        for name in ("product", "brand", "category", "other_category"):
            if name not in needed:
                cleaned[name] = None
        return cleaned


@admin.register(ExclusionRule)
class ExclusionRuleAdmin(admin.ModelAdmin):
    form = ExclusionRuleForm
    list_display = ["kind", "subject", "reason", "created_by_display", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["product", "brand", "category", "other_category", "created_by"]
    autocomplete_fields = ["product", "brand", "category", "other_category"]
    readonly_fields = ["created_by_display", "created_at"]
    created_by_display = _who("created_by", "created by")
    search_fields = ["reason", "product__sku", "brand__name", "category__path"]

    @admin.display(description="applies to")
    def subject(self, obj: ExclusionRule) -> str:
        if obj.kind == ExclusionRule.Kind.PRODUCT:
            return obj.product.sku
        if obj.kind == ExclusionRule.Kind.BRAND:
            return obj.brand.name
        if obj.kind == ExclusionRule.Kind.CATEGORY:
            return obj.category.path
        return f"{obj.category.path} ↔ {obj.other_category.path}"

    def save_model(self, request, obj, form, change):
        if change:
            exclusion_rule_save(rule=obj, actor=request.user)
            return
        outcome = exclusion_rule_create(rule=obj, actor=request.user)
        self.message_user(
            request,
            f"The rule rejected {_suggestions(outcome.rejected, 'pending ')}; the mining run respects it from now on.",
            messages.SUCCESS,
        )

    def delete_model(self, request, obj):
        restored = exclusion_rule_delete(rule_id=obj.pk, actor=request.user)
        self.message_user(
            request, f"{_suggestions(restored)} rejected by the rule are back in the queue.", messages.SUCCESS
        )

    def delete_queryset(self, request, queryset):
        """The "delete selected" action: each rule through the service, one report."""
        ids = list(queryset.values_list("pk", flat=True))
        restored = sum(exclusion_rule_delete(rule_id=pk, actor=request.user, via=Via.BULK) for pk in ids)
        self.message_user(
            request, f"{_suggestions(restored)} rejected by these rules are back in the queue.", messages.SUCCESS
        )


def _suggestions(count: int, kind: str = "") -> str:
    return f"{count} {kind}suggestion{'' if count == 1 else 's'}"


# --- links and publishing ------------------------------------------------------------------------


class RetiredFilter(admin.SimpleListFilter):
    title = "retired"
    parameter_name = "retired"

    def lookups(self, request, model_admin):
        return [("no", "Active"), ("yes", "Retired")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(retired_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(retired_at__isnull=False)
        return queryset


@admin.register(Link)
class LinkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every link, active and retired. Links change on the product links page (or through
    the retire action here), both through merchandising.services."""

    list_display = [
        "source_sku",
        "type",
        "position",
        "target_sku",
        "origin",
        "valid_from",
        "valid_until",
        "created_by_display",
        "created_at",
        "retired_at",
    ]
    list_filter = ["type", "origin", RetiredFilter]
    list_select_related = ["source", "target", "created_by", "retired_by"]
    search_fields = ["source__sku", "target__sku"]
    list_per_page = 100
    actions = ["retire_selected"]
    fields = [
        "source",
        "target",
        "type",
        "position",
        "origin",
        "suggestion",
        "run",
        "co_count",
        "confidence",
        "lift",
        "created_by_display",
        "created_at",
        "updated_at",
        "valid_from",
        "valid_until",
        "retired_at",
        "retired_by_display",
        "retire_reason",
        "attention_dismissed_at",
    ]
    readonly_fields = fields
    created_by_display = _who("created_by", "created by")
    retired_by_display = _who("retired_by", "retired by")

    @admin.display(description="source", ordering="source__sku")
    def source_sku(self, obj: Link) -> str:
        return format_html(
            '<a href="{}">{}</a> {}',
            reverse("merchandising:product_links", args=[obj.source.sku]),
            obj.source.sku,
            obj.source.name,
        )

    @admin.display(description="target", ordering="target__sku")
    def target_sku(self, obj: Link) -> str:
        return f"{obj.target.sku} {obj.target.name}"

    def has_retire_permission(self, request) -> bool:
        return request.user.has_role(PRODUCT_SPECIALIST, ADMINISTRATOR)

    @admin.action(description="Retire selected links", permissions=["retire"])
    def retire_selected(self, request, queryset):
        retired = skipped = 0
        for pk in queryset.filter(retired_at__isnull=True).values_list("pk", flat=True):
            try:
                link_retire(link_id=pk, actor=request.user, reason="bulk retire (admin)", via=LinkChange.Via.BULK)
            except LinkError:
                skipped += 1
            else:
                retired += 1
        total = queryset.count()
        self.message_user(
            request,
            f"Retired {retired} of {total} selected links ({total - retired} already retired).",
            messages.SUCCESS if retired else messages.WARNING,
        )


@admin.register(PublishEvent)
class PublishEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["generation", "created_at", "actor_display", "batch", "added", "removed", "changed"]
    list_filter = ["batch"]
    list_select_related = ["actor"]
    fields = list_display
    readonly_fields = list_display
    actor_display = _who("actor", "actor")


@admin.register(LinkChange)
class LinkChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "product_sku", "action", "type", "target_sku", "via", "actor_display", "details"]
    list_filter = ["action", "via", "type"]
    list_select_related = ["product", "target", "actor"]
    search_fields = ["product__sku", "target__sku"]
    list_per_page = 100
    fields = ["created_at", "product", "link", "target", "type", "action", "via", "actor_display", "details"]
    readonly_fields = fields
    actor_display = _who("actor", "actor")

    @admin.display(description="product", ordering="product__sku")
    def product_sku(self, obj: LinkChange) -> str:
        return obj.product.sku

    @admin.display(description="target", ordering="target__sku")
    def target_sku(self, obj: LinkChange) -> str:
        return obj.target.sku if obj.target_id else ""
