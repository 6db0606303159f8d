"""Filters of the suggestion lists: one FilterSet (for the review queue and the API) and the
admin's list filters, both built on the same queryset functions so that they agree."""

from __future__ import annotations

import django_filters
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.utils import timezone

from catalog.models import CATEGORY_SEPARATOR, Brand, Category
from merchandising.models import MiningRun, Suggestion, SuggestionStatus

MIN_LIFT_CHOICES = (1, 1.5, 2, 3, 5)
MIN_CO_COUNT_CHOICES = (3, 5, 10, 20, 50)
RECENT_RUNS = 20


def in_source_category(queryset: QuerySet[Suggestion], category: Category) -> QuerySet[Suggestion]:
    """Suggestions whose source is in ``category`` or any category below it."""
    return queryset.filter(
        Q(source__category__path=category.path)
        | Q(source__category__path__startswith=category.path + CATEGORY_SEPARATOR)
    )


class SuggestionFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SuggestionStatus.choices)
    stale = django_filters.BooleanFilter()
    source_category = django_filters.ModelChoiceFilter(
        queryset=Category.objects.all(), method="filter_source_category", label="Source category (and below)"
    )
    source_brand = django_filters.ModelChoiceFilter(field_name="source__brand", queryset=Brand.objects.all())
    min_lift = django_filters.NumberFilter(field_name="lift", lookup_expr="gte")
    min_co_count = django_filters.NumberFilter(field_name="co_count", lookup_expr="gte")
    run = django_filters.ModelChoiceFilter(
        field_name="last_run", queryset=MiningRun.objects.all(), label="Run that last changed its metrics"
    )

    class Meta:
        model = Suggestion
        fields = ["status", "stale", "source_category", "source_brand", "min_lift", "min_co_count", "run"]

    def filter_source_category(self, queryset, name, value):
        return in_source_category(queryset, value) if value else queryset


class SourceCategoryFilter(admin.SimpleListFilter):
    title = "source category (and below)"
    parameter_name = "source_category"

    def lookups(self, request, model_admin):
        return [(str(pk), path) for pk, path in Category.objects.values_list("id", "path")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        category = Category.objects.filter(pk=self.value()).first() if self.value().isdigit() else None
        return in_source_category(queryset, category) if category else queryset.none()


class SourceBrandFilter(admin.SimpleListFilter):
    title = "source brand"
    parameter_name = "source_brand"

    def lookups(self, request, model_admin):
        return [(str(pk), name) for pk, name in Brand.objects.values_list("id", "name")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(source__brand_id=self.value()) if self.value().isdigit() else queryset.none()


class _MinimumFilter(admin.SimpleListFilter):
    field: str
    thresholds: tuple[float, ...]

    def lookups(self, request, model_admin):
        return [(str(value), f"≥ {value}") for value in self.thresholds]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            minimum = float(self.value())
        except ValueError:
            return queryset.none()
        return queryset.filter(**{f"{self.field}__gte": minimum})


class MinLiftFilter(_MinimumFilter):
    title = "minimum lift"
    parameter_name = "min_lift"
    field = "lift"
    thresholds = MIN_LIFT_CHOICES


class MinCoCountFilter(_MinimumFilter):
    title = "minimum co-count"
    parameter_name = "min_co_count"
    field = "co_count"
    thresholds = MIN_CO_COUNT_CHOICES


class LastRunFilter(admin.SimpleListFilter):
    title = "last changed in run"
    parameter_name = "run"

    def lookups(self, request, model_admin):
        runs = MiningRun.objects.filter(status=MiningRun.Status.SUCCEEDED).values_list("id", "created_at")
        return [
            (str(pk), f"#{pk} ({timezone.localtime(created):%Y-%m-%d %H:%M})") for pk, created in runs[:RECENT_RUNS]
        ]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(last_run_id=self.value()) if self.value().isdigit() else queryset.none()
