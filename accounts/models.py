from django.contrib.auth.models import AbstractUser

from accounts import roles


class User(AbstractUser):
    """A back-office user (staff). Webshop customers are not users."""

    class Meta:
        ordering = ["username"]

    @property
    def role_names(self) -> list[str]:
        if not hasattr(self, "_role_names"):
            self._role_names = sorted(self.groups.filter(name__in=roles.ROLES).values_list("name", flat=True))
        return self._role_names

    def has_role(self, *names: str) -> bool:
        """True if the user holds one of the roles (any role when none is named)."""
        if not self.is_active:
            return False
        if self.is_superuser:
            return True
        wanted = set(names or roles.ROLES)
        return bool(wanted.intersection(self.role_names))
