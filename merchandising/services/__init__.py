"""Every write of the merchandising app goes through these functions (admin, views, commands
and Celery tasks call them, so they behave alike)."""

from merchandising.services.backtest import mining_backtest
from merchandising.services.links import (
    LinkError,
    PublishConflict,
    link_add,
    link_keep,
    link_replace_by_successor,
    link_retire,
    links_publish,
    links_reorder,
    publish_diff,
    publish_settings_update,
    published_links_refresh,
    successor_of,
)
from merchandising.services.recompute import suggestions_recompute
from merchandising.services.review import (
    AlreadyDecided,
    ReviewError,
    decision_undo,
    exclusion_rule_create,
    exclusion_rule_delete,
    exclusion_rule_matches,
    exclusion_rule_preview,
    review_filters_save,
    suggestion_approve,
    suggestion_reject,
    suggestion_snooze,
    suggestions_bulk_decide,
    suggestions_bulk_preview,
)
from merchandising.services.rules import exclusion_rule_save, mining_settings_update, mining_settings_validate
from merchandising.services.runs import (
    mining_parameters,
    mining_run_create,
    mining_run_mark_failed,
    mining_run_request,
)

__all__ = [
    "AlreadyDecided",
    "LinkError",
    "PublishConflict",
    "ReviewError",
    "decision_undo",
    "exclusion_rule_create",
    "exclusion_rule_delete",
    "exclusion_rule_matches",
    "exclusion_rule_preview",
    "exclusion_rule_save",
    "link_add",
    "link_keep",
    "link_replace_by_successor",
    "link_retire",
    "links_publish",
    "links_reorder",
    "mining_backtest",
    "mining_parameters",
    "mining_run_create",
    "mining_run_mark_failed",
    "mining_run_request",
    "mining_settings_update",
    "mining_settings_validate",
    "review_filters_save",
    "publish_diff",
    "publish_settings_update",
    "published_links_refresh",
    "successor_of",
    "suggestion_approve",
    "suggestion_reject",
    "suggestion_snooze",
    "suggestions_bulk_decide",
    "suggestions_bulk_preview",
    "suggestions_recompute",
]
