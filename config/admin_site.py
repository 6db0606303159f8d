"""The back office's admin site: entry is by role, not by the ``is_staff`` flag alone."""

from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect


class BackOfficeAdminSite(admin.AdminSite):
    """Also: every model's "History" page is its audit trail (audit.history), whichever admin
    class registers it."""

    site_header = "Merchandising back office"
    site_title = "Merchandising back office"
    index_title = "Catalog and administration"
    # The plain form: a signed-in user without a role then gets a clear 403 rather than
    # the admin's "not a staff account" message, which looks like a wrong password.
    login_form = AuthenticationForm

    def register(self, model_or_iterable, admin_class=None, **options):
        from audit.history import AuditHistoryMixin  # local: the site is built before the apps

        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, AuditHistoryMixin):
            admin_class = type(
                admin_class.__name__, (AuditHistoryMixin, admin_class), {"__module__": admin_class.__module__}
            )
        return super().register(model_or_iterable, admin_class, **options)

    def has_permission(self, request) -> bool:
        user = request.user
        return user.is_active and user.is_authenticated and user.has_role()

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.user.is_authenticated and not self.has_permission(request):
                if request.path == reverse("admin:logout", current_app=self.name):
                    # Django's admin_view would bounce this user to the index; let them sign out.
                    return csrf_protect(view)(request, *args, **kwargs)
                raise PermissionDenied("Your account has no back-office role; ask an administrator for one.")
            return inner(request, *args, **kwargs)

        return wrapper


class ReadOnlyAdminMixin:
    """Viewing only: no add, change or delete for anyone, whatever their permissions. For
    records of what happened (history, runs, imported orders) and machine output."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
