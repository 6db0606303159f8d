"""Every URL of the webshop API, /api/v1/ (included by config/urls.py). Guide: docs/api.md."""

from django.urls import path

from merchandising.api import events, views

app_name = "api"

urlpatterns = [
    path("products/<str:sku>/recommendations/", views.ProductRecommendationsView.as_view(), name="recommendations"),
    path("cart/recommendations/", views.CartRecommendationsView.as_view(), name="cart-recommendations"),
    path("links/", views.LinksView.as_view(), name="links"),
    # The event intake: the one write besides the cart (scope "events", see merchandising/api/events.py).
    path("events/", events.EventsView.as_view(), name="events"),
    path("schema/", views.SchemaView.as_view(), name="schema"),
    path("docs/", views.DocsView.as_view(), name="docs"),
]
