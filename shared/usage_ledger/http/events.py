"""POST /v1/events at the edge: structured CloudEvents, one or a batch, validated by the one model
set of `http.schemas` (which also describes them in the OpenAPI document)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from usage_ledger.domain.commands import RecordUsage
from usage_ledger.domain.errors import BadRequest, FieldError, ValidationFailed
from usage_ledger.domain.model import UsageEvent
from usage_ledger.http.schemas import CloudEvent

MAX_BATCH = 100
SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
# pydantic's words for what is not a field's own check, in the API's
_MESSAGES = {"missing": "is required", "model_type": "must be an object", "model_attributes_type": "must be an object"}


def _field_errors(error: ValidationError, at: str) -> list[FieldError]:
    found = []
    for problem in error.errors(include_url=False, include_context=False, include_input=False):
        path = ".".join(str(part) for part in problem["loc"])
        message = _MESSAGES.get(problem["type"]) or str(problem["msg"]).removeprefix("Value error, ")
        found.append(FieldError(f"{at}{path}", message))
    return found


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
        try:
            event = CloudEvent.model_validate(raw, context={"now": now})
        except ValidationError as error:
            errors.extend(_field_errors(error, at))
            continue
        events.append((at, UsageEvent(id=event.id, source=event.source, team_id=event.subject,
                                      resource_id=event.data.resource_id, quantity=event.data.quantity,
                                      time=event.time, user_id=event.data.user_id, app_id=event.data.app_id)))
    return RecordUsage(events=tuple(events), invalid=tuple(errors))
