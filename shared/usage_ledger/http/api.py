"""The one way an API function is built: a Powertools resolver whose errors are RFC 9457."""
from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
    NotFound,
    PayloadTooLarge,
    ProcessorUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from usage_ledger.domain.text import NOT_UNICODE, is_storable, shown

logger = Logger()
PROCESSOR_RETRY_AFTER_SECONDS = 30  # a processor outage: nothing was written, the same request may be retried
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


def problem_body(status: int, slug: str, title: str, detail: str, errors: list[FieldError] | None = None) -> str:
    """An RFC 9457 problem document; `errors` names each field of a validation failure."""
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = [{"path": error.path, "message": error.message} for error in errors]
    return dumps(body)


def problem(status: int, slug: str, title: str, detail: str, errors: list[FieldError] | None = None) -> Response:
    return Response(status_code=status, content_type=PROBLEM_JSON,
                    body=problem_body(status, slug, title, detail, errors))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type="application/json", body=dumps(body), headers=headers or {})


# what a spreadsheet takes for the start of a formula (OWASP's CSV injection list)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A Decimal as exact_number writes it in JSON; a text that a spreadsheet would run as a
    formula (`=HYPERLINK(...)`, `+1+2`, `-3+4`, `@SUM(1+1)`, a leading tab or CR) with a leading `'`,
    so that it shows as text (contract section 3). Quantities are never negative: only text is escaped."""
    if isinstance(value, Decimal):
        return exact_number(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_body(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """RFC 4180 CSV: CRLF line ends, a field quoted when it holds a comma, a quote or a line break
    (its quotes doubled); each cell as csv_cell writes it."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
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


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: `{"quantity": 1, "quantity": 1000}` is ambiguous
    (parsers disagree on which one wins), so it is refused rather than read as its last value."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {shown(key)}")
            seen.add(key)
    return document


def parse_json(raw: str | bytes, **kwargs: Any) -> Any:
    """json.loads whose every failure is a JSONDecodeError: 10,000 nested arrays (RecursionError),
    an integer past Python's digit limit or a duplicate key (ValueError) are bad JSON from the
    caller, not a 500."""
    kwargs.setdefault("object_pairs_hook", _unique_keys)
    try:
        return json.loads(raw, **kwargs)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise _NotJson(reason, raw if isinstance(raw, str) else "", 0) from None


def parse_body(raw: str | bytes) -> Any:
    """A request body as the routes' models read it: every JSON number with a fraction a Decimal,
    digit for digit, never a float on its way to the model (contract section 3)."""
    return parse_json(raw, parse_float=Decimal)


class _NotJson(json.JSONDecodeError):
    """A refusal that has no position in the text: its message alone (not "line 1 column 1")."""

    def __str__(self) -> str:
        return self.msg


class ExactResolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver, whose plain results (a dict, or a (dict, status) pair) are
    written by `dumps`, as json_response writes them: on its own path, the validation middleware's
    encoder turns a Decimal into a float before any serializer sees it (1000000006957.500167 would
    go out as 1000000006957.5001). Routes carry no return annotation: the models are the document's."""

    def _to_response(self, result: Any) -> Any:
        response = super()._to_response(result)
        if isinstance(response, Response) and response.is_json() and isinstance(response.body, (dict, list)):
            response.body = dumps(response.body)
        return response


def new_resolver() -> APIGatewayHttpResolver:
    app = ExactResolver(enable_validation=True, serializer=dumps, json_body_deserializer=parse_body)

    @app.exception_handler(ValidationFailed)
    def _validation_failed(error: ValidationFailed) -> Response:
        return problem(error.status, error.slug, error.title, error.detail, error.errors)

    @app.exception_handler(LedgerError)
    def _ledger_error(error: LedgerError) -> Response:
        return problem(error.status, error.slug, error.title, error.detail)

    @app.exception_handler(ProcessorUnavailable)
    def _processor_unavailable(error: ProcessorUnavailable) -> Response:
        return Response(status_code=error.status, content_type=PROBLEM_JSON,
                        body=problem_body(error.status, error.slug, error.title, error.detail),
                        headers={"Retry-After": str(PROCESSOR_RETRY_AFTER_SECONDS)})

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


BODY = "json_body"  # where resolve() leaves the parsed body in the resolver's context
_NO_BODY = object()
SEND_JSON = "send application/json (or application/cloudevents+json, application/cloudevents-batch+json for events)."


@dataclass(frozen=True)
class BodyRules:
    """How a function reads a request's body (the default: JSON, as every route takes)."""

    default_type: str | None = None  # the media type of a body sent without a Content-Type
    at: str = ""  # where the body sits in a field's path ("data." for a binary-mode CloudEvent)
    max_bytes: int | None = None  # past it, a 413 before parsing
    send: str = SEND_JSON  # what a 415 tells the caller to send instead


def json_rules(headers: dict[str, str]) -> BodyRules:
    return BodyRules()


def json_body(app: APIGatewayHttpResolver) -> Any:
    """The request body as resolve() parsed it (decimals exact), or a 400 when there is none."""
    document = app.context.get(BODY, _NO_BODY)
    if document is _NO_BODY:
        raise BadRequest("The request body is empty; a JSON document was expected.")
    return document


def unstorable_strings(document: Any, at: str = "") -> list[FieldError]:
    """Every string of a JSON document, keys included, that is not valid Unicode (a lone
    surrogate, which JSON's \\u escapes can spell): nothing could store it, so it is named here."""
    found: list[FieldError] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, str):
            if not is_storable(value):
                found.append(FieldError(path or "body", NOT_UNICODE))
        elif isinstance(value, dict):
            for key, item in value.items():
                if not is_storable(key):  # the path cannot show the key itself
                    found.append(FieldError(path or "body", "must not have a key that is not valid Unicode"))
                    continue
                walk(item, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    walk(document, at.rstrip("."))
    return found


def read_body(event: dict[str, Any], rules_of: Callable[[dict[str, str]], BodyRules] = json_rules,
              ) -> tuple[dict[str, Any], Any]:
    """The event with its body as checked text, and the body parsed; every route's refusals of
    what could not be stored: 415 not JSON, 413 too large, 400 not UTF-8 (strictly: never a
    U+FFFD in place of a byte), not JSON or a duplicate key, 422 a string that is not valid
    Unicode (naming the field; query parameters too). Media types are matched in lower case
    (RFC 9110: `Application/JSON` is JSON too)."""
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    query = event.get("queryStringParameters") or {}
    bad_query = [FieldError(name if is_storable(name) else "query", NOT_UNICODE)
                 for name, value in query.items() if not (is_storable(name) and is_storable(value))]
    if bad_query:
        raise ValidationFailed(bad_query)
    body = event.get("body")
    if body is None or body == "":
        return {**event, "headers": headers}, _NO_BODY
    rules = rules_of(headers)
    media, _, parameters = headers.get("content-type", "").partition(";")
    content_type = media.strip().lower() or (rules.default_type or "")
    if not (content_type == "application/json" or content_type.endswith("+json")):
        raise UnsupportedMediaType(f"Content-Type {content_type or '(none)'} is not JSON; {rules.send}")
    headers["content-type"] = content_type + (f";{parameters}" if parameters else "")
    raw = _body_bytes(body, event.get("isBase64Encoded", False))
    if rules.max_bytes is not None and len(raw) > rules.max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {rules.max_bytes} bytes.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadRequest(f"The request body is not valid UTF-8 (byte {error.start}); JSON is UTF-8 text "
                         "(RFC 8259).") from None
    try:
        document = parse_json(text, parse_float=Decimal)
    except ValueError as error:
        raise BadRequest(f"The request body is not valid JSON: {error}") from None
    unstorable = unstorable_strings(document, rules.at)
    if unstorable:
        raise ValidationFailed(unstorable)
    return {**event, "headers": headers, "body": text, "isBase64Encoded": False}, document


def _body_bytes(body: str, base64_encoded: bool) -> bytes:
    """The bytes the caller sent: API Gateway passes a body it cannot hand over as text base64-encoded."""
    if base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("The request body is not valid base64 as isBase64Encoded says.") from None
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate in the event's own text: not from UTF-8 bytes
        raise BadRequest(f"The request body is not valid UTF-8 (character {error.start}).") from None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _problem_result(error: LedgerError) -> dict[str, Any]:
    """The refusal as the handler's result, for what is refused before Powertools runs."""
    errors = error.errors if isinstance(error, ValidationFailed) else None
    return {"statusCode": error.status, "headers": {"Content-Type": PROBLEM_JSON}, "isBase64Encoded": False,
            "body": problem_body(error.status, error.slug, error.title, error.detail, errors)}


def resolve(app: APIGatewayHttpResolver, event: dict[str, Any], context: Any, guard: Any,
            body_rules: Callable[[dict[str, str]], BodyRules] = json_rules) -> dict[str, Any]:
    """Authenticate before anything reads the request, so a stranger learns nothing from
    validation errors (`guard(event)` raises a LedgerError or returns values for app.context);
    then read the body (read_body) and let Powertools route and validate."""
    app.clear_context()
    try:
        extra = guard(event) or {}
        if _CONTROL.search(event.get("rawPath") or ""):
            # Powertools matches routes with `$`, which also matches before a trailing newline: without
            # this, PUT /v1/admin/teams/team-a\n would write team-a. No route has such a path.
            raise NotFound("No such route.")
        event, document = read_body(event, body_rules)
    except LedgerError as error:
        return _problem_result(error)
    app.append_context(**extra)
    if document is not _NO_BODY:
        app.append_context(**{BODY: document})
    return app.resolve(event, context)

