"""Throttling per API client: at most ``ApiClient.rate_per_minute`` requests per minute (the
setting API_RATE_PER_MINUTE when it has none), counted in the project's cache (Redis in
production, so all processes share the count).

A fixed one-minute window with an atomic increment: one cache operation per request, no lock.
A client may fit up to twice its rate into the two seconds around a window's boundary, which
is acceptable for protecting the server; Retry-After says when the window ends."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from merchandising.api.permissions import client_of

WINDOW = 60


class ClientRateThrottle(BaseThrottle):
    def __init__(self):
        self._wait: float | None = None

    def _identity(self, request) -> tuple[str, int]:
        client = client_of(request)
        if client is not None:
            return f"client:{client.pk}", client.rate_per_minute or settings.API_RATE_PER_MINUTE
        user = request.user
        if user is not None and user.is_authenticated:
            return f"user:{user.pk}", settings.API_RATE_PER_MINUTE
        return f"ip:{self.get_ident(request)}", settings.API_RATE_PER_MINUTE

    def allow_request(self, request, view) -> bool:
        identity, rate = self._identity(request)
        now = time.time()
        window = int(now // WINDOW)
        key = f"api-throttle:{identity}:{window}"
        try:
            count = cache.incr(key)
        except ValueError:  # first request of the window
            count = 1 if cache.add(key, 1, timeout=WINDOW + 5) else cache.incr(key)
        if count <= rate:
            return True
        self._wait = (window + 1) * WINDOW - now
        return False

    def wait(self) -> float | None:
        return self._wait
