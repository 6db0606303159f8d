"""Every error of the webshop API is JSON of one shape:
``{"error": {"code": "...", "message": "...", "fields": {...}?}}``."""

from __future__ import annotations

import math

from django.http import JsonResponse
from rest_framework import exceptions
from rest_framework.views import exception_handler

from merchandising.selectors.api import BadParameter, ProductNotFound


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def _message(detail) -> str:
    if isinstance(detail, list):
        return " ".join(_message(item) for item in detail)
    if isinstance(detail, dict):
        return " ".join(f"{name}: {_message(value)}" for name, value in detail.items())
    return str(detail)


def _code(detail, default: str) -> str:
    if isinstance(detail, exceptions.ErrorDetail):
        return detail.code or default
    return default


def api_exception_handler(exc, context):
    """DRF's handler, with our selectors' errors mapped and the body reshaped."""
    if isinstance(exc, ProductNotFound):
        exc = exceptions.NotFound(str(exc), code="unknown_sku")
    elif isinstance(exc, BadParameter):
        exc = exceptions.ValidationError(str(exc), code="bad_parameter")
    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: Django's 500 handling (and logging) takes it
    detail = response.data.get("detail") if isinstance(response.data, dict) else None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else None
        code = "bad_parameter"
        if isinstance(exc.detail, list) and exc.detail:
            code = _code(exc.detail[0], code)
            code = "bad_parameter" if code == "invalid" else code
        body = error_body(code, _message(exc.detail), **({"fields": fields} if fields else {}))
    elif isinstance(exc, exceptions.Throttled):
        wait = math.ceil(exc.wait or 0)
        body = error_body("throttled", f"Too many requests; try again in {wait} seconds.")
        response["Retry-After"] = str(wait)
    else:
        code = _code(detail, getattr(exc, "default_code", "error"))
        body = error_body(code, _message(detail if detail is not None else response.data))
    response.data = body
    return response


def json_error(status_code: int, code: str, message: str) -> JsonResponse:
    """The same shape outside DRF (middleware)."""
    return JsonResponse(error_body(code, message), status=status_code)
