"""Exclusion rules and the stored mining settings."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.conflicts import version_claim
from audit.models import AuditEntry
from audit.services import audit_record, instance_values, values_diff
from merchandising.models import ExclusionRule, MiningSettings, actor_name
from merchandising.services.runs import mining_options, mining_parameters

SETTINGS_FIELDS = (
    "min_count",
    "min_confidence",
    "min_lift",
    "top_k",
    "max_basket_size",
    "lookback_days",
    "half_life_days",
)


@transaction.atomic
def exclusion_rule_save(*, rule: ExclusionRule, actor, via: str | None = None) -> ExclusionRule:
    """Save an exclusion rule; a new one records who made it. It applies from the next run
    on (the run after that flags the pairs it removes as stale)."""
    creating = rule.pk is None
    before = {} if creating else instance_values(ExclusionRule.objects.select_for_update().get(pk=rule.pk))
    if creating:
        rule.created_by = actor
        rule.created_by_name = actor_name(actor)
    rule.full_clean()
    rule.save()
    changes = values_diff(before, instance_values(rule))
    if changes:
        action = AuditEntry.Action.CREATE if creating else AuditEntry.Action.UPDATE
        audit_record(obj=rule, action=action, actor=actor, via=via, changes=changes)
    return rule


def mining_settings_validate(*, values: dict) -> None:
    """Raise ValidationError if the engine would refuse these default parameters."""
    parameters = mining_parameters()
    parameters.update({name: values[name] for name in SETTINGS_FIELDS if values.get(name) is not None})
    try:
        mining_options(parameters)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


@transaction.atomic
def mining_settings_update(
    *, settings: MiningSettings, actor=None, expected_version: int | None = None, via: str | None = None
) -> MiningSettings:
    """Save the default parameters of future runs (the one row, pk=1). ``expected_version``:
    the version the settings page loaded; if the settings were saved since, EditConflict
    (audit.conflicts) and nothing is written."""
    MiningSettings.load()
    before = instance_values(MiningSettings.objects.select_for_update().get(pk=1), SETTINGS_FIELDS)
    settings.pk = 1
    settings.full_clean()
    mining_settings_validate(values={name: getattr(settings, name) for name in SETTINGS_FIELDS})
    changes = values_diff(before, instance_values(settings, SETTINGS_FIELDS))
    if not changes:
        return settings  # an unchanged form saved: nothing written, no version raised
    version_claim(obj=settings, expected_version=expected_version)
    settings.save()
    audit_record(obj=settings, action=AuditEntry.Action.UPDATE, actor=actor, via=via, changes=changes)
    return settings
