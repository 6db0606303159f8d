"""POST /api/v1/events/: the webshop sends back what happened to the items we recommended.

Status codes (the body says what happened to each event, whatever the status):

- 200: every event is stored now or was already (``accepted`` + ``duplicates`` = all).
- 207 Multi-Status: some events were stored, others refused; ``rejected`` lists the refused
  ones with their index in the batch, event_id and a message per field. Resending the same
  batch is safe (the stored ones come back as duplicates) but will not fix the refused ones.
- 400: nothing could be used: the body is not ``{"events": [...]}`` with 1 to 1000 events
  (``error`` only), or every event was refused (``error`` plus the same counts and
  ``rejected`` as a 207).
- 401 / 403 / 429 as for every endpoint; 403 also for a key without the "events" scope and
  for back-office sessions (they may only read the API).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from merchandising.api.exceptions import error_body
from merchandising.api.permissions import EventsAccess, client_of
from merchandising.api.serializers import ErrorDetailSerializer, ErrorSerializer
from merchandising.models import WebshopEvent
from merchandising.services.events import (
    ACCOUNT_LENGTH,
    EVENT_ID_LENGTH,
    FUTURE_SKEW,
    MAX_AGE,
    MAX_BATCH,
    EventBatchError,
    EventIngestResult,
    events_ingest,
)

# --- the documented shapes (the service checks each event itself: one bad event must not
# --- refuse the batch, which a DRF serializer's all-or-nothing validation would do) --------------


class EventSerializer(serializers.Serializer):
    event_id = serializers.CharField(
        max_length=EVENT_ID_LENGTH,
        help_text="Chosen by the webshop, unique per event (e.g. a UUID): sending it again is a no-op.",
    )
    type = serializers.ChoiceField(choices=WebshopEvent.Kind.choices)
    token = serializers.CharField(help_text="The tracking token of the recommended item, as the API gave it.")
    account = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=ACCOUNT_LENGTH,
        help_text="The customer account id, if known.",
    )  # fmt: skip
    occurred_at = serializers.DateTimeField(
        help_text=f"ISO 8601 with a time zone; at most {int(FUTURE_SKEW.total_seconds() // 60)} minutes in the "
        f"future and at most {MAX_AGE.days} days old."
    )


class EventBatchSerializer(serializers.Serializer):
    events = EventSerializer(many=True, min_length=1, max_length=MAX_BATCH)


class RejectedEventSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the event in the batch, from 0.")
    event_id = serializers.CharField(allow_null=True, help_text="Null when the event_id itself was unusable.")
    errors = serializers.DictField(child=serializers.CharField(), help_text="A message per offending field.")


class EventBatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events stored by this request.")
    duplicates = serializers.IntegerField(help_text="Events already stored (same event_id): nothing changed.")
    rejected = RejectedEventSerializer(many=True)


class EventBatchErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
    accepted = serializers.IntegerField(required=False)
    duplicates = serializers.IntegerField(required=False)
    rejected = RejectedEventSerializer(many=True, required=False)


def result_body(result: EventIngestResult) -> dict:
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": [
            {"index": rejection.index, "event_id": rejection.event_id, "errors": rejection.errors}
            for rejection in result.rejected
        ],
    }


_EXAMPLE_RESULT = {
    "accepted": 1,
    "duplicates": 0,
    "rejected": [{"index": 1, "event_id": "b7f3", "errors": {"occurred_at": "older than 90 days"}}],
}


class EventsView(APIView):
    permission_classes = [EventsAccess]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="events_create",
        summary="Send a batch of webshop events",
        description=__doc__,
        request=EventBatchSerializer,
        responses={
            200: OpenApiResponse(EventBatchResultSerializer, description="Every event stored (or already stored)."),
            207: OpenApiResponse(
                EventBatchResultSerializer,
                description="Some events stored, some refused (see rejected).",
                examples=[OpenApiExample("partly refused", value=_EXAMPLE_RESULT)],
            ),
            400: OpenApiResponse(
                EventBatchErrorSerializer, description="Nothing stored: a bad body, or every event refused."
            ),
            401: OpenApiResponse(ErrorSerializer, description="No key, or a bad, revoked or expired one."),
            403: OpenApiResponse(
                ErrorSerializer, description='The key lacks the "events" scope, or a back-office session.'
            ),
            413: OpenApiResponse(ErrorSerializer, description="The body is larger than 2.5 MB: refused unread."),
            415: OpenApiResponse(ErrorSerializer, description="The body is not JSON."),
            429: OpenApiResponse(ErrorSerializer, description="Too many requests: see Retry-After."),
        },
        tags=["events"],
    )  # fmt: skip
    def post(self, request):
        data = request.data
        if not isinstance(data, dict) or "events" not in data:
            body = error_body("bad_request", 'The body must be a JSON object {"events": [...]}.')
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        client = client_of(request)
        try:
            result = events_ingest(
                events=data["events"], client_id=client.pk if client is not None else None, actor=client
            )
        except EventBatchError as exc:
            return Response(error_body("invalid_batch", str(exc)), status=status.HTTP_400_BAD_REQUEST)
        body = result_body(result)
        if not result.rejected:
            return Response(body, status=status.HTTP_200_OK)
        if result.accepted or result.duplicates:
            return Response(body, status=status.HTTP_207_MULTI_STATUS)
        count = len(result.rejected)
        message = f"None of the {count} events could be stored; see rejected." if count > 1 else (
            "The event could not be stored; see rejected."
        )  # fmt: skip
        return Response({**error_body("invalid_events", message), **body}, status=status.HTTP_400_BAD_REQUEST)
