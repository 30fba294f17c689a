"""The processor events acted on (DedupeTable): one marker per Stripe event id, put if absent."""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import PutError

from usage_ledger.adapters.dynamodb.errors import is_condition_failure
from usage_ledger.adapters.dynamodb.models import ProcessorEventMarker

# Stripe redelivers an unacknowledged event for up to 3 days; a marker outlives that
PROCESSOR_EVENT_RETENTION = timedelta(days=30)


def processor_event_pk(event_id: str) -> str:
    return f"STRIPE_EVENT#{event_id}"


class ProcessorEventMarkers:
    def claim(self, event_id: str, event_type: str, now: datetime) -> bool:
        marker = ProcessorEventMarker(processor_event_pk(event_id), event_type=event_type,
                                      received_at=now.isoformat(), expires_at=now + PROCESSOR_EVENT_RETENTION)
        try:
            marker.save(condition=ProcessorEventMarker.PK.does_not_exist())
        except PutError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def release(self, event_id: str) -> None:
        ProcessorEventMarker(processor_event_pk(event_id)).delete()
