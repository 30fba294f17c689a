"""Property-based fuzzing of every route in docs/openapi.json, through the handlers, as an authorized
caller: schema-shaped and arbitrary bodies, queries and path parameters. Whatever comes in, the
answer is never a 5xx; a refusal is RFC 9457 problem+json naming the bad field; and a refused
request changes nothing (every DynamoDB table and the events queue are as they were).

FUZZ_EXAMPLES sets the examples per route (default 40, derandomized so `make test` is repeatable;
with FUZZ_EXAMPLES set, e.g. `FUZZ_EXAMPLES=500` for a soak, each run draws new examples)."""
import json
import os
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from conftest import FROZEN_AT, OPERATOR, Identity, cloud_event, drain_events, rfc3339, run_job, send_events, utc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from usage_ledger.http.schemas import IDENTIFIER

from infra import openapi
from infra.apigw import http_event
from infra.lambdas import FakeLambdaContext, load_handler

ALICE = Identity.user("alice")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.large_base_example])
DOCUMENT = json.loads(openapi.OUTPUT.read_text(encoding="utf-8"))
OPERATIONS = [(method, path, operation) for path, operations in sorted(DOCUMENT["paths"].items())
              for method, operation in sorted(operations.items())]
TABLES = ("LedgerTable", "UsageTable", "DedupeTable")


# ------------------------------------------------------------------ the world the fuzzer pokes at


def build_world(api, world, clock) -> dict[str, list[str]]:
    """A team with flex and payg balances, usage, an alert and an invoice; returns known ids per path name."""
    world.resource("minutes", kind="api", size=20)
    world.resource("storage", kind="resource", size=1)
    world.team("team-a")
    world.member("team-a", "bob", ["secondary_admin"])
    world.subscription("team-a", "minutes", "flex", quantity=100, subscription_id="flex-1")
    world.subscription("team-a", "minutes", "payg", purchased_at="2026-10-01T00:00:00Z",
                       starts_at="2026-10-01T00:00:00Z", subscription_id="payg-1")
    clock.set(utc(2026, 10, 20))
    assert send_events(api, [cloud_event("team-a", "minutes", 2500, utc(2026, 10, 20))]).status == 202
    drain_events(api.stack)
    run_job(api.stack, "CloseBillingCyclesFunction",
            {"version": "0", "id": "fuzz-close", "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "time": rfc3339(utc(2026, 11, 2)), "region": "us-east-1", "resources": [],
             "detail": {}})
    clock.set(FROZEN_AT)
    alert = api.post("/v1/teams/team-a/alerts", {"name": "run-out", "windows_days": [10], "resource_ids": ["minutes"],
                                                 "recipient_user_ids": ["alice"]}, as_=ALICE)
    assert alert.status == 201, alert.text
    invoices = api.get("/v1/teams/team-a/invoices", as_=ALICE).json["items"]
    assert invoices, "the world needs an invoice to read"
    return {
        "team_id": ["team-a"], "resource_id": ["minutes", "storage", "nope"], "user_id": ["alice", "bob", "zed"],
        "app_id": ["app-1"], "alert_id": [alert.json["alert_id"]], "invoice_id": [invoices[0]["invoice_id"]],
        "subscription_id": ["payg-1", "flex-1"],
    }


def state(stack, sqs) -> tuple[Any, ...]:
    """Every item of every table (read from moto's backend: a boto3 scan of each costs ~100 ms per
    example), and the events queue's depth."""
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    tables = [tuple(sorted(json.dumps(item.to_json(), sort_keys=True, default=str)
                           for item in backend.get_table(stack.physical[logical]).all_items()))
              for logical in TABLES]
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.physical["EventsFifoQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return (*tables, attributes["ApproximateNumberOfMessages"],
            attributes["ApproximateNumberOfMessagesNotVisible"])


# ------------------------------------------------------------------ strategies

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
any_json = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
odd_text = st.text(max_size=40) | st.sampled_from(["", " ", "..", "<script>", "x" * 300, "\u202e", "a\nb", "%2F"])
numbers_as_anything = (st.integers(-10, 10 ** 13) | st.decimals(allow_nan=False, places=7, max_value=10 ** 13)
                       | st.floats() | st.text(max_size=8) | st.sampled_from(["5", "1e30", None, True, [], {}]))
instants = st.one_of(
    st.datetimes(min_value=FROZEN_AT.replace(year=2024, tzinfo=None), max_value=FROZEN_AT.replace(tzinfo=None))
    .map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00+05:30",
                     "2026-11-25T12:00:00", "2026-02-30T00:00:00Z", "yesterday"]),
    st.text(max_size=30),
)
query_values = odd_text | st.integers(-5, 500).map(str) | st.sampled_from(
    ["2026-11-01", "2026-11-25", "2024-01-01", "0001-01-01", "9999-12-31", "day", "month", "resource", "user",
     "app", "minutes", "1", "100", "101", "NaN", "1e3"])


def path_value(name: str, known: dict[str, list[str]]) -> st.SearchStrategy[str]:
    choices = known.get(name, [])
    anything = st.from_regex(IDENTIFIER, fullmatch=True) | odd_text.filter(lambda text: "/" not in text)
    return st.sampled_from(choices) if choices and name == "team_id" else (
        st.sampled_from(choices) | anything if choices else anything)


@st.composite
def usage_event(draw) -> dict[str, Any]:
    event = cloud_event(draw(st.sampled_from(["team-a", "team-a", "team-b", ""])),
                        draw(st.sampled_from(["minutes", "minutes", "storage", "nope"])), 1, FROZEN_AT,
                        id=draw(st.text(min_size=0, max_size=12)) or None, source=draw(st.sampled_from(["s", "t", ""])))
    event["time"] = draw(instants)
    event["data"]["quantity"] = draw(numbers_as_anything)
    if draw(st.booleans()):
        key = draw(st.sampled_from(["specversion", "type", "id", "source", "subject", "time", "data"]))
        event[key] = draw(any_json)
    return event


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values shaped by a (pydantic-made) JSON schema: enough of the vocabulary for our request models."""
    if "$ref" in schema:
        return st.deferred(lambda: from_schema(DOCUMENT["components"]["schemas"][schema["$ref"].split("/")[-1]]))
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([from_schema(option) for option in schema.get("anyOf", schema.get("oneOf"))])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 40))
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        integers = st.integers(min_value=None if low is None else int(low),
                               max_value=None if high is None else int(high))
        if kind == "integer":
            return integers
        return integers | st.decimals(min_value=low, max_value=high, places=6, allow_nan=False).map(float)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), min_size=schema.get("minItems", 0),
                        max_size=min(schema.get("maxItems", 5), 5))
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        fields = {name: from_schema(sub) for name, sub in schema.get("properties", {}).items()}
        return st.fixed_dictionaries({name: fields[name] for name in fields if name in required},
                                     optional={name: fields[name] for name in fields if name not in required})
    return any_json


def body_strategy(method: str, path: str, operation: dict[str, Any]) -> st.SearchStrategy[Any] | None:
    if "requestBody" not in operation:
        return None
    content = operation["requestBody"]["content"]
    schema = content["application/json"]["schema"]
    if (method, path) == ("post", "/v1/events"):
        shaped = st.lists(usage_event(), min_size=0, max_size=4) | usage_event()
    else:
        shaped = from_schema(schema)
    return st.one_of(shaped, any_json)


# ------------------------------------------------------------------ the property


def assert_answer(reply: dict[str, Any], before, after, label: str) -> None:
    status = reply["statusCode"]
    assert status < 500, f"{label}: {status} {reply.get('body')}"
    headers = {key.lower(): value for key, value in (reply.get("headers") or {}).items()}
    if 400 <= status < 500:
        assert headers.get("content-type", "").startswith("application/problem+json"), label
        body = json.loads(reply["body"])
        assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status, label
        assert all(isinstance(body[key], str) and body[key] for key in ("type", "title", "detail")), label
        if status == 422:
            assert body["errors"], label
            for error in body["errors"]:
                assert isinstance(error["path"], str) and error["path"], label
                assert isinstance(error["message"], str) and error["message"], label
        assert after == before, f"{label}: a refused request ({status}) changed state"
    elif status != 204 and not headers.get("content-type", "").startswith("text/html"):
        json.loads(reply["body"])


@pytest.mark.parametrize("method,path,operation", OPERATIONS, ids=[f"{m.upper()} {p}" for m, p, _ in OPERATIONS])
def test_no_request_crashes_and_a_refused_one_changes_nothing(api, world, clock, method, path, operation):
    known = build_world(api, world, clock)
    route = next(route for route in api.routes if route.route_key == f"{method.upper()} {path}")
    identity = OPERATOR if "awsSigV4" in operation["security"][0] else ALICE
    parameters = operation.get("parameters", [])
    path_names = [p["name"] for p in parameters if p["in"] == "path"]
    query_names = [p["name"] for p in parameters if p["in"] == "query"]
    bodies = body_strategy(method, path, operation)
    events_route = path == "/v1/events"
    handler = load_handler(api.stack, route.function)
    sqs = boto3.client("sqs")  # built once: a client costs ~50 ms

    @FUZZ
    @given(data=st.data())
    def run(data):
        params = {name: data.draw(path_value(name, known), label=name) for name in path_names}
        concrete = path
        for name, value in params.items():
            concrete = concrete.replace("{" + name + "}", value)
        query = {name: data.draw(st.none() | query_values, label=name) for name in query_names}
        query = {name: value for name, value in query.items() if value is not None}
        if data.draw(st.booleans(), label="unknown query"):
            query[data.draw(st.text(min_size=1, max_size=8), label="unknown name")] = data.draw(query_values)
        headers = {}
        raw = None
        if bodies is not None:
            body = data.draw(bodies, label="body")
            raw = json.dumps(body, default=str, allow_nan=True)
            headers["content-type"] = data.draw(
                st.sampled_from(["application/cloudevents-batch+json", "application/cloudevents+json",
                                 "application/json"]) if events_route else st.just("application/json"),
                label="content-type")
        if "invoice_id" in path_names:
            headers["accept"] = data.draw(st.sampled_from(["application/json", "text/html", "*/*", "text/*;q=x",
                                                           "text/html;q=0.1, application/json"]), label="accept")
        event = http_event(route, concrete, params, identity=identity, query=urlencode(query), headers=headers,
                           body=raw)
        before = state(api.stack, sqs)
        reply = handler(event, FakeLambdaContext(route.function))
        after = state(api.stack, sqs)
        assert_answer(reply, before, after, f"{method.upper()} {concrete} {query} {raw and raw[:300]}")

    run()
