"""Template context for the back office's own pages (review queue, links, dashboard), which
extend the admin's base template without going through the admin site's views."""

from django.http import HttpRequest

from config.admin_site import BackOfficeAdminSite


def backoffice(request: HttpRequest) -> dict:
    """The admin header's names, whether to show the user tools (log out, password) and the
    back-office section to mark in the menu (the URL's namespace; a view may name its own).
    Admin views put their own values over these (a view's context wins). A page rendered by a
    middleware (the 413 page) has no resolved URL yet: no section."""
    user = getattr(request, "user", None)
    match = getattr(request, "resolver_match", None)
    return {
        "bo_section": match.namespace if match is not None else "",
        "site_header": BackOfficeAdminSite.site_header,
        "site_title": BackOfficeAdminSite.site_title,
        "has_permission": bool(user is not None and user.is_authenticated and user.has_role()),
    }
