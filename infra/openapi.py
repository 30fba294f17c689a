"""One OpenAPI 3 document for the whole HTTP API, merged from each API function's Powertools resolver.

`python -m infra.openapi` writes docs/openapi.json; tests/security/test_openapi.py fails when the
committed file differs from what the handlers describe. Routes, functions and authorizers come
from template.yaml; parameters and request bodies from the resolvers (the pydantic models in
usage_ledger.http.schemas) and success answers (each route's `responses=`, with the models of
usage_ledger.http.responses); what a resolver cannot see (204s, problem+json errors, the events
body the ingest service validates by hand, the invoice's HTML, the report's CSV) is added here.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from infra.stack import Stack, default_parameters
from infra.template import ROOT, load_template

OUTPUT = ROOT / "docs" / "openapi.json"
TITLE = "usage-ledger"
VERSION = "1"
DESCRIPTION = (
    "Pooled capacity and API usage: balances, metering, Pay-as-You-Go billing cycles, invoices and "
    "alerts. The public contract (meaning of every field and number) is shared/CONTRACT.md; this "
    "document is generated from the handlers by `python -m infra.openapi`."
)
IAM, JWT = "awsSigV4", "teamJwt"
SECURITY_SCHEMES: dict[str, Any] = {
    JWT: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
          "description": "API Gateway JWT authorizer (template parameters JwtIssuer, JwtAudience); "
                         "the caller is the `sub` claim."},
    IAM: {"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4",
          "description": "AWS IAM (SigV4-signed requests): operators and producers."},
}
POWERTOOLS_ERRORS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")
PROBLEM = {"$ref": "#/components/schemas/Problem"}
PROBLEM_TITLES = {
    "400": "Bad request (a body that is not UTF-8 JSON, or has a duplicate key)",
    "401": "Unauthorized (no caller identity)",
    "403": "Forbidden (the caller's roles do not allow it)",
    "404": "Not found (also: a team the caller is not a member of)",
    "409": "Conflict",
    "413": "Payload too large",
    "415": "Unsupported media type (bodies are JSON)",
    "422": "Validation failed: `errors` names each field",
}
# routes that answer 204 with no body (every other success is declared on its route, with its model:
# usage_ledger.http.responses)
NO_CONTENT: dict[tuple[str, str], str] = {
    ("delete", "/v1/teams/{team_id}/alerts/{alert_id}"): "Deleted",
    ("delete", "/v1/admin/teams/{team_id}/members/{user_id}"): "Removed: no longer a member of the team",
    ("delete", "/v1/admin/teams/{team_id}/apps/{app_id}"): "Removed: no longer an app of the team",
}
EXTRA_ERRORS: dict[tuple[str, str], tuple[str, ...]] = {
    ("put", "/v1/admin/resources/{resource_id}"): ("409",),  # a change of kind or charge_unit_size
    ("post", "/v1/admin/teams/{team_id}/subscriptions"): ("409",),
    ("post", "/v1/events"): ("413",),
    ("post", "/v1/teams/{team_id}/alerts"): ("409",),
}
# routes that cannot give a 422: the guard answers 404 for a team_id that is no member's (so a
# malformed one never reaches validation), and they take nothing else that is validated
NO_VALIDATION: frozenset[tuple[str, str]] = frozenset({
    ("get", "/v1/teams/{team_id}/balances"),
    ("get", "/v1/teams/{team_id}/notices"),
    ("get", "/v1/teams/{team_id}/invoices/{invoice_id}"),  # any unknown invoice id is a 404
})

# the usage report's pages and its CSV form (contract section 3)
USAGE_PAGE: dict[str, Any] = {
    "description": (
        "One page of series, ordered by key: at most `limit` series, fewer when they are long (a page "
        "stops at about 768 KB, so 24 months by day is some 29 series a page). `next_cursor` (null on the "
        "last page) is also sent as the `X-Next-Cursor` header, which is absent on the last page: pass it "
        "back as `?cursor=` for the next page, in either representation."),
    "headers": {
        "X-Next-Cursor": {"description": "the next page's cursor; absent on the last page",
                          "schema": {"type": "string"}},
        "Vary": {"description": "`Accept`: JSON or CSV", "schema": {"type": "string"}},
    },
    "content": {
        "application/json": {},
        "text/csv": {
            "schema": {"type": "string"},
            "x-note": ("with Accept: text/csv, the page's points as RFC 4180 CSV: a `period,key,quantity` "
                       "header, then one row per (period, key) in the order of the series; the key of usage "
                       "without a user or app is empty"),
        },
    },
}


def template_stack() -> Stack:
    """The template's functions and routes, deployed nowhere (importing a handler reads no AWS)."""
    template = load_template()
    return Stack(template=template, parameters=default_parameters(template))


def api_functions(stack: Stack) -> dict[str, dict[tuple[str, str], str]]:
    """Function logical id -> {(method, path): authorizer} for every HttpApi route of the template
    that is the API (the page's public routes, authorizer NONE, serve files: not documented here)."""
    functions: dict[str, dict[tuple[str, str], str]] = {}
    for method, path, function, authorizer in stack.http_routes():
        if authorizer == "NONE":
            continue
        functions.setdefault(function, {})[(method.lower(), path)] = authorizer
    return functions


def resolver_schema(stack: Stack, function: str) -> dict[str, Any]:
    from infra.lambdas import load_handler

    handler = load_handler(stack, function)
    app = sys.modules[handler.__module__].app
    return json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION))


def events_request_body() -> dict[str, Any]:
    event = {"$ref": "#/components/schemas/CloudEvent"}
    batch = {"type": "array", "items": event, "minItems": 1, "maxItems": 100}
    data = {"$ref": "#/components/schemas/UsageData"}
    return {"required": True, "description": BINARY_MODE, "content": {
        "application/cloudevents+json": {"schema": event},
        "application/cloudevents-batch+json": {"schema": batch},
        "application/json": {"schema": {"oneOf": [event, batch, data]}},
    }}


BINARY_MODE = ("Structured mode (one event, application/cloudevents+json), a batch "
               "(application/cloudevents-batch+json), or binary mode as the CloudEvents HTTP binding and its SDKs "
               "send by default: the attributes in ce-* headers, percent-encoded, and the event's data as the "
               "application/json body (also when no Content-Type is given). The same (source, id) counts once "
               "whatever the mode.")
BINARY_ATTRIBUTES = {"ce-specversion": '"1.0"', "ce-id": "the event id", "ce-source": "the producer",
                     "ce-type": '"usage.recorded"', "ce-subject": "an existing team_id",
                     "ce-time": "RFC 3339 with an offset"}


def events_parameters() -> list[dict[str, Any]]:
    """The binary-mode headers (required in that mode only, so optional here)."""
    return [{"name": name, "in": "header", "required": False, "schema": {"type": "string"},
             "description": f"binary mode: {meaning}"} for name, meaning in BINARY_ATTRIBUTES.items()]


def model_schemas() -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema
    from usage_ledger.http.schemas import CloudEvent, Problem

    _, top = models_json_schema([(model, "validation") for model in (CloudEvent, Problem)],
                                ref_template="#/components/schemas/{model}")
    return top["$defs"]


def _query_parameters(operation: dict[str, Any]) -> None:
    """A query parameter is absent or text, never null: `str | None` (absent) is documented as the
    string it is, with the format, enum or pattern the route gives it."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        branches = [branch for branch in schema.get("anyOf", []) if branch != {"type": "null"}]
        if parameter.get("in") == "query" and "anyOf" in schema and len(branches) == 1:
            del schema["anyOf"]
            schema.update(branches[0])


def _successes(method: str, path: str, operation: dict[str, Any]) -> dict[str, Any]:
    """The route's success answers as its resolver declares them (`responses=` with a model), or
    its 204; a success with a body but no schema is refused."""
    key = (method, path)
    if key in NO_CONTENT:
        return {"204": {"description": NO_CONTENT[key]}}
    declared = {status: copy.deepcopy(response) for status, response in operation.get("responses", {}).items()
                if status.startswith("2")}
    for status, response in declared.items():
        schema = (response.get("content") or {}).get("application/json", {}).get("schema")
        if not schema or "$ref" not in schema:
            raise ValueError(f"{method.upper()} {path} declares no response model for {status}: "
                             "add responses=ok(Model) (usage_ledger.http.responses) to its route")
    if not declared:
        raise ValueError(f"{method.upper()} {path} declares no success response")
    return declared


def _responses(method: str, path: str, operation: dict[str, Any]) -> dict[str, Any]:
    key = (method, path)
    responses = _successes(method, path, operation)
    if path == "/v1/teams/{team_id}/invoices/{invoice_id}":
        responses["200"]["content"]["text/html"] = {"schema": {"type": "string"},
                                                    "x-note": "with Accept: text/html, the rendered invoice"}
        responses["200"]["content"]["application/pdf"] = {
            "schema": {"type": "string", "format": "binary"},
            "x-note": ("with Accept: application/pdf, the same invoice as a PDF "
                       "(Content-Disposition: inline; filename=\"invoice-<number>.pdf\")")}
        responses["200"]["headers"] = {"Vary": {"description": "`Accept`: JSON, HTML or PDF",
                                                "schema": {"type": "string"}}}
    if key == ("get", "/v1/teams/{team_id}/usage"):
        page = copy.deepcopy(USAGE_PAGE)
        page["content"]["application/json"] = responses["200"]["content"]["application/json"]
        responses["200"].update(page)
    errors = ["401", "403", "404", *EXTRA_ERRORS.get(key, ())]
    if key not in NO_VALIDATION:
        errors.append("422")
    if "requestBody" in operation or key == ("post", "/v1/events"):
        errors += ["400", "415"]
    for status in sorted(set(errors)):
        responses[status] = {"description": PROBLEM_TITLES[status],
                             "content": {"application/problem+json": {"schema": PROBLEM}}}
    return responses


def build() -> dict[str, Any]:
    stack = template_stack()
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for function, routes in sorted(api_functions(stack).items()):
        document = resolver_schema(stack, function)
        for name, schema in (document.get("components", {}).get("schemas") or {}).items():
            if name in schemas and schemas[name] != schema:
                raise ValueError(f"two functions define component {name!r} differently")
            schemas[name] = schema
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                authorizer = routes.get((method, path))
                if authorizer is None:
                    raise ValueError(f"{function} serves {method.upper()} {path}, which template.yaml does not route")
                if method in paths.get(path, {}):
                    raise ValueError(f"{method.upper()} {path} is served by two functions")
                operation = copy.deepcopy(operation)
                operation["summary"] = operation.get("summary") or f"{method.upper()} {path}"
                operation["tags"] = [function.removesuffix("Function")]
                operation["security"] = [{IAM if authorizer == "AWS_IAM" else JWT: []}]
                operation["x-usage-ledger-function"] = function
                if (method, path) == ("post", "/v1/events"):
                    operation["requestBody"] = events_request_body()
                    operation["parameters"] = [*operation.get("parameters", []), *events_parameters()]
                operation["responses"] = _responses(method, path, operation)
                _query_parameters(operation)
                paths.setdefault(path, {})[method] = operation
    for name in POWERTOOLS_ERRORS:  # errors are problem+json, not Powertools' default shapes
        schemas.pop(name, None)
    schemas.update(model_schemas())
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    output = Path(argv[0]) if argv else OUTPUT
    output.write_text(render(build()), encoding="utf-8")
    print(f"wrote {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
