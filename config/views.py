from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from catalog.selectors import catalog_overview
from config.access import role_required


@role_required()
def home(request):
    """The back office's front page: where to go next, and the state of the catalog."""
    return render(request, "home.html", {"overview": catalog_overview(), "title": "Overview"})


@require_GET
@never_cache
def healthz(request):
    """For load balancers and monitoring: answers without login and reveals nothing but health."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any database failure means "unhealthy"
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
