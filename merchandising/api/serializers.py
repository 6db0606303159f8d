"""Input validation and the documented (OpenAPI) shape of the webshop API's answers.

The bodies themselves are built as plain dicts by merchandising/selectors/api.py (speed: no
per-field serializer work on the hot path); these output serializers describe them for the
schema, and a test checks that both list the same fields."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from merchandising.api.tokens import TOUCHPOINTS
from merchandising.models import LinkOrigin, LinkType
from merchandising.selectors.api import CART_TOUCHPOINTS

# --- input -----------------------------------------------------------------------------------------


class StrictCharField(serializers.CharField):
    """A string and only a string: DRF's CharField turns 0, 1.5 (and so an account id sent as
    a number) into "0" and "1.5", which would then match, or silently miss, an account whose
    id is that text. A JSON body must say what it means, so anything but a string is refused."""

    default_error_messages = {"invalid": "Must be a string (JSON text in quotes), not {kind}."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", kind=_json_kind(data))
        return super().to_internal_value(data)


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _limit_field(default_name: str, max_name: str, help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=getattr(settings, max_name),
        help_text=f"{help_text} Default {getattr(settings, default_name)}, at most {getattr(settings, max_name)}.",
    )


class RecommendationsQuerySerializer(serializers.Serializer):
    touchpoint = serializers.ChoiceField(
        choices=TOUCHPOINTS, default="product_page", help_text="Where the webshop shows the items."
    )
    account = serializers.CharField(
        required=False,
        max_length=64,
        help_text="The customer account id (as in the orders export); its brand preferences apply. "
        "An unknown account gets the generic answer.",
    )
    limit = _limit_field("API_DEFAULT_LIMIT", "API_MAX_LIMIT", "Items per link type.")


class CartSerializer(serializers.Serializer):
    skus = serializers.ListField(
        child=StrictCharField(max_length=64),
        min_length=1,
        max_length=settings.API_MAX_CART_SKUS,
        help_text="The SKUs in the cart. SKUs we do not know are ignored.",
    )
    account = StrictCharField(
        required=False, allow_null=True, max_length=64, help_text="The customer account id: a string, or null."
    )
    touchpoint = serializers.ChoiceField(choices=CART_TOUCHPOINTS, default="cart")
    limit = _limit_field("API_DEFAULT_LIMIT", "API_MAX_LIMIT", "Items per link type.")


class LinksQuerySerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=LinkType.choices, required=False, help_text="Only links of this type.")
    source = serializers.CharField(required=False, max_length=64, help_text="Only links of this source SKU.")
    updated_since = serializers.DateTimeField(
        required=False,
        help_text="ISO 8601 with a time zone. Only links changed since then, including removed ones (removed=true).",
    )
    cursor = serializers.CharField(required=False, max_length=200, help_text="The next_cursor of the previous page.")
    limit = _limit_field("API_SYNC_PAGE_SIZE", "API_SYNC_MAX_PAGE_SIZE", "Links per page.")

    #: Given empty, a parameter would count as absent (DRF's way for optional fields): an
    #: empty ``updated_since`` (a client that lost its stored time) would silently turn an
    #: incremental sync into a full one, an empty ``cursor`` restart from the first page.
    EMPTY_MESSAGES = {
        "updated_since": "Must not be empty: give an ISO 8601 time with a time zone "
        "(e.g. 2026-06-01T00:00:00Z), or leave the parameter out for a full sync.",
    }

    def to_internal_value(self, data):
        empty = [name for name in self.fields if name in data and data.get(name) == ""]
        if empty:
            raise serializers.ValidationError(
                {
                    name: [
                        self.EMPTY_MESSAGES.get(name, "Must not be empty: give a value, or leave the parameter out.")
                    ]
                    for name in empty
                },
                code="empty_parameter",
            )
        return super().to_internal_value(data)

    def validate_updated_since(self, value):
        if value.tzinfo is None:  # pragma: no cover - DRF makes naive input aware
            raise serializers.ValidationError("Give a time zone (e.g. 2026-06-01T00:00:00Z).")
        return value


# --- output (documentation) ----------------------------------------------------------------------------


class ProvenanceSerializer(serializers.Serializer):
    origin = serializers.ChoiceField(
        choices=LinkOrigin.choices, help_text="manual: curated; mined: from order history."
    )
    co_count = serializers.IntegerField(allow_null=True, help_text="Orders with both products (mined links).")
    confidence = serializers.FloatField(allow_null=True)
    lift = serializers.FloatField(allow_null=True)
    approved_by_role = serializers.CharField(help_text="The role(s) of whoever approved or added the link.")
    approved_at = serializers.DateTimeField(allow_null=True)
    run_id = serializers.IntegerField(allow_null=True, help_text="The mining run of a mined link.")


class ItemSerializer(serializers.Serializer):
    sku = serializers.CharField(help_text="The recommended product.")
    name = serializers.CharField()
    brand = serializers.CharField(allow_null=True)
    price = serializers.DecimalField(max_digits=12, decimal_places=4, coerce_to_string=True)
    currency = serializers.CharField()
    pack_quantity = serializers.IntegerField()
    unit = serializers.CharField()
    type = serializers.ChoiceField(choices=LinkType.choices)
    position = serializers.IntegerField(help_text="The curated position of the link (list order is display order).")
    provenance = ProvenanceSerializer()
    token = serializers.CharField(help_text="Send it back with the events of this item.")


class CartItemSerializer(ItemSerializer):
    suggested_by = serializers.ListField(
        child=serializers.CharField(), help_text="The cart SKUs that suggest this item, in cart order."
    )


class RecommendationsSerializer(serializers.Serializer):
    sku = serializers.CharField()
    generation = serializers.IntegerField(help_text="The publish generation this answer comes from.")
    touchpoint = serializers.ChoiceField(choices=TOUCHPOINTS)
    links = serializers.DictField(
        child=ItemSerializer(many=True), help_text="Per link type (only types with items), in display order."
    )


class CartRecommendationsSerializer(serializers.Serializer):
    skus = serializers.ListField(child=serializers.CharField())
    generation = serializers.IntegerField()
    touchpoint = serializers.ChoiceField(choices=CART_TOUCHPOINTS)
    links = serializers.DictField(child=CartItemSerializer(many=True))


class SyncLinkSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The link's id (stable across publishes).")
    source = serializers.CharField()
    target = serializers.CharField()
    type = serializers.ChoiceField(choices=LinkType.choices)
    updated_at = serializers.DateTimeField()
    removed = serializers.BooleanField(help_text="Delete this link from your index; no other fields then.")
    position = serializers.IntegerField(required=False)
    valid_from = serializers.DateField(required=False, allow_null=True)
    valid_until = serializers.DateField(required=False, allow_null=True)
    provenance = ProvenanceSerializer(required=False)


class LinksPageSerializer(serializers.Serializer):
    results = SyncLinkSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as cursor for the next page; null at the end.")
    next = serializers.URLField(allow_null=True, help_text="The next page's URL; null at the end.")


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(required=False, help_text="Per-field messages of a bad request body.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
