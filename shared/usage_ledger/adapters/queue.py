"""SQS: the accepted-events FIFO queue between POST /v1/events and the ingest function, its message
format, and the work queues of the fanned-out scheduled jobs."""
from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger

from usage_ledger.adapters import aws
from usage_ledger.domain.calendar import iso, parse_instant
from usage_ledger.domain.errors import Contended
from usage_ledger.domain.ids import stable_hash
from usage_ledger.domain.model import UsageEvent
from usage_ledger.retry import redelivery_delay

logger = Logger(child=True)

MAX_MESSAGE_BYTES = 256 * 1024  # SQS's limit for one message, and for one SendMessageBatch call
# a message's share of a 10-entry batch call, with room for the entry's ids and attributes
MESSAGE_BUDGET = MAX_MESSAGE_BYTES // 10 - 1024
MAX_EVENTS_PER_MESSAGE = 100
SEND_ATTEMPTS = 3


def _event(e: UsageEvent) -> dict[str, Any]:
    return {"id": e.id, "source": e.source, "team_id": e.team_id, "resource_id": e.resource_id,
            "quantity": str(e.quantity), "time": iso(e.time), "user_id": e.user_id, "app_id": e.app_id}


def encode_message(events: list[UsageEvent], batch_id: str | None = None) -> str:
    """One SQS message of accepted events. Its `batch_id` owns the events' claims: it survives a
    DLQ redrive (which gives the message a new SQS id), so a redriven batch is not taken for a
    duplicate of itself."""
    return json.dumps({"batch_id": batch_id or uuid.uuid4().hex, "events": [_event(e) for e in events]},
                      separators=(",", ":"))


def decode_message(body: str, message_id: str) -> tuple[str, list[UsageEvent]]:
    """The batch id (the SQS message id for messages written without one) and the events."""
    payload = json.loads(body)
    return payload.get("batch_id") or message_id, [
        UsageEvent(id=raw["id"], source=raw["source"], team_id=raw["team_id"], resource_id=raw["resource_id"],
                   quantity=Decimal(raw["quantity"]), time=parse_instant(raw["time"]), user_id=raw.get("user_id"),
                   app_id=raw.get("app_id"))
        for raw in payload["events"]
    ]


def message_group(team_id: str, resource_id: str) -> str:
    """The FIFO message group of a (team, resource): one writer at a time per balance.
    MessageGroupId allows 128 characters; two identifiers may be longer together."""
    group = f"{team_id}/{resource_id}"
    return group if len(group) <= 128 else f"h:{stable_hash(team_id, resource_id, length=64)}"


def deduplication_id(events: list[UsageEvent]) -> str:
    """The same events in a retried send (or a producer's retried request within SQS's 5-minute
    window) give the same id, and SQS keeps the first message only."""
    return stable_hash(*(json.dumps(_event(e), sort_keys=True) for e in events), length=64)


def _chunks(events: list[UsageEvent]) -> Iterator[list[UsageEvent]]:
    """Consecutive runs of at most MAX_EVENTS_PER_MESSAGE events whose message fits MESSAGE_BUDGET."""
    chunk: list[UsageEvent] = []
    size = 64  # the envelope
    for event in events:
        cost = len(json.dumps(_event(event), separators=(",", ":")).encode()) + 1
        if chunk and (len(chunk) == MAX_EVENTS_PER_MESSAGE or size + cost > MESSAGE_BUDGET):
            yield chunk
            chunk, size = [], 64
        chunk.append(event)
        size += cost
    if chunk:
        yield chunk


def _send_all(queue_url: str, entries: list[dict[str, Any]]) -> None:
    """SendMessageBatch in tens; entries SQS refused are sent again (ids make that idempotent)."""
    sqs = aws.client("sqs")
    for start in range(0, len(entries), 10):
        pending = entries[start:start + 10]
        for _ in range(SEND_ATTEMPTS):
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=pending)
            refused = {failure["Id"] for failure in response.get("Failed") or []}
            pending = [entry for entry in pending if entry["Id"] in refused]
            if not pending:
                break
        else:
            raise Contended(f"SQS refused {len(pending)} message(s); the request may be sent again")


class EventQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url
        self.fifo = queue_url.endswith(".fifo")

    def redeliver_soon(self, records: list[dict[str, Any]]) -> None:
        """Failed messages of this queue (Lambda SQS records) come back after retry.redelivery_delay
        of their receive count instead of the whole visibility timeout. Best effort: a refusal
        leaves a message to its timeout, as before."""
        name = self.queue_url.rstrip("/").rsplit("/", 1)[-1]
        entries = [{"Id": str(number), "ReceiptHandle": record["receiptHandle"],
                    "VisibilityTimeout": redelivery_delay(
                        int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1))}
                   for number, record in enumerate(records)
                   if str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1] == name]
        for start in range(0, len(entries), 10):
            try:
                refused = aws.client("sqs").change_message_visibility_batch(
                    QueueUrl=self.queue_url, Entries=entries[start:start + 10]).get("Failed", [])
            except Exception as error:  # noqa: BLE001 - the messages keep their visibility timeout
                logger.warning("could not shorten failed messages' visibility", extra={"reason": str(error)})
                continue
            if refused:
                logger.warning("SQS kept some failed messages' visibility", extra={"refused": refused})

    def send(self, events: list[UsageEvent]) -> int:
        """Enqueue one request's events: per (team, resource), messages of up to 100 events, each
        in its FIFO group with a content-derived deduplication id. Returns how many messages."""
        groups: dict[tuple[str, str], list[UsageEvent]] = defaultdict(list)
        for event in events:
            groups[(event.team_id, event.resource_id)].append(event)
        entries: list[dict[str, Any]] = []
        for (team_id, resource_id), group in groups.items():
            for chunk in _chunks(group):
                entry = {"Id": str(len(entries)), "MessageBody": encode_message(chunk)}
                if self.fifo:
                    entry["MessageGroupId"] = message_group(team_id, resource_id)
                    entry["MessageDeduplicationId"] = deduplication_id(chunk)
                entries.append(entry)
        _send_all(self.queue_url, entries)
        return len(entries)


class WorkQueue:
    """A fanned-out job's queue: JSON work items, ten to a SendMessageBatch call."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, items: list[dict[str, Any]]) -> int:
        entries = [{"Id": str(n), "MessageBody": json.dumps(item, separators=(",", ":"), sort_keys=True)}
                   for n, item in enumerate(items)]
        _send_all(self.queue_url, entries)
        return len(entries)
