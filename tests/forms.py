"""Posting a form as a browser would: the values the page showed, then the user's edits."""

from __future__ import annotations

from typing import Any

from django.forms import CheckboxInput


def _post_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return str(value)


def form_data(form) -> dict[str, Any]:
    """The POST a browser would send for ``form`` unchanged (hidden fields included)."""
    data: dict[str, Any] = {}
    for bound in form:
        value = bound.value()
        if isinstance(bound.field.widget, CheckboxInput):
            if value:
                data[bound.html_name] = "on"
            continue
        data[bound.html_name] = _post_value(value)
    return data


def admin_form_data(response) -> dict[str, Any]:
    """The POST of an admin change page as loaded (the main form and every inline formset)."""
    assert response.status_code == 200, response.status_code
    data = form_data(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(form_data(formset.management_form))
        for form in formset.forms:
            data.update(form_data(form))
    return data
