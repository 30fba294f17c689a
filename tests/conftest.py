"""Test harness: moto in-process, the template deployed into it, handlers driven with real events."""
from __future__ import annotations

import base64
import json
import os
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "shared"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "UsageLedgerTests")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

import boto3  # noqa: E402
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from infra.apigw import ANONYMOUS, Identity, find_route, http_event, routes_of  # noqa: E402
from infra.lambdas import FakeLambdaContext, load_handler  # noqa: E402
from infra.localstripe import CARD_OK, create_card  # noqa: E402
from infra.moto_server import serialize_in_process_moto  # noqa: E402
from infra.stack import Stack, deploy  # noqa: E402

serialize_in_process_moto()  # tests, the bench and the simulation send requests from several threads

OPERATOR = Identity.operator()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str
    base64_encoded: bool = False  # a binary body (a PDF), as API Gateway's payload 2.0 carries it

    @property
    def content(self) -> bytes:
        return base64.b64decode(self.text) if self.base64_encoded else self.text.encode("utf-8")

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def content_type(self) -> str:
        return {key.lower(): value for key, value in self.headers.items()}.get("content-type", "")


class Api:
    """Calls template routes through their handlers with HTTP API v2 events."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.routes = routes_of(stack)

    def call(
        self,
        method: str,
        path: str,
        *,
        as_: Identity = ANONYMOUS,
        body: Any = None,
        query: str = "",
        headers: dict[str, str] | None = None,
        raw_body: str | bytes | None = None,
    ) -> Reply:
        found = find_route(self.routes, method, path)
        assert found, f"no template route for {method} {path}"
        route, params = found
        headers = dict(headers or {})
        if body is not None:
            raw_body = json.dumps(body)
            headers.setdefault("content-type", "application/json")
        event = http_event(route, path, params, identity=as_, query=query, headers=headers, body=raw_body)
        response = load_handler(self.stack, route.function)(event, FakeLambdaContext(route.function))
        return Reply(response["statusCode"], response.get("headers") or {}, response.get("body") or "",
                     bool(response.get("isBase64Encoded")))

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.call("GET", path, **kwargs)

    def put(self, path: str, body: Any, **kwargs: Any) -> Reply:
        return self.call("PUT", path, body=body, as_=kwargs.pop("as_", OPERATOR), **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> Reply:
        return self.call("POST", path, body=body, **kwargs)


def reset_domain_caches() -> None:
    from usage_ledger import bootstrap
    from usage_ledger.adapters import aws
    from usage_ledger.config import settings

    aws.reset_clients()
    settings.cache_clear()
    bootstrap.reset()


def apply_environment(stack: Stack) -> None:
    for logical in stack.functions():
        os.environ.update(stack.function_environment(logical))
    reset_domain_caches()


_LOCALSTRIPE: list[str] = []


def localstripe_url() -> str:
    """One localstripe per test process (xdist worker), started on first use, stopped at exit."""
    if not _LOCALSTRIPE:
        import atexit

        from infra.localstripe import start_localstripe

        url, stop = start_localstripe()
        atexit.register(stop)
        _LOCALSTRIPE.append(url)
    return _LOCALSTRIPE[0]


def stripe_parameters() -> dict[str, str]:
    """Template parameters pointing the stack at this process's localstripe."""
    return {"StripeApiBase": localstripe_url()}


@pytest.fixture
def stack():
    with mock_aws():
        deployed = deploy(boto3.session.Session(region_name="us-east-1"), parameters=stripe_parameters())
        apply_environment(deployed)
        yield deployed
    reset_domain_caches()


@pytest.fixture
def compose(stack: Stack):
    """Hand parts to the composition root for the next invocations, as a deployment's bootstrap
    would build them: `compose(mailer=FailingMailer())`; `compose()` goes back to the real ones."""
    from usage_ledger import bootstrap

    def install(**parts: Any) -> None:
        bootstrap.use(bootstrap.Container(**parts))

    yield install
    bootstrap.reset()


@pytest.fixture
def api(stack: Stack) -> Api:
    return Api(stack)


@pytest.fixture
def dynamodb_calls(stack: Stack):
    """(operation, params) of every DynamoDB request the domain clients make from now on."""
    from usage_ledger import bootstrap
    from usage_ledger.adapters import aws

    bootstrap.container().ledger_store.catalogue()  # a warm container: the catalogue is cached
    calls = []

    def record(model, params, **_):
        calls.append((model.name, params))

    session = boto3._get_default_session()
    session.events.register("before-parameter-build.dynamodb", record)
    aws.reset_clients()  # clients copy the session's hooks when they are built
    yield calls
    session.events.unregister("before-parameter-build.dynamodb", record)
    aws.reset_clients()


# ------------------------------------------------------------------ builders


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class World:
    """Builds teams, members, resources and subscriptions through the operator routes."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def card(self, number: str = CARD_OK, exp_month: int = 12, exp_year: int = 2030) -> str:
        """A card PaymentMethod at localstripe, as Stripe.js makes one on the page: its id."""
        return create_card(self.api.stack.parameters["StripeApiBase"], number, exp_month, exp_year)

    def resource(self, resource_id: str = "minutes", kind: str = "api", size: Any = 20, low: Any = 10) -> str:
        reply = self.api.put(f"/v1/admin/resources/{resource_id}", {
            "kind": kind, "display_name": resource_id.title(), "unit": "processing minute",
            "charge_unit_size": size, "low_balance_percent": low,
        })
        assert reply.status in (200, 201), reply.text
        return resource_id

    def team(self, team_id: str = "team-a", admins: tuple[str, ...] = ("alice",)) -> str:
        assert self.api.put(f"/v1/admin/teams/{team_id}", {"name": team_id.upper()}).status in (200, 201)
        for user in admins:
            self.member(team_id, user, ["primary_admin"])
        return team_id

    def member(self, team_id: str, user_id: str, roles: list[str]) -> None:
        reply = self.api.put(f"/v1/admin/teams/{team_id}/members/{user_id}",
                             {"email": f"{user_id}@example.com", "roles": roles, "full_access": True})
        assert reply.status in (200, 201), reply.text

    def subscription(self, team_id: str, resource_id: str, type_: str = "flex", **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"resource_id": resource_id, "type": type_,
                                "starts_at": fields.pop("starts_at", "2026-01-01T00:00:00Z")}
        if type_ == "payg":
            body.update({
                "purchased_at": fields.pop("purchased_at", body["starts_at"]),
                "timezone": fields.pop("timezone", "UTC"),
                "unit_amount": fields.pop("unit_amount", 250),
                "currency": fields.pop("currency", "usd"),
                "purchaser_user_id": fields.pop("purchaser_user_id", "alice"),
                "payment_method": fields.pop("payment_method", None) or {"id": self.card()},
            })
        else:
            body["quantity"] = fields.pop("quantity", 100)
        body.update(fields)
        reply = self.api.post(f"/v1/admin/teams/{team_id}/subscriptions", body, as_=OPERATOR)
        assert reply.status in (200, 201), reply.text
        return reply.json


@pytest.fixture
def world(api: Api) -> World:
    return World(api)


def cloud_event(team_id: str, resource_id: str, quantity: Any, at: datetime | str, *, id: str | None = None,
                source: str = "test/producer", user_id: str | None = None, app_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"resource_id": resource_id, "quantity": quantity}
    if user_id:
        data["user_id"] = user_id
    if app_id:
        data["app_id"] = app_id
    return {
        "specversion": "1.0",
        "id": id or uuid.uuid4().hex,
        "source": source,
        "type": "usage.recorded",
        "subject": team_id,
        "time": at if isinstance(at, str) else rfc3339(at),
        "data": data,
    }


class TemplateHandlers(dict):
    """Handlers of the template's functions, imported on first use."""

    def __init__(self, stack: Stack) -> None:
        super().__init__()
        self.stack = stack

    def __missing__(self, logical_id: str) -> Any:
        self[logical_id] = load_handler(self.stack, logical_id)
        return self[logical_id]


def drain_events(stack: Stack, **kwargs: Any) -> Any:
    """Feed the events queue to IngestFunction until it is empty (the local runner's poller)."""
    from infra.pollers import drain_queue

    return drain_queue(stack, TemplateHandlers(stack), "IngestFunction", **kwargs)


def run_job(stack: Stack, function: str, event: dict[str, Any], container: str = "",
            retry_failed_after: int | None = None) -> dict[str, Any]:
    """A fanned-out scheduled job through its handlers: the scheduled function with `event`, then its
    workers (one container per job run, as `container` names it) until their queues are empty
    (`retry_failed_after`: a failed message is received again after so many seconds, as SQS would
    after its visibility timeout, until its queue's redrive policy dead-letters it). Returns the
    scheduled function's result, the workers' queue totals and the metrics the handlers reported
    (summed by name)."""
    from infra.pollers import run_job as run

    handlers = {logical: load_handler(stack, logical, container) for logical in stack.functions()
                if logical in (function, *_workers_of(stack, function))}
    _record_metrics()
    _reported.sink = {}
    try:
        ran = run(stack, handlers, function, event=event, retry_failed_after=retry_failed_after)
        return {**ran, "metrics": _reported.sink}
    finally:
        _reported.sink = None


_reported = threading.local()
_record_lock = threading.Lock()


class recorded_metrics:
    """`with recorded_metrics() as metrics:` the metrics this thread's handlers report, summed by name
    (whatever else a test process printed before: EMF on stdout is flushed per handler)."""

    def __enter__(self) -> dict[str, float]:
        _record_metrics()
        _reported.sink = {}
        return _reported.sink

    def __exit__(self, *_: Any) -> None:
        _reported.sink = None


def _record_metrics() -> None:
    """From now on, the metrics a handler reports are also summed into this thread's sink (if any)."""
    from aws_lambda_powertools import Metrics

    with _record_lock:
        original = Metrics.add_metric
        if getattr(original, "recording", False):
            return

        def add_metric(self: Any, name: str, unit: Any, value: float, *args: Any, **kwargs: Any) -> None:
            sink = getattr(_reported, "sink", None)
            if sink is not None:
                sink[name] = sink.get(name, 0) + value
            original(self, name, unit, value, *args, **kwargs)

        add_metric.recording = True  # type: ignore[attr-defined]
        Metrics.add_metric = add_metric  # type: ignore[method-assign]


CLOSE_METRICS = {"closed": "CyclesClosed", "invoiced": "InvoicesIssued", "attempts": "PaymentAttempts",
                 "paid": "InvoicesPaid", "payments_failed": "PaymentsFailed", "failed": "CyclesFailed",
                 "skipped": "CyclesSkipped"}
ALERT_METRICS = {"teams": "TeamsEvaluated", "emails_sent": "AlertsSent"}


def billing_run_event(at: datetime) -> dict[str, Any]:
    """The hourly schedule's EventBridge event for a run at `at`."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": rfc3339(at), "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/hourly"], "detail": {}}


def close_billing(stack: Stack, at: datetime, container: str = "",
                  event: dict[str, Any] | None = None) -> dict[str, int]:
    """A close run scheduled at `at` that starts on time (leases run on the wall clock): the scheduled
    function enqueues the due work, the workers close and charge; what the workers' metrics report."""
    from usage_ledger import clock

    clock.now.set(at)
    return summary(run_job(stack, "CloseBillingCyclesFunction", event or billing_run_event(at), container),
                   CLOSE_METRICS)


def summary(run: dict[str, Any], names: dict[str, str]) -> dict[str, int]:
    """A job run's outcome as its workers' metrics report it, under the old run summary's keys."""
    return {key: int(run["metrics"].get(name, 0)) for key, name in names.items()}


def _workers_of(stack: Stack, function: str) -> list[str]:
    from infra.pollers import fed_queues, sqs_sources

    urls = {stack.physical[queue] for queue in fed_queues(stack, function)}
    return [source.function for source in sqs_sources(stack) if source.queue_url in urls]


def send_events(api: Api, events: list[dict[str, Any]]) -> Reply:
    return api.call("POST", "/v1/events", as_=OPERATOR, raw_body=json.dumps(events),
                    headers={"content-type": "application/cloudevents-batch+json"})


class Clock:
    """The domain's wall clock, frozen for a test and moved by hand."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def set(self, value: datetime) -> None:
        self.current = value


FROZEN_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    from usage_ledger import clock as domain_clock

    frozen = Clock(FROZEN_AT)
    monkeypatch.setattr(domain_clock, "now", frozen)
    return frozen


# ------------------------------------------------------------------ answers


def problem(reply: Reply, status: int) -> dict[str, Any]:
    """The RFC 9457 body of a refusal with this status."""
    assert reply.status == status, reply.text
    assert reply.content_type.startswith("application/problem+json"), reply.headers
    body = reply.json
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status and body["detail"]
    return body


def paths(reply: Reply, status: int = 422) -> list[str]:
    """The fields a validation failure names."""
    return [error["path"] for error in problem(reply, status)["errors"]]


def queued(stack: Stack) -> int:
    """Messages waiting on the events queue (what POST /v1/events enqueued and ingest has not taken)."""
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.physical["EventsFifoQueue"], AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])
