"""Middleware of the project."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from merchandising.api.authentication import bearer_token
from merchandising.api.exceptions import json_error

API_PREFIX = "/api/"


class ApiBoundaryMiddleware:
    """Keeps webshop API keys inside /api/, and API errors in JSON.

    A request with ``Authorization: Bearer ...`` anywhere outside /api/ gets 403 (JSON) before
    any view runs: a webshop key can never reach a back-office page, not even the login
    redirect. Under /api/, Django's own 404 and 405 pages (an unknown URL) become JSON errors of
    the API's shape. Placed first after SecurityMiddleware, so no session is loaded for it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        in_api = request.path.startswith(API_PREFIX)
        if not in_api and bearer_token(request) is not None:
            return json_error(
                403,
                "api_key_not_allowed",
                "API keys are only accepted under /api/; back-office pages need a signed-in user.",
            )
        response = self.get_response(request)
        if (
            in_api
            and response.status_code in (404, 405)
            and not response.get("Content-Type", "").startswith("application/")
        ):
            if response.status_code == 404:
                return json_error(404, "not_found", f"There is no API endpoint at {request.path}.")
            return json_error(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}.")
        return response
