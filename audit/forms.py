"""The form side of the version check (audit/conflicts.py): a model form that carries the
version it was loaded at and the values it showed, and an admin mixin that uses it.

The form's ``clean`` compares the loaded version with the stored one (under a row lock, in
the admin's transaction) and, on a mismatch, re-shows the form with the user's edits kept, the
stored values in the fields the user did not touch, and the message naming what changed since
it was loaded and who saved. The service's conditional
update (``version_claim``) is what guarantees it; the form's check only lets people see the
conflict next to their input."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import router, transaction
from django.db.models import Model, QuerySet
from django.forms.models import model_to_dict

from audit.conflicts import EditConflict, FieldChange, edit_conflict

VERSION_FIELDS = ("loaded_version", "loaded_values")
#: Where ``VersionedAdminMixin`` keeps the service's refusal on the request it handles again.
REFUSAL_ATTRIBUTE = "_edit_conflict_refusal"
_MISSING = object()


def _shown(value: Any) -> str:
    """A value as people read it in the conflict message."""
    if value is None or value == "" or value == [] or value == {}:
        return "(empty)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple, set, QuerySet)):
        return ", ".join(sorted(str(item) for item in value)) or "(empty)"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _python(field: forms.Field, raw: Any) -> Any:
    try:
        return field.to_python(raw)
    except ValidationError:
        return raw  # e.g. a brand deleted since: show what was loaded


def _post(data: dict, widget: forms.Widget, name: str, shown: Any) -> None:
    """Put ``shown`` (a value of ``VersionedModelForm._snapshot``) into ``data`` as a browser
    posts it from ``widget``."""
    if isinstance(widget, forms.CheckboxInput):
        if shown:
            data[name] = "on"
        else:
            data.pop(name, None)  # an unticked box posts nothing
    elif isinstance(shown, list) or getattr(widget, "allow_multiple_selected", False):
        values = [str(item) for item in shown or ()]
        if hasattr(data, "setlist"):
            data.setlist(name, values)
        else:
            data[name] = values
    else:
        data[name] = "" if shown is None else str(shown)


class VersionedModelForm(forms.ModelForm):
    """A ModelForm for a ``VersionedModel``. ``loaded_version``: the version the form was
    loaded at; ``loaded_values``: the values it showed (JSON), to say which of them changed
    meanwhile. (Not ``version``: the admin refuses a non-editable model field's name.)"""

    loaded_version = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=1,
        required=False,
        error_messages={"required": "The form was incomplete (no version): reload the page."},
    )
    loaded_values = forms.CharField(widget=forms.HiddenInput, required=False)

    #: The service's refusal of this very request (set by ``VersionedAdminMixin`` when it
    #: handles the request again): the form then shows the conflict and never saves.
    service_refusal: EditConflict | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        editing = self.instance.pk is not None and not self.instance._state.adding
        # A new object has nothing to conflict with; an edit must say what it was based on.
        self.fields["loaded_version"].required = editing
        if editing:
            self.fields["loaded_version"].initial = self.instance.version
            self.fields["loaded_values"].initial = self._snapshot(self.initial)

    @property
    def edited_fields(self) -> list[str]:
        return [name for name in self.fields if name not in VERSION_FIELDS and not self.fields[name].disabled]

    def _snapshot(self, values: dict[str, Any]) -> str:
        """The values as the widgets show them (keys, ids, JSON text), for the hidden field."""
        shown = {}
        for name in self.edited_fields:
            field = self.fields[name]
            value = values.get(name, field.initial)
            if callable(value):
                value = value()
            value = field.prepare_value(value)
            if isinstance(value, (list, tuple, QuerySet)):
                value = [item.pk if isinstance(item, Model) else item for item in value]
            elif isinstance(value, Model):
                value = value.pk
            shown[name] = value
        return json.dumps(shown, cls=DjangoJSONEncoder)

    def _loaded_values(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.data.get(self.add_prefix("loaded_values")) or "{}")
        except (TypeError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def conflict_changes(self, current: Model) -> list[FieldChange]:
        """The fields whose stored value (``current``) differs from the one the form showed."""
        stored = model_to_dict(current, fields=self.edited_fields)
        loaded = self._loaded_values()
        changes = []
        for name in self.edited_fields:
            raw = loaded.get(name, _MISSING)
            if raw is _MISSING or name not in stored:
                continue
            field = self.fields[name]
            if field.has_changed(stored[name], raw):
                before = _python(field, raw)
                after = _python(field, field.prepare_value(stored[name]))
                label = self._label(name)
                changes.append(FieldChange(field=name, label=label, loaded=_shown(before), current=_shown(after)))
        return changes

    def _label(self, name: str) -> str:
        """The model field's verbose name ("unit price", "SKU"): reads well inside a sentence."""
        try:
            return str(self._meta.model._meta.get_field(name).verbose_name)
        except FieldDoesNotExist:  # a form field that is not a model field
            return str(self.fields[name].label or name).lower()

    def stored_object(self) -> Model:
        """The stored row; inside a transaction (the admin's) locked until it ends, so no save
        can slip in between this check and the service's write on PostgreSQL."""
        rows = type(self.instance)._default_manager
        model = type(self.instance)
        if transaction.get_connection(router.db_for_write(model)).in_atomic_block:
            rows = rows.select_for_update()
        return rows.get(pk=self.instance.pk)

    def clean(self):
        cleaned = super().clean()
        if self.fields["loaded_version"].required and cleaned.get("loaded_version") is not None:
            current = self.stored_object()
            if current.version != cleaned["loaded_version"]:
                self.edit_conflict = edit_conflict(current, changes=self.conflict_changes(current))
            elif self.service_refusal is not None:
                # The service refused this request although the row read here looks as
                # loaded (it read a newer one, or refused for another row): still a conflict.
                self.edit_conflict = self._refusal_conflict(current)
            else:
                return cleaned
            self._rebase(current)
            raise self.edit_conflict
        if self.service_refusal is not None:
            raise self.service_refusal
        return cleaned

    def _refusal_conflict(self, current: Model) -> EditConflict:
        refusal = self.service_refusal
        if isinstance(refusal.obj, type(current)) and refusal.obj.pk == current.pk:
            return edit_conflict(current, changes=self.conflict_changes(current))
        return refusal

    def _rebase(self, current: Model) -> None:
        """Base the re-shown form on the stored row: the fields the user edited keep the
        user's input; every other field shows the stored value, not the stale one the form
        was loaded with (else saving the re-shown form again would quietly undo the other
        person's change to it). ``loaded_version`` / ``loaded_values`` become the stored
        ones, so the next save is checked against what is stored now."""
        loaded = self._loaded_values()
        snapshot = self._snapshot(model_to_dict(current, fields=self.edited_fields))
        stored = json.loads(snapshot)
        data = self.data.copy()
        for name in self.edited_fields:
            if name not in stored or name not in loaded or self._edited(name, loaded[name]):
                continue
            _post(data, self.fields[name].widget, self.add_prefix(name), stored[name])
        data[self.add_prefix("loaded_version")] = str(current.version)
        data[self.add_prefix("loaded_values")] = snapshot
        self.data = data

    def _edited(self, name: str, loaded: Any) -> bool:
        """Whether the posted value of ``name`` differs from the value the form was loaded with."""
        field = self.fields[name]
        posted = field.widget.value_from_datadict(self.data, self.files, self.add_prefix(name))
        return field.has_changed(_python(field, loaded), posted)


class VersionedAdminMixin:
    """For the ModelAdmin of a ``VersionedModel`` whose form is a ``VersionedModelForm``:
    renders the two hidden fields, and hands the loaded version to the service. Its
    ``save_model`` must pass ``self.expected_version(form)`` to the service."""

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is None or not fieldsets:
            return fieldsets
        shown = {name for _title, options in fieldsets for name in _flatten(options.get("fields", ()))}
        missing = [name for name in VERSION_FIELDS if name not in shown]
        if missing:
            title, options = fieldsets[0]
            fieldsets[0] = (title, {**options, "fields": [*options.get("fields", ()), *missing]})
        return fieldsets

    @staticmethod
    def expected_version(form: forms.Form) -> int | None:
        return form.cleaned_data.get("loaded_version")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except EditConflict as refusal:
            # Another save committed between the form's check and the service's conditional
            # update: everything was rolled back. The same request is handled once more with
            # the refusal on the form, whose check then re-shows the form with the message
            # and never calls the service: yet another save landing meanwhile cannot turn
            # this second pass into an error page.
            setattr(request, REFUSAL_ATTRIBUTE, refusal)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        refusal = getattr(request, REFUSAL_ATTRIBUTE, None)
        if refusal is None:
            return form
        return type(form.__name__, (form,), {"service_refusal": refusal})


def _flatten(fields: Iterable) -> list[str]:
    names = []
    for item in fields:
        if isinstance(item, (list, tuple)):
            names.extend(item)
        else:
            names.append(item)
    return names
