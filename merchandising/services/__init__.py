"""Every write of the merchandising app goes through these functions (admin, commands and
Celery tasks call them, so they behave alike)."""

from merchandising.services.backtest import mining_backtest
from merchandising.services.recompute import suggestions_recompute
from merchandising.services.rules import exclusion_rule_save, mining_settings_update, mining_settings_validate
from merchandising.services.runs import mining_parameters, mining_run_create, mining_run_request

__all__ = [
    "exclusion_rule_save",
    "mining_backtest",
    "mining_parameters",
    "mining_run_create",
    "mining_run_request",
    "mining_settings_update",
    "mining_settings_validate",
    "suggestions_recompute",
]
