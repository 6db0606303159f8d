"""The History page of every object in the back office (see config/admin_site.py, which gives
every registered admin this mixin)."""

from __future__ import annotations

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.template.response import TemplateResponse

from audit.models import AuditEntry

HISTORY_PAGE_SIZE = 100


def change_rows(entry: AuditEntry) -> list[tuple[str, object, object]]:
    """(field, old, new) for the template, in field order."""
    return [(name, values[0], values[1]) for name, values in sorted((entry.changes or {}).items()) if len(values) == 2]


class AuditHistoryMixin:
    """The admin's "History" button shows the object's audit trail (who, through which path,
    when, old → new) instead of Django's admin log, which knows only the admin's own saves and
    no values. Whoever may view the object may view its history."""

    object_history_template = "admin/audit/object_history.html"

    def history_view(self, request, object_id, extra_context=None):
        model = self.model
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, model._meta, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        entries = AuditEntry.objects.for_object(obj).select_related("content_type")
        page = Paginator(entries, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"History: {obj}",
            "subtitle": None,
            "object": obj,
            "opts": model._meta,
            "app_label": model._meta.app_label,
            "page": page,
            "rows": [(entry, change_rows(entry)) for entry in page.object_list],
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.object_history_template, context)
