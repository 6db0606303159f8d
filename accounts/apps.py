from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles(sender, **kwargs) -> None:
    # Permissions are created by post_migrate too, so roles can only be filled in afterwards;
    # the sync is idempotent and cheap, so it simply runs after every app's migrations.
    from accounts.services import roles_sync

    roles_sync(using=kwargs.get("using", "default"), actor="command:migrate")


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self) -> None:
        post_migrate.connect(_sync_roles, dispatch_uid="accounts.sync_roles")
