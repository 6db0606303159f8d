"""The back-office pages of the merchandising app outside the Django admin. Each page group
lives in its own module of merchandising/web/ (review queue, links and publishing, dashboard)."""

from django.urls import include, path

from merchandising.web import dashboard, links, preview, review

app_name = "merchandising"

urlpatterns = [
    path("review/", include(review.urlpatterns)),
    path("", include(links.urlpatterns)),
    path("dashboard/", include(dashboard.urlpatterns)),
    path("preview/", include(preview.urlpatterns)),
]
