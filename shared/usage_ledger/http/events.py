"""POST /v1/events at the edge: CloudEvents in the HTTP binding's three shapes, validated by the one
model set of `http.schemas` (which also describes them in the OpenAPI document).

- structured mode: one event as the body, `Content-Type: application/cloudevents+json`;
- batch mode: an array of 1 to 100 events, `application/cloudevents-batch+json`;
- binary mode (the SDKs' default): the attributes in `ce-*` headers, percent-encoded, and the
  event's `data` as the body, `application/json` (or no Content-Type, which the SDKs send for
  an event without `datacontenttype`: its data is JSON).
Each event becomes the same UsageEvent whatever its mode, so the dedupe key (source, id) is one.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import unquote

from pydantic import ValidationError

from usage_ledger.domain.commands import RecordUsage
from usage_ledger.domain.errors import FieldError, UnsupportedMediaType, ValidationFailed
from usage_ledger.domain.model import UsageEvent
from usage_ledger.domain.text import NOT_UNICODE, is_storable
from usage_ledger.http.api import BodyRules
from usage_ledger.http.schemas import CloudEvent

MAX_BATCH = 100
MAX_BODY_BYTES = 256 * 1024
SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
DATA = "application/json"
CE = "ce-"
MODES = (f"POST /v1/events takes one CloudEvent in structured mode (Content-Type {SINGLE}), a batch of 1 to "
         f"{MAX_BATCH} ({BATCH}), or one in binary mode (the attributes in ce-* headers such as ce-id and "
         f"ce-source, the data as the {DATA} body).")
# pydantic's words for what is not a field's own check, in the API's
_MESSAGES = {"missing": "is required", "model_type": "must be an object", "model_attributes_type": "must be an object"}
# attributes a ce-* header cannot carry: in binary mode the body is the data
_NOT_HEADERS = frozenset({"data", "data_base64"})


def _media(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def is_binary(headers: dict[str, str]) -> bool:
    """Binary mode: ce-* headers, and not a structured or batch media type (which win: the
    binding reads ce-* headers only in binary mode)."""
    return _media(headers) not in (SINGLE, BATCH) and any(name.lower().startswith(CE) for name in headers)


def body_rules(headers: dict[str, str]) -> BodyRules:
    """How POST /v1/events reads its body (http.api.read_body): a binary-mode body is the data."""
    if is_binary(headers):
        return BodyRules(default_type=DATA, at="data.", max_bytes=MAX_BODY_BYTES,
                         send=f"binary mode takes the data as {DATA}. {MODES}")
    return BodyRules(max_bytes=MAX_BODY_BYTES, send=MODES)


def _field_errors(error: ValidationError, at: str, names: dict[str, str] | None = None) -> list[FieldError]:
    found = []
    for problem in error.errors(include_url=False, include_context=False, include_input=False):
        parts = [str(part) for part in problem["loc"]]
        if names and parts and parts[0] in names:  # binary mode: an attribute is its header
            parts[0] = names[parts[0]]
        message = _MESSAGES.get(problem["type"]) or str(problem["msg"]).removeprefix("Value error, ")
        found.append(FieldError(f"{at}{'.'.join(parts)}", message))
    return found


def _binary_attributes(headers: dict[str, str]) -> tuple[dict[str, Any], list[FieldError]]:
    """The ce-* headers as attributes, each percent-decoded (the binding's encoding of anything but
    printable ASCII) strictly: bytes that are not UTF-8 are refused, never replaced by U+FFFD."""
    attributes: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, value in sorted(headers.items()):
        name = name.lower()
        if not name.startswith(CE):
            continue
        attribute = name[len(CE):]
        if not attribute or attribute in _NOT_HEADERS:
            errors.append(FieldError(name, "is not a CloudEvents attribute header; in binary mode the body is data"))
            continue
        try:
            decoded = unquote(value, errors="strict")
        except UnicodeDecodeError:
            errors.append(FieldError(name, "must be percent-encoded UTF-8"))
            continue
        if not is_storable(decoded):
            errors.append(FieldError(name, NOT_UNICODE))
            continue
        attributes[attribute] = decoded
    return attributes, errors


def _summary(errors: list[FieldError]) -> str:
    return "; ".join(f"{error.path}: {error.message}" for error in errors[:5])


def record_usage(payload: Any, headers: dict[str, str], now: datetime) -> RecordUsage:
    """The request's events (contract section 3, Producers), as the command to record them."""
    headers = {name.lower(): value for name, value in headers.items()}
    content_type = _media(headers)
    names: dict[str, str] | None = None
    if is_binary(headers):
        if content_type not in ("", DATA):
            raise UnsupportedMediaType(f"Content-Type {content_type} is not JSON; binary mode takes the data as "
                                       f"{DATA}. {MODES}")
        attributes, header_errors = _binary_attributes(headers)
        if header_errors:
            raise ValidationFailed(header_errors)
        raw_events, batch = [{**attributes, "data": payload}], False
        names = {attribute: CE + attribute for attribute in attributes}
        names.update({required: CE + required for required in ("specversion", "id", "source", "type", "subject",
                                                                "time")})
    elif content_type == SINGLE or (content_type == DATA and isinstance(payload, dict)):
        if not isinstance(payload, dict):
            raise ValidationFailed.single("body", "must be one CloudEvent object")
        raw_events, batch = [payload], False
    elif content_type == BATCH or (content_type == DATA and isinstance(payload, list)):
        if not isinstance(payload, list):
            raise ValidationFailed.single("body", "must be an array of CloudEvents")
        if not 1 <= len(payload) <= MAX_BATCH:
            raise ValidationFailed.single("body", f"must hold 1 to {MAX_BATCH} events, not {len(payload)}")
        raw_events, batch = payload, True
    elif content_type == DATA:
        raise ValidationFailed([FieldError("body", "must be a CloudEvent object or an array of them")],
                               detail=f"Invalid request: the body is neither an event nor a batch. {MODES}")
    else:
        raise UnsupportedMediaType(f"Content-Type {content_type} is not a CloudEvents media type. {MODES}")
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
            errors.extend(_field_errors(error, at, names))
            continue
        events.append((at, UsageEvent(id=event.id, source=event.source, team_id=event.subject,
                                      resource_id=event.data.resource_id, quantity=event.data.quantity,
                                      time=event.time, user_id=event.data.user_id, app_id=event.data.app_id)))
    if errors and names is None and content_type == DATA:
        # plain JSON: say which shapes exist (a body of data without its ce-* headers lands here)
        raise ValidationFailed(errors, detail=f"Invalid request: {_summary(errors)}. {MODES}")
    return RecordUsage(events=tuple(events), invalid=tuple(errors))
