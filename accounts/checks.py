"""System checks of the sign-in settings, run by ``manage.py check --deploy``."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def mfa_required_check(app_configs, **kwargs) -> list[Warning]:
    """Staff sign in with a second factor in production: MFA_REQUIRED=false belongs to
    development (DEBUG=true) only."""
    if settings.DEBUG or settings.MFA_REQUIRED:
        return []
    return [
        Warning(
            "MFA_REQUIRED is off while DEBUG is off: back-office users sign in with a password alone.",
            hint="Remove MFA_REQUIRED=false from the environment (the default is on whenever DEBUG is off).",
            id="accounts.W001",
        )
    ]
