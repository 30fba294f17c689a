"""The one way an API function is built: a Powertools resolver whose errors are RFC 9457."""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from usage_ledger.domain.calendar import iso
from usage_ledger.errors import (
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


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # quantities carry at most 6 decimal places, so the float's shortest repr is exact
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(body: Any) -> str:
    return json.dumps(body, default=json_default, separators=(",", ":"), ensure_ascii=False)


def problem(status: int, slug: str, title: str, detail: str, errors: list[FieldError] | None = None) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = [{"path": error.path, "message": error.message} for error in errors]
    return Response(status_code=status, content_type=PROBLEM_JSON, body=dumps(body))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type="application/json", body=dumps(body), headers=headers or {})


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


def new_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True, serializer=dumps)

    @app.exception_handler(ValidationFailed)
    def _validation_failed(error: ValidationFailed) -> Response:
        return problem(error.status, error.slug, error.title, error.detail, error.errors)

    @app.exception_handler(LedgerError)
    def _ledger_error(error: LedgerError) -> Response:
        return problem(error.status, error.slug, error.title, error.detail)

    @app.exception_handler(RequestValidationError)
    def _request_invalid(error: RequestValidationError) -> Response:
        errors = validation_errors(list(error.errors()))
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
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError) as error:
        raise BadRequest(f"The request body is not valid JSON: {error}") from None


def require_json_body(event: dict[str, Any]) -> None:
    """Bodies are JSON: anything else (curl's default form encoding, say) is a clear 415, not a
    validation error about a form field named after the whole body."""
    if not event.get("body"):
        return
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if not (content_type == "application/json" or content_type.endswith("+json")):
        raise UnsupportedMediaType(
            f"Content-Type {content_type or '(none)'} is not JSON; send application/json "
            "(or application/cloudevents+json, application/cloudevents-batch+json for events)."
        )


def resolve(app: APIGatewayHttpResolver, event: dict[str, Any], context: Any, guard: Any) -> dict[str, Any]:
    """Authenticate before Powertools validates the request, so a stranger learns nothing from
    validation errors; `guard(event)` raises a LedgerError or returns values for app.context."""
    app.clear_context()
    try:
        extra = guard(event) or {}
        require_json_body(event)
    except LedgerError as error:
        body: dict[str, Any] = {"type": PROBLEM_BASE + error.slug, "title": error.title, "status": error.status,
                                "detail": error.detail}
        return {"statusCode": error.status, "headers": {"Content-Type": PROBLEM_JSON}, "body": dumps(body),
                "isBase64Encoded": False}
    app.append_context(**extra)
    return app.resolve(event, context)
