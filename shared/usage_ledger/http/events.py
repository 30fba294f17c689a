"""POST /v1/events at the edge: a structured CloudEvent or a batch, checked field by field."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from usage_ledger.domain.calendar import parse_instant
from usage_ledger.domain.commands import RecordUsage
from usage_ledger.domain.errors import BadRequest, FieldError, ValidationFailed
from usage_ledger.domain.model import UsageEvent

MAX_BATCH = 100
MAX_QUANTITY = Decimal(10) ** 12
MAX_DECIMALS = 6
FUTURE_TOLERANCE = timedelta(days=1)
HISTORY_LIMIT = timedelta(days=730)
SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


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


def _time(raw: dict[str, Any], path: str, errors: list[FieldError], now: datetime) -> datetime | None:
    text = _text(raw, "time", path, errors, 64)
    if text is None:
        return None
    try:
        when = parse_instant(text)
    except ValueError as error:
        errors.append(FieldError(path, f"must be an RFC 3339 timestamp with an offset ({error})"))
        return None
    if when > now + FUTURE_TOLERANCE:
        errors.append(FieldError(path, "must not be more than a day in the future"))
    elif when < now - HISTORY_LIMIT:
        errors.append(FieldError(path, "must be within the last 24 months"))
    return when


def _event(raw: dict[str, Any], at: str, errors: list[FieldError], now: datetime) -> UsageEvent | None:
    """One CloudEvent's fields, or None after adding what is wrong with it to `errors`."""
    before = len(errors)
    if raw.get("specversion") != "1.0":
        errors.append(FieldError(f"{at}specversion", 'must be "1.0"'))
    if raw.get("type") != "usage.recorded":
        errors.append(FieldError(f"{at}type", 'must be "usage.recorded"'))
    event_id = _text(raw, "id", f"{at}id", errors, 256)
    source = _text(raw, "source", f"{at}source", errors, 512)
    subject = _text(raw, "subject", f"{at}subject", errors, 128)
    when = _time(raw, f"{at}time", errors, now)
    data = raw.get("data")
    if not isinstance(data, dict):
        errors.append(FieldError(f"{at}data", "must be an object"))
        return None
    resource_id = _text(data, "resource_id", f"{at}data.resource_id", errors, 128)
    quantity = None
    if "quantity" not in data:
        errors.append(FieldError(f"{at}data.quantity", "is required"))
    else:
        quantity = _quantity(data["quantity"], f"{at}data.quantity", errors)
    user_id = _text(data, "user_id", f"{at}data.user_id", errors, 128, required=False)
    app_id = _text(data, "app_id", f"{at}data.app_id", errors, 128, required=False)
    if len(errors) != before:
        return None
    assert event_id and source and subject and when and resource_id and quantity is not None
    return UsageEvent(id=event_id, source=source, team_id=subject, resource_id=resource_id, quantity=quantity,
                      time=when, user_id=user_id, app_id=app_id)


def record_usage(payload: Any, content_type: str, now: datetime) -> RecordUsage:
    """A single event or a batch (contract section 3, Producers), as the command to record it."""
    content_type = (content_type or "").split(";")[0].strip().lower()
    if content_type == SINGLE or (content_type == "application/json" and isinstance(payload, dict)):
        if not isinstance(payload, dict):
            raise ValidationFailed.single("body", "must be one CloudEvent object")
        raw_events, batch = [payload], False
    elif content_type == BATCH or (content_type == "application/json" and isinstance(payload, list)):
        if not isinstance(payload, list):
            raise ValidationFailed.single("body", "must be an array of CloudEvents")
        if not 1 <= len(payload) <= MAX_BATCH:
            raise ValidationFailed.single("body", f"must hold 1 to {MAX_BATCH} events, not {len(payload)}")
        raw_events, batch = payload, True
    else:
        raise BadRequest(f"Content-Type must be {SINGLE} or {BATCH}.")
    errors: list[FieldError] = []
    events: list[tuple[str, UsageEvent]] = []
    for index, raw in enumerate(raw_events):
        at = f"[{index}]." if batch else ""
        if not isinstance(raw, dict):
            errors.append(FieldError(at.rstrip(".") or "body", "must be a CloudEvent object"))
            continue
        event = _event(raw, at, errors, now)
        if event is not None:
            events.append((at, event))
    return RecordUsage(events=tuple(events), invalid=tuple(errors))
