from django.contrib.admin.apps import AdminConfig


class BackOfficeAdminConfig(AdminConfig):
    """The project's admin site, and the project's own wiring of sign-in events."""

    default_site = "config.admin_site.BackOfficeAdminSite"

    def ready(self) -> None:
        super().ready()
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from config.access import log_locked_out, log_sign_in_failed
        from config.middleware import session_signed_in

        user_logged_in.connect(session_signed_in, dispatch_uid="config.session_signed_in")
        user_login_failed.connect(log_sign_in_failed, dispatch_uid="config.log_sign_in_failed")
        user_locked_out.connect(log_locked_out, dispatch_uid="config.log_locked_out")
