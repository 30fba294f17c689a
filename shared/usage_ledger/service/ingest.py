"""Usage events in: validate and enqueue (POST /v1/events), then count each once and debit it.

Exactly-once without read-then-write, in two conditional steps per SQS message:
1. claim: one marker per (source, id) in the dedupe table, put with
   `attribute_not_exists(PK) OR message_id = :this` (100 per transaction), where the owner is the
   batch id that POST /v1/events wrote into the message (stable across redeliveries and DLQ
   redrives). A marker owned by another batch means a duplicate: that event is dropped here.
2. apply: per team and resource, one transaction that writes an APPLIED marker for
   (batch, team, resource), the balance item (conditional on its version), the payg cycle
   items (conditional on the cycle still being open) and the usage aggregates.
A crash between any two writes and a redelivery of the message replays both steps: the claim
is re-taken by the same message, and an APPLIED marker that exists means "already done".
"""
from __future__ import annotations

import json
import random
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from usage_ledger import clock
from usage_ledger.adapters import dynamo, ledger_store, queue, usage_store
from usage_ledger.config import settings
from usage_ledger.domain.calendar import cycle_by_index, iso, parse_instant
from usage_ledger.domain.ledger import CycleKey, apply_usage
from usage_ledger.domain.model import Resource, Subscription, UsageEvent
from usage_ledger.errors import BadRequest, FieldError, LedgerError, ValidationFailed

logger = Logger()

MAX_BATCH = 100
MAX_QUANTITY = Decimal(10) ** 12
MAX_DECIMALS = 6
DEDUPE_RETENTION = timedelta(days=25 * 31)  # each (source, id) counts once for 24 months
APPLIED_RETENTION = timedelta(days=15)  # longer than SQS keeps a message (14 days)
FUTURE_TOLERANCE = timedelta(days=1)
HISTORY_LIMIT = timedelta(days=730)
SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
# aggregate items that ride in the balance transaction; the rest go in their own transactions
FIRST_CHUNK_AGGREGATES = 60


class IngestRetry(LedgerError):
    """Lost a race too many times; SQS redelivers the message later."""


# ------------------------------------------------------------------ accept (HTTP)


def _text(event: dict[str, Any], name: str, path: str, errors: list[FieldError], limit: int,
          required: bool = True) -> str | None:
    value = event.get(name)
    if value is None:
        if required:
            errors.append(FieldError(path, "is required"))
        return None
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError(path, "must be a non-empty string"))
        return None
    if len(value) > limit:
        errors.append(FieldError(path, f"must be at most {limit} characters"))
        return None
    return value


def _quantity(value: Any, path: str, errors: list[FieldError]) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        errors.append(FieldError(path, "must be a JSON number of base units"))
        return None
    try:
        quantity = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        errors.append(FieldError(path, "must be a number"))
        return None
    if not quantity.is_finite() or quantity <= 0:
        errors.append(FieldError(path, "must be greater than 0"))
    elif quantity > MAX_QUANTITY:
        errors.append(FieldError(path, f"must be at most {MAX_QUANTITY}"))
    elif quantity.as_tuple().exponent < -MAX_DECIMALS:  # type: ignore[operator]
        errors.append(FieldError(path, f"must have at most {MAX_DECIMALS} decimal places"))
    else:
        return quantity.normalize()
    return None


def parse_events(payload: Any, content_type: str, now: datetime) -> list[UsageEvent]:
    """Validate a single event or a batch; all or nothing (contract section 3, Producers)."""
    content_type = (content_type or "").split(";")[0].strip().lower()
    if content_type == SINGLE or (content_type == "application/json" and isinstance(payload, dict)):
        if not isinstance(payload, dict):
            raise ValidationFailed.single("body", "must be one CloudEvent object")
        raw_events, prefix = [payload], lambda index: ""
    elif content_type == BATCH or (content_type == "application/json" and isinstance(payload, list)):
        if not isinstance(payload, list):
            raise ValidationFailed.single("body", "must be an array of CloudEvents")
        if not 1 <= len(payload) <= MAX_BATCH:
            raise ValidationFailed.single("body", f"must hold 1 to {MAX_BATCH} events, not {len(payload)}")
        raw_events, prefix = payload, lambda index: f"[{index}]."
    else:
        raise BadRequest(f"Content-Type must be {SINGLE} or {BATCH}.")

    errors: list[FieldError] = []
    parsed: list[tuple[int, dict[str, Any]]] = []
    for index, raw in enumerate(raw_events):
        at = prefix(index)
        if not isinstance(raw, dict):
            errors.append(FieldError(at.rstrip(".") or "body", "must be a CloudEvent object"))
            continue
        before = len(errors)
        if raw.get("specversion") != "1.0":
            errors.append(FieldError(f"{at}specversion", 'must be "1.0"'))
        if raw.get("type") != "usage.recorded":
            errors.append(FieldError(f"{at}type", 'must be "usage.recorded"'))
        event_id = _text(raw, "id", f"{at}id", errors, 256)
        source = _text(raw, "source", f"{at}source", errors, 512)
        subject = _text(raw, "subject", f"{at}subject", errors, 128)
        when = None
        raw_time = _text(raw, "time", f"{at}time", errors, 64)
        if raw_time is not None:
            try:
                when = parse_instant(raw_time)
                if when > now + FUTURE_TOLERANCE:
                    errors.append(FieldError(f"{at}time", "must not be more than a day in the future"))
                elif when < now - HISTORY_LIMIT:
                    errors.append(FieldError(f"{at}time", "must be within the last 24 months"))
            except ValueError as error:
                errors.append(FieldError(f"{at}time", f"must be an RFC 3339 timestamp with an offset ({error})"))
        data = raw.get("data")
        resource_id = quantity = None
        user_id = app_id = None
        if not isinstance(data, dict):
            errors.append(FieldError(f"{at}data", "must be an object"))
        else:
            resource_id = _text(data, "resource_id", f"{at}data.resource_id", errors, 128)
            if resource_id is not None and ledger_store.resource(resource_id) is None:
                errors.append(FieldError(f"{at}data.resource_id", "is not a catalogue resource"))
            if "quantity" not in data:
                errors.append(FieldError(f"{at}data.quantity", "is required"))
            else:
                quantity = _quantity(data["quantity"], f"{at}data.quantity", errors)
            user_id = _text(data, "user_id", f"{at}data.user_id", errors, 128, required=False)
            app_id = _text(data, "app_id", f"{at}data.app_id", errors, 128, required=False)
        if len(errors) == before:
            parsed.append((index, {"id": event_id, "source": source, "team_id": subject, "resource_id": resource_id,
                                   "quantity": quantity, "time": when, "user_id": user_id, "app_id": app_id}))

    subjects = {fields["team_id"] for _, fields in parsed}
    known = ledger_store.existing_teams(subjects)
    for index, fields in parsed:
        if fields["team_id"] not in known:
            errors.append(FieldError(f"{prefix(index)}subject", "is not an existing team"))
    if errors:
        raise ValidationFailed(errors)
    return [UsageEvent(**fields) for _, fields in parsed]


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


def accept(payload: Any, content_type: str) -> int:
    """POST /v1/events: validate everything, then enqueue one SQS message for the request."""
    events = parse_events(payload, content_type, clock.now())
    queue.send(settings().events_queue_url, encode_message(events))
    return len(events)


# ------------------------------------------------------------------ apply (SQS)


def dedupe_pk(event: UsageEvent) -> str:
    return "EVENT#" + dynamo.stable_hash(event.source, event.id, length=40)


def claim(batch_id: str, events: list[UsageEvent], now: datetime) -> list[UsageEvent]:
    """Take ownership of each (source, id) for this batch; return the events it owns."""
    first_by_key: dict[str, UsageEvent] = {}
    for event in events:
        first_by_key.setdefault(dedupe_pk(event), event)
    expires = int((now + DEDUPE_RETENTION).timestamp())
    owned: list[UsageEvent] = []
    keys = list(first_by_key)
    for start in range(0, len(keys), dynamo.MAX_TRANSACTION_ITEMS):
        chunk = keys[start:start + dynamo.MAX_TRANSACTION_ITEMS]
        for attempt in range(8):
            if not chunk:
                break
            try:
                dynamo.client().transact_write_items(TransactItems=[
                    {"Put": {
                        "TableName": settings().dedupe_table,
                        "Item": dynamo.to_item({"PK": key, "batch_id": batch_id, "expires_at": expires,
                                                "team_id": first_by_key[key].team_id}),
                        "ConditionExpression": "attribute_not_exists(PK) OR batch_id = :batch",
                        "ExpressionAttributeValues": dynamo.values({":batch": batch_id}),
                    }} for key in chunk
                ])
                owned.extend(first_by_key[key] for key in chunk)
                break
            except ClientError as error:
                codes = dynamo.cancellation_codes(error)
                if not codes:
                    raise
                duplicates = {key for key, code in zip(chunk, codes) if code == "ConditionalCheckFailed"}
                if duplicates:
                    logger.info("duplicate events dropped", extra={"count": len(duplicates)})
                chunk = [key for key in chunk if key not in duplicates]
                if not duplicates:  # a conflicting transaction: back off and try again
                    _backoff(attempt)
        else:
            raise IngestRetry("could not claim events; will retry")
    return owned


def apply_message(batch_id: str, events: list[UsageEvent], now: datetime | None = None) -> int:
    """Count and debit one batch's events; returns how many were new."""
    now = now or clock.now()
    owned = claim(batch_id, events, now)
    groups: dict[tuple[str, str], list[UsageEvent]] = defaultdict(list)
    for event in owned:
        groups[(event.team_id, event.resource_id)].append(event)
    for (team_id, resource_id), group in sorted(groups.items()):
        # a deterministic order: the same message replayed debits the same way
        group.sort(key=lambda event: (event.time, event.source, event.id))
        apply_group(batch_id, team_id, resource_id, group, now)
    return len(owned)


def _applied_marker(batch_id: str, team_id: str, resource_id: str, chunk: int, now: datetime) -> dict[str, Any]:
    return {"Put": {
        "TableName": settings().dedupe_table,
        "Item": dynamo.to_item({"PK": f"APPLIED#{batch_id}#{team_id}#{resource_id}#{chunk}",
                                "expires_at": int((now + APPLIED_RETENTION).timestamp())}),
        "ConditionExpression": "attribute_not_exists(PK)",
    }}


def _cycle_update(team_id: str, subscription: Subscription, key: CycleKey, units: int) -> dict[str, Any]:
    assert subscription.purchased_at and subscription.timezone
    cycle = cycle_by_index(subscription.purchased_at, subscription.timezone, key.index)
    return {"Update": {
        "TableName": ledger_store.table(),
        "Key": dynamo.to_item({"PK": ledger_store.team_pk(team_id),
                               "SK": ledger_store.cycle_sk(subscription.resource_id, key.subscription_id, key.index)}),
        "UpdateExpression": (
            "SET entity = :entity, team_id = :team, resource_id = :resource, subscription_id = :sub, "
            "cycle_index = :index, cycle_start = :start, cycle_end = :end, ends_at = :ends, "
            "#status = if_not_exists(#status, :open), GSI1PK = if_not_exists(GSI1PK, :gsi), GSI1SK = :ends "
            "ADD charged_units :units"
        ),
        "ConditionExpression": "attribute_not_exists(PK) OR #status = :open",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": dynamo.values({
            ":entity": "cycle", ":team": team_id, ":resource": subscription.resource_id,
            ":sub": key.subscription_id, ":index": key.index, ":start": cycle.start_date.isoformat(),
            ":end": cycle.end_date.isoformat(), ":ends": iso(cycle.ends_at), ":open": "open",
            ":gsi": ledger_store.OPEN_CYCLES, ":units": units,
        }),
    }}


def apply_group(batch_id: str, team_id: str, resource_id: str, events: list[UsageEvent], now: datetime) -> None:
    resource = ledger_store.resource(resource_id)
    if resource is None:
        raise LedgerError(f"resource {resource_id!r} left the catalogue")
    aggregates = usage_store.aggregate_updates(team_id, resource_id, events)
    first, rest = aggregates[:FIRST_CHUNK_AGGREGATES], aggregates[FIRST_CHUNK_AGGREGATES:]
    _apply_balance(batch_id, team_id, resource, events, first, now)
    # aggregates past the first chunk: deterministic chunks, each guarded by its own marker
    size = dynamo.MAX_TRANSACTION_ITEMS - 1
    for number, start in enumerate(range(0, len(rest), size), start=1):
        _transact_once([_applied_marker(batch_id, team_id, resource_id, number, now), *rest[start:start + size]])


def _commit(items: list[dict[str, Any]]) -> bool | None:
    """Write a transaction whose first item is an APPLIED marker. True: written; False: the marker
    exists, so it was applied before (a crash or a concurrent redelivery); None: lost a race
    (a version, a cycle closing, a conflicting transaction) and worth redoing."""
    try:
        dynamo.client().transact_write_items(TransactItems=items)
        return True
    except ClientError as error:
        codes = dynamo.cancellation_codes(error)
        if not codes:
            raise
        return False if codes[0] == "ConditionalCheckFailed" else None


def _transact_once(items: list[dict[str, Any]]) -> bool:
    for attempt in range(8):
        outcome = _commit(items)
        if outcome is not None:
            return outcome
        _backoff(attempt)
    raise IngestRetry("transaction kept conflicting; will retry")


def _apply_balance(batch_id: str, team_id: str, resource: Resource, events: list[UsageEvent],
                   aggregates: list[dict[str, Any]], now: datetime) -> bool:
    """Debit the events against a fresh read of the balance; retry when a writer raced us."""
    resource_id = resource.resource_id
    for attempt in range(12):
        ledger = ledger_store.load_team(team_id, resource_id=resource_id).ledger(resource_id)
        debit = apply_usage(ledger.state, resource, ledger.subscriptions, events, now=now,
                            closed_cycles=frozenset(ledger.closed_cycles),
                            stored_cycles=frozenset(ledger.cycle_units),
                            grace=timedelta(minutes=settings().billing_grace_minutes))
        balance = ledger_store.balance_to_item(team_id, resource_id, resource.kind, debit.state)
        if resource.kind == "api":  # the scheduled alert run finds api balances through GSI1
            balance.update(ledger_store.api_index_keys(team_id, resource_id))
        balance_put: dict[str, Any] = {"TableName": ledger_store.table(), "Item": dynamo.to_item(balance)}
        if ledger.has_balance_item:
            balance_put["ConditionExpression"] = "version = :version"
            balance_put["ExpressionAttributeValues"] = dynamo.values({":version": ledger.state.version})
        else:
            balance_put["ConditionExpression"] = "attribute_not_exists(PK)"
        subscriptions = {s.subscription_id: s for s in ledger.subscriptions}
        cycles = [_cycle_update(team_id, subscriptions[key.subscription_id], key, units)
                  for key, units in sorted(debit.payg_by_cycle.items(), key=lambda pair: pair[0].index)]
        items = [_applied_marker(batch_id, team_id, resource_id, 0, now), {"Put": balance_put}, *cycles,
                 *aggregates]
        if len(items) > dynamo.MAX_TRANSACTION_ITEMS:
            raise LedgerError("a message spans too many billing cycles to apply in one transaction")
        outcome = _commit(items)
        if outcome is not None:
            return outcome
        _backoff(attempt)  # the balance version moved or a cycle closed: re-read and redo
    raise IngestRetry("balance kept changing under us; will retry")


def _backoff(attempt: int) -> None:
    time.sleep(min(0.02 * (2 ** attempt), 0.5) * random.random())
