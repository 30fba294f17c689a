"""The one way an API function is built: a Powertools resolver whose errors are RFC 9457."""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import simplejson
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from usage_ledger.domain.calendar import iso
from usage_ledger.domain.errors import (
    BadRequest,
    FieldError,
    LedgerError,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

logger = Logger()
PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://usage-ledger.dev/problems/"


def exact_number(value: Decimal) -> str:
    """A Decimal as a JSON number, digit for digit: never through float (999999999999.999999 would
    print as 1000000000000.0), never rounded to a context's precision, no exponent (1E+2 -> 100,
    1E-7 -> 0.0000001) and no trailing zeros (5.000 -> 5, 0.10 -> 0.1)."""
    if not value.is_finite():
        raise ValueError(f"not a JSON number: {value}")
    if not value:
        return "0"  # also -0 and 0E-5
    text = format(value, "f")  # all the digits as they are, no rounding, no exponent
    return text.rstrip("0").rstrip(".") if "." in text else text


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return simplejson.RawJSON(exact_number(value))
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(body: Any) -> str:
    """Compact JSON, UTF-8 as is. Decimals reach `json_default` (use_decimal=False: simplejson's
    own Decimal support writes str(), which is 1E+2 for a hundred) and go out as raw number text.
    Strict JSON: a NaN or infinity, float or Decimal, is refused; namedtuples stay arrays and
    bytes are not serializable, as with the standard library."""
    return simplejson.dumps(body, use_decimal=False, default=json_default, separators=(",", ":"),
                            ensure_ascii=False, allow_nan=False, namedtuple_as_object=False, encoding=None)


def problem(status: int, slug: str, title: str, detail: str, errors: list[FieldError] | None = None) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = [{"path": error.path, "message": error.message} for error in errors]
    return Response(status_code=status, content_type=PROBLEM_JSON, body=dumps(body))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type="application/json", body=dumps(body), headers=headers or {})


def csv_body(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """RFC 4180 CSV: CRLF line ends, a field quoted when it holds a comma, a quote or a line break
    (its quotes doubled); Decimals written as exact_number writes them in JSON."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([exact_number(value) if isinstance(value, Decimal) else value for value in row])
    return out.getvalue()


def accept_quality(accept: str, media: str) -> float:
    """The q an Accept header gives `media`; the most specific matching range decides (RFC 9110)."""
    ranges = {media: 2, media.split("/")[0] + "/*": 1, "*/*": 0}
    best: tuple[int, float] = (-1, 0.0)
    for part in accept.lower().split(","):
        kind, *params = [piece.strip() for piece in part.split(";")]
        if kind not in ranges:
            continue
        try:
            q = float(next((p[2:] for p in params if p.startswith("q=")), "1"))
        except ValueError:
            continue
        best = max(best, (ranges[kind], q))
    return best[1]


def prefers(accept: str, media: str) -> bool:
    """Whether the caller asked for `media` over JSON (JSON when they tie or Accept is absent)."""
    return accept_quality(accept, media) > accept_quality(accept, "application/json")


def field_path(location: tuple | list) -> str:
    """('body', 'payment_method', 'exp_month') -> 'payment_method.exp_month'; list indexes as [i]."""
    parts = list(location)
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def validation_errors(raw: list[dict[str, Any]]) -> list[FieldError]:
    errors = []
    for error in raw:
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        errors.append(FieldError(field_path(error.get("loc", ())), message))
    return errors


def parse_json(raw: str | bytes, **kwargs: Any) -> Any:
    """json.loads whose every failure is a JSONDecodeError: 10,000 nested arrays (RecursionError) or
    an integer past Python's digit limit (ValueError) are bad JSON from the caller, not a 500."""
    try:
        return json.loads(raw, **kwargs)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise json.JSONDecodeError(reason, raw if isinstance(raw, str) else "", 0) from None


def new_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True, serializer=dumps, json_body_deserializer=parse_json)

    @app.exception_handler(ValidationFailed)
    def _validation_failed(error: ValidationFailed) -> Response:
        return problem(error.status, error.slug, error.title, error.detail, error.errors)

    @app.exception_handler(LedgerError)
    def _ledger_error(error: LedgerError) -> Response:
        return problem(error.status, error.slug, error.title, error.detail)

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(_: RequestUnsupportedContentType) -> Response:
        # another JSON kind (application/merge-patch+json, say) on a route whose body is a model
        return problem(415, UnsupportedMediaType.slug, UnsupportedMediaType.title,
                       "This route takes an application/json body.")

    @app.exception_handler(RequestValidationError)
    def _request_invalid(error: RequestValidationError) -> Response:
        raw = list(error.errors())
        unparsable = next((e for e in raw if e.get("type") == "json_invalid"), None)
        if unparsable is not None:  # not a field's fault: the document itself (as POST /v1/events says)
            reason = (unparsable.get("ctx") or {}).get("error") or unparsable.get("msg")
            return problem(400, BadRequest.slug, BadRequest.title, f"The request body is not valid JSON: {reason}")
        errors = validation_errors(raw)
        raise_as = ValidationFailed(errors)
        return problem(422, raise_as.slug, raise_as.title, raise_as.detail, errors)

    @app.exception_handler(NotFoundError)
    def _no_route(_: NotFoundError) -> Response:
        return problem(404, "not-found", "Not found", "No such route.")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unhandled error")
        return problem(500, "internal-error", "Internal error", "Something went wrong; it has been logged.")

    return app


def json_body(app: APIGatewayHttpResolver, *, max_bytes: int = 256 * 1024) -> Any:
    """The request body parsed as JSON, or a 400/413 problem (never a 500)."""
    raw = app.current_event.decoded_body
    if raw is None or raw == "":
        raise BadRequest("The request body is empty; a JSON document was expected.")
    if len(raw.encode("utf-8") if isinstance(raw, str) else raw) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")
    try:
        return parse_json(raw, parse_float=Decimal)
    except ValueError as error:
        raise BadRequest(f"The request body is not valid JSON: {error}") from None


SEND_JSON = "send application/json (or application/cloudevents+json, application/cloudevents-batch+json for events)."


def require_json_body(event: dict[str, Any]) -> dict[str, Any]:
    """Bodies are JSON: anything else (curl's default form encoding, say) is a clear 415, not a
    validation error about a form field named after the whole body. Returns the event with its
    media type in lower case (RFC 9110: `Application/JSON` is JSON too)."""
    if not event.get("body"):
        return event
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    media, _, parameters = headers.get("content-type", "").partition(";")
    content_type = media.strip().lower()
    if not (content_type == "application/json" or content_type.endswith("+json")):
        raise UnsupportedMediaType(f"Content-Type {content_type or '(none)'} is not JSON; {SEND_JSON}")
    headers["content-type"] = content_type + (f";{parameters}" if parameters else "")
    return {**event, "headers": headers}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def resolve(app: APIGatewayHttpResolver, event: dict[str, Any], context: Any, guard: Any) -> dict[str, Any]:
    """Authenticate before Powertools validates the request, so a stranger learns nothing from
    validation errors; `guard(event)` raises a LedgerError or returns values for app.context."""
    app.clear_context()
    try:
        extra = guard(event) or {}
        event = require_json_body(event)
    except LedgerError as error:
        body: dict[str, Any] = {"type": PROBLEM_BASE + error.slug, "title": error.title, "status": error.status,
                                "detail": error.detail}
        return {"statusCode": error.status, "headers": {"Content-Type": PROBLEM_JSON}, "body": dumps(body),
                "isBase64Encoded": False}
    if _CONTROL.search(event.get("rawPath") or ""):
        # Powertools matches routes with `$`, which also matches before a trailing newline: without
        # this, PUT /v1/admin/teams/team-a\n would write team-a. No route has such a path.
        return {"statusCode": 404, "headers": {"Content-Type": PROBLEM_JSON}, "isBase64Encoded": False,
                "body": dumps({"type": PROBLEM_BASE + "not-found", "title": "Not found", "status": 404,
                               "detail": "No such route."})}
    app.append_context(**extra)
    return app.resolve(event, context)
