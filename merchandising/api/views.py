"""The webshop API's views: parse the request, call a selector, format the answer (caching
headers included). Routes: config/api_router.py. Guide: docs/api.md."""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.http import HttpResponse
from django.templatetags.static import static
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.html import format_html
from django.utils.http import parse_etags
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiJsonRenderer2, OpenApiYamlRenderer
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import exceptions
from rest_framework.compat import LONG_SEPARATORS, SHORT_SEPARATORS
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from merchandising.api import serializers
from merchandising.api.authentication import bearer_token
from merchandising.api.permissions import ReadAccess
from merchandising.selectors.api import (
    cache_max_age,
    cart_recommendations_payload,
    links_sync_page,
    recommendations_build,
    recommendations_request,
)

# Tokens in a cached body are signed with SECRET_KEY: a new key must not serve old bodies.
_BODY_CACHE_PREFIX = "api-body:" + hashlib.sha256(f"body-cache:{settings.SECRET_KEY}".encode()).hexdigest()[:12]

ERRORS = {
    400: OpenApiResponse(serializers.ErrorSerializer, description="Bad parameter (or a key in the query string)."),
    401: OpenApiResponse(serializers.ErrorSerializer, description="No key, or an unknown, revoked or expired key."),
    403: OpenApiResponse(serializers.ErrorSerializer, description="The key's client lacks the scope."),
    429: OpenApiResponse(serializers.ErrorSerializer, description="Throttled: see the Retry-After header."),
}
#: A request body is refused unread above its limit (config.middleware.RequestSizeLimitMiddleware).
TOO_LARGE = OpenApiResponse(
    serializers.ErrorSerializer, description="The body is larger than 2.5 MB: refused before it is read."
)


_JSON = JSONRenderer()
#: DRF's JSONRenderer (the API's renderer) as one encoder built once: the same options, so
#: the same bytes for the plain dicts, lists, strings, numbers and None of the bodies (which
#: need none of DRF's encoder's extra types), without the renderer's per-call set-up.
_json_encoder = json.JSONEncoder(
    ensure_ascii=_JSON.ensure_ascii,
    allow_nan=not _JSON.strict,
    separators=SHORT_SEPARATORS if _JSON.compact else LONG_SEPARATORS,
)


def render_json(data) -> bytes:
    """``JSONRenderer().render(data)`` for a body of plain JSON types: identical bytes."""
    return _json_encoder.encode(data).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def _cacheable(response: HttpResponse, etag: str | None = None) -> HttpResponse:
    if etag:
        response["ETag"] = etag
    response["Cache-Control"] = f"max-age={cache_max_age()}"
    patch_vary_headers(response, ["Authorization"])
    return response


def _matches(request: Request, etag: str) -> bool:
    header = request.META.get("HTTP_IF_NONE_MATCH")
    if not header:
        return False
    # Weak comparison, as RFC 9110 asks for If-None-Match (a proxy may weaken our ETag).
    wanted = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == wanted for tag in parse_etags(header))


#: Valid query strings seen by this process and what they validated to, per serializer: a
#: webshop sends the same few query strings (often none) all day, and a DRF serializer costs
#: more CPU than the rest of a cached answer. Only for serializers whose validation is a pure
#: function of the query string (no database, no clock); errors are never kept.
_QUERY_MEMO_SIZE = 256
_query_memo: dict[tuple, dict] = {}


def _query(serializer_class, request: Request, *, memo: bool = False) -> dict:
    memo_key = (serializer_class, request.META.get("QUERY_STRING", "")) if memo else None
    if memo_key is not None:
        known = _query_memo.get(memo_key)
        if known is not None:
            return dict(known)
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    unknown = sorted(set(request.query_params) - set(serializer.fields))
    if unknown:
        raise exceptions.ValidationError(f"Unknown parameter(s): {', '.join(unknown)}.", code="unknown_parameter")
    if memo_key is not None:
        if len(_query_memo) >= _QUERY_MEMO_SIZE:
            _query_memo.clear()
        _query_memo[memo_key] = dict(serializer.validated_data)
    return serializer.validated_data


class ProductRecommendationsView(APIView):
    @extend_schema(
        operation_id="product_recommendations",
        summary="What the webshop may show for a product",
        description="Published links of the product, grouped by type, in display order, with a tracking "
        "token per item. Conditional: send the ETag back in If-None-Match to get 304.",
        parameters=[
            serializers.RecommendationsQuerySerializer,
            OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, required=False),
        ],
        responses={
            200: serializers.RecommendationsSerializer,
            304: OpenApiResponse(description="Not modified: your cached answer is current."),
            404: OpenApiResponse(serializers.ErrorSerializer, description="No product has this SKU."),
            **ERRORS,
        },
    )
    def get(self, request: Request, sku: str) -> Response:
        params = _query(serializers.RecommendationsQuerySerializer, request, memo=True)
        resolved = recommendations_request(
            sku=sku, account=params.get("account"), touchpoint=params["touchpoint"], limit=params.get("limit")
        )
        etag = resolved.etag
        if _matches(request, etag):
            return _cacheable(HttpResponse(status=304), etag)
        # The ETag names everything the body depends on, so the rendered body can be shared by
        # all processes under it (the project's cache: Redis in production): most requests then
        # cost the key lookup, the head query and one cache read.
        # API_BODY_CACHE_SECONDS=0 turns the cache off: no read and no write (a write with
        # timeout 0 stores nothing, and costs a round trip to Redis).
        seconds = settings.API_BODY_CACHE_SECONDS
        cache_key = f"{_BODY_CACHE_PREFIX}:{etag.strip(chr(34))}" if seconds else None
        body = cache.get(cache_key) if cache_key else None
        if body is None:
            body = render_json(recommendations_build(resolved))
            if cache_key:
                cache.set(cache_key, body, timeout=seconds)
        return _cacheable(HttpResponse(body, content_type="application/json"), etag)


class CartRecommendationsView(APIView):
    @extend_schema(
        operation_id="cart_recommendations",
        summary="Recommendations for a whole cart",
        description="The links of all cart items merged per type; items already in the cart are left out; "
        "a target suggested by several cart items ranks higher.",
        request=serializers.CartSerializer,
        responses={200: serializers.CartRecommendationsSerializer, 413: TOO_LARGE, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError("The body must be a JSON object.", code="bad_parameter")
        serializer = serializers.CartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        payload = cart_recommendations_payload(
            skus=data["skus"], account=data.get("account"), touchpoint=data["touchpoint"], limit=data.get("limit")
        )
        response = Response(payload)
        response["Cache-Control"] = "no-store"
        return response


class LinksView(APIView):
    @extend_schema(
        operation_id="links_sync",
        summary="Bulk sync of the published links",
        description="Pages in (updated_at, id) order. Without updated_since: the links visible today. With "
        "it: every link changed since then, removed ones as removed=true. Follow next_cursor to the end.",
        parameters=[serializers.LinksQuerySerializer],
        responses={200: serializers.LinksPageSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        params = _query(serializers.LinksQuerySerializer, request)
        page = links_sync_page(
            link_type=params.get("type"),
            source=params.get("source"),
            updated_since=params.get("updated_since"),
            cursor=params.get("cursor"),
            limit=params.get("limit"),
        )
        next_url = None
        if page.next_cursor:
            query = request.query_params.copy()
            query["cursor"] = page.next_cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        response = Response({"results": page.results, "next_cursor": page.next_cursor, "next": next_url})
        response["Cache-Control"] = "no-cache"
        patch_vary_headers(response, ["Authorization"])
        return response


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 schema: JSON by default (and errors in JSON), YAML with ?format=yaml."""

    renderer_classes = [JSONRenderer, OpenApiJsonRenderer, OpenApiJsonRenderer2, OpenApiYamlRenderer]
    permission_classes = [ReadAccess]
    authentication_classes = APIView.authentication_classes


class DocsView(APIView):
    """The API reference (Redoc, from drf-spectacular-sidecar's static files). No inline script:
    the <redoc> element starts itself, which the Content-Security-Policy (script-src 'self')
    allows. A browser without a session is sent to the login page."""

    renderer_classes = [JSONRenderer]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        html = format_html(
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Webshop API</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
            '<body><redoc spec-url="{}" disable-search hide-download-button></redoc>'
            '<script src="{}"></script></body></html>',
            reverse("api:schema") + "?format=json",
            static("drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"),
        )
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        patch_vary_headers(response, ["Authorization"])
        return response

    def handle_exception(self, exc):
        if isinstance(exc, exceptions.NotAuthenticated) and bearer_token(self.request) is None:
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)
