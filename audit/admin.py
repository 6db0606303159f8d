"""The audit trail in the back office: the full list for administrators (the History page
of each object is audit.history.AuditHistoryMixin). Nobody may add,
change or delete a row here, superusers included; the database refuses it too
(audit/migrations/0002_append_only.py)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from accounts.roles import ADMINISTRATOR
from audit.history import change_rows
from audit.models import AuditEntry


class ActorFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        labels = AuditEntry.objects.order_by("actor_label").values_list("actor_label", flat=True).distinct()
        return [(label, label) for label in labels[:200]]

    def queryset(self, request, queryset):
        return queryset.filter(actor_label=self.value()) if self.value() else queryset


class ModelFilter(admin.SimpleListFilter):
    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        types = AuditEntry.objects.order_by().values_list("content_type", flat=True).distinct()
        found = ContentType.objects.filter(pk__in=types)
        return sorted(((str(ct.pk), f"{ct.app_label}.{ct.model}") for ct in found), key=lambda item: item[1])

    def queryset(self, request, queryset):
        return queryset.filter(content_type_id=self.value()) if self.value() else queryset


# django-auditlog registers its own LogEntryAdmin for the log entry model (ours); the back
# office shows ours instead.
if admin.site.is_registered(AuditEntry):
    admin.site.unregister(AuditEntry)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The full audit trail, for administrators only, read-only for everyone."""

    date_hierarchy = "timestamp"
    list_display = ["timestamp", "model", "object_link", "action", "actor_label", "via", "summary"]
    list_filter = [ModelFilter, ActorFilter, "via", "action", "timestamp"]
    list_select_related = ["content_type"]
    search_fields = ["object_repr", "object_pk", "actor_label"]
    search_help_text = "Object (name, SKU, id) or actor."
    list_per_page = 100
    fields = [
        "timestamp",
        "content_type",
        "object_pk",
        "object_repr",
        "action",
        "actor_label",
        "via",
        "changes",
        "additional_data",
    ]
    readonly_fields = fields

    def _administrator(self, request) -> bool:
        return request.user.is_active and request.user.has_role(ADMINISTRATOR)

    def has_module_permission(self, request) -> bool:
        return self._administrator(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._administrator(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="model", ordering="content_type__model")
    def model(self, obj: AuditEntry) -> str:
        return f"{obj.content_type.app_label}.{obj.content_type.model}"

    @admin.display(description="object")
    def object_link(self, obj: AuditEntry) -> str:
        opts = obj.content_type.model_class()
        if opts is None or not obj.object_pk or not admin.site.is_registered(opts):
            return obj.object_repr
        try:
            url = reverse(f"admin:{obj.content_type.app_label}_{obj.content_type.model}_history", args=[obj.object_pk])
        except NoReverseMatch:
            return obj.object_repr
        return format_html('<a href="{}">{}</a>', url, obj.object_repr)

    @admin.display(description="changes")
    def summary(self, obj: AuditEntry) -> str:
        rows = change_rows(obj)
        text = "; ".join(f"{name}: {old} → {new}" for name, old, new in rows[:4])
        return text + (f" (+{len(rows) - 4} more)" if len(rows) > 4 else "")
