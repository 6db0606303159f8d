"""Who may do what in the webshop API: API clients by scope; back-office users (with a role)
may read, for previews, and never write."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from merchandising.api.authentication import ApiClientPrincipal


def client_of(request):
    """The API client of the request, or None for a back-office user or nobody."""
    user = getattr(request, "user", None)
    return user.client if isinstance(user, ApiClientPrincipal) else None


class _ScopePermission(BasePermission):
    scope: str = "read"
    message = "Your API key does not give access to this."

    def has_permission(self, request, view) -> bool:
        client = client_of(request)
        if client is not None:
            if not client.has_scope(self.scope):
                self.message = f"This API key's client lacks the scope {self.scope!r}."
                return False
            return True
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method not in SAFE_METHODS:
            self.message = "Back-office sessions may only read the API."
            return False
        if not user.has_role():
            self.message = "Your account has no back-office role; ask an administrator for one."
            return False
        return True


def HasScope(scope: str) -> type[BasePermission]:  # noqa: N802 - reads like a class in permission_classes
    """A permission class: API clients need ``scope``; back-office users with a role may use
    safe methods (GET, HEAD, OPTIONS) only. E.g. ``permission_classes = [HasScope("events")]``."""
    return type(f"HasScope_{scope}", (_ScopePermission,), {"scope": scope})


#: The default of every API view (settings.REST_FRAMEWORK): reading needs the "read" scope.
ReadAccess = HasScope("read")
EventsAccess = HasScope("events")
