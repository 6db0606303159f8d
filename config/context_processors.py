"""Template context for the back office's own pages (review queue, links, dashboard), which
extend the admin's base template without going through the admin site's views."""

from django.http import HttpRequest

from config.admin_site import BackOfficeAdminSite


def backoffice(request: HttpRequest) -> dict:
    """The admin header's names and whether to show the user tools (log out, password).
    Admin views put their own values over these (a view's context wins)."""
    user = getattr(request, "user", None)
    return {
        "site_header": BackOfficeAdminSite.site_header,
        "site_title": BackOfficeAdminSite.site_title,
        "has_permission": bool(user is not None and user.is_authenticated and user.has_role()),
    }
