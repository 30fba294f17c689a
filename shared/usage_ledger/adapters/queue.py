"""SQS: the accepted-events queue between POST /v1/events and the ingest function, and its message format."""
from __future__ import annotations

import json
import uuid
from decimal import Decimal

from usage_ledger.adapters import aws
from usage_ledger.domain.calendar import iso, parse_instant
from usage_ledger.domain.model import UsageEvent


def encode_message(events: list[UsageEvent], batch_id: str | None = None) -> str:
    """One SQS message per accepted request. Its `batch_id` owns the events' claims: it survives a
    DLQ redrive (which gives the message a new SQS id), so a redriven batch is not taken for a
    duplicate of itself."""
    return json.dumps({"batch_id": batch_id or uuid.uuid4().hex, "events": [
        {"id": e.id, "source": e.source, "team_id": e.team_id, "resource_id": e.resource_id,
         "quantity": str(e.quantity), "time": iso(e.time), "user_id": e.user_id, "app_id": e.app_id}
        for e in events
    ]}, separators=(",", ":"))


def decode_message(body: str, message_id: str) -> tuple[str, list[UsageEvent]]:
    """The batch id (the SQS message id for messages written without one) and the events."""
    payload = json.loads(body)
    return payload.get("batch_id") or message_id, [
        UsageEvent(id=raw["id"], source=raw["source"], team_id=raw["team_id"], resource_id=raw["resource_id"],
                   quantity=Decimal(raw["quantity"]), time=parse_instant(raw["time"]), user_id=raw.get("user_id"),
                   app_id=raw.get("app_id"))
        for raw in payload["events"]
    ]


class EventQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, events: list[UsageEvent]) -> str:
        """Enqueue one request's events as one message; returns the SQS message id."""
        return aws.client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=encode_message(events))["MessageId"]
