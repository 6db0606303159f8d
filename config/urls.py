from django.contrib import admin
from django.urls import include, path

from config import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz/", views.healthz, name="healthz"),
    # The second factor (config.middleware.MFA_PREFIX): reachable before it is passed.
    path("account/mfa/", views.mfa_verify, name="mfa_verify"),
    path("account/mfa/setup/", views.mfa_setup, name="mfa_setup"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_router", namespace="api")),
    path("", include("merchandising.urls")),
]
