"""`make bench`: what each unit of work costs, and import time.

Per path: DynamoDB requests by operation, write/read request units estimated from the actual
item sizes, SQS requests, SES sends (all recorded with botocore hooks, see bench/meter.py) and
handler wall time (converted to Lambda GB-s at the template's MemorySize); each handler's import
time against `import boto3`, alternated in fresh interpreters (bench/imports.py): as built
(`make build-host`'s output in a Lambda-like Python 3.12, no bytecode written: the cold start's
code) and from the repository in the dev venv. Prints one JSON
document; also written to bench/results.json, whose "cost_table" feeds docs/operations.md.
Everything runs against moto in-process through the real handlers, so the counts are the
requests production would make; the timings are moto's, not DynamoDB's.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "shared"), str(ROOT / "tests")]
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  POWERTOOLS_TRACE_DISABLED="1", POWERTOOLS_LOG_LEVEL="ERROR", POWERTOOLS_METRICS_DISABLED="true")

import boto3  # noqa: E402
import conftest  # noqa: E402  (the test harness: Api, World, builders)
from moto import mock_aws  # noqa: E402

from bench import imports, meter  # noqa: E402
from bench.meter import Meter, Sample, counting, median, timed, typical  # noqa: E402
from infra.stack import deploy, load_template  # noqa: E402

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
ADMIN = conftest.Identity.user("alice")


TEMPLATE = load_template()
MILLION = 1_000_000


def memory_mb(logical_id: str) -> int:
    """MemorySize of a template function (its own, else the Globals')."""
    props = TEMPLATE["Resources"][logical_id]["Properties"]
    memory = props.get("MemorySize", TEMPLATE["Globals"]["Function"]["MemorySize"])
    if isinstance(memory, dict) and "Ref" in memory:  # a parameter: its default
        memory = TEMPLATE["Parameters"][memory["Ref"]]["Default"]
    return int(memory)


def architecture(logical_id: str) -> str:
    props = TEMPLATE["Resources"][logical_id]["Properties"]
    return props.get("Architectures", TEMPLATE["Globals"]["Function"].get("Architectures", ["x86_64"]))[0]


def per_unit(counter: Meter, units: float, function: str, timing: dict[str, float],
             invocations: float) -> dict[str, Any]:
    """A meter's figures per unit of work, plus the Lambda duration of that unit at the template's
    memory size. `timing` (from meter.typical) is already per unit."""
    summary = counter.summary(per=units)
    gb = memory_mb(function) / 1024
    summary.update({
        "lambda_function": function,
        "lambda_invocations": round(invocations, 4),
        "handler_wall_seconds_moto": round(timing["wall"], 6),
        "handler_own_cpu_seconds": round(timing["own_cpu"], 6),
        "handler_aws_calls": round(timing["aws_calls"], 4),
        "handler_seconds_estimate": round(timing["estimate"], 6),
        "lambda_gb_s": round(timing["estimate"] * gb, 7),
        "lambda_gb_s_upper_moto_wall": round(timing["wall"] * gb, 7),
    })
    return summary


@contextmanager
def timing_ingest(invocations: list[tuple[Sample, int]], messages: list[Sample]) -> Iterator[None]:
    """Time every invocation the queue poller makes meanwhile, and the batch apply inside each."""
    from usage_ledger.service.ingest import Ingest

    from infra import pollers

    original_invoke, original_apply = pollers.invoke, Ingest.apply_batch

    def invoke(stack: Any, handlers: Any, function_logical_id: str, event: dict[str, Any]) -> Any:
        samples: list[Sample] = []
        try:
            with timed(samples):
                return original_invoke(stack, handlers, function_logical_id, event)
        finally:
            invocations.append((samples[0], len(event.get("Records", []))))

    def apply_message(*args: Any, **kwargs: Any) -> Any:
        with timed(messages):
            return original_apply(*args, **kwargs)

    pollers.invoke = invoke  # type: ignore[assignment]
    Ingest.apply_batch = apply_message  # type: ignore[assignment]
    try:
        yield
    finally:
        pollers.invoke = original_invoke  # type: ignore[assignment]
        Ingest.apply_batch = original_apply  # type: ignore[assignment]


def ingest_timing(invocations: list[tuple[Sample, int]], batches: list[Sample], events_per_message: int
                  ) -> dict[str, float]:
    """Per event: the median batch apply (one per invocation: the batch is folded per team and
    resource), plus the invocation's own part (decoding, logging, metrics), over its events."""
    per_batch = typical(batches)
    fixed = [Sample(invocation.wall - applied.wall, invocation.own_cpu - applied.own_cpu,
                    invocation.aws_calls - applied.aws_calls)
             for (invocation, _), applied in zip(invocations, batches, strict=False)]
    spread = typical(fixed)
    events = median([count for _, count in invocations]) * events_per_message
    return {key: (per_batch[key] + spread[key]) / events for key in per_batch}


@contextmanager
def fresh_stack() -> Iterator[conftest.Api]:
    from usage_ledger import clock

    with mock_aws():
        meter.install()  # hooks boto3's default session, which moto has just reset
        stack = deploy(boto3.session.Session(region_name="us-east-1"), parameters=conftest.stripe_parameters())
        conftest.apply_environment(stack)
        original = clock.now
        clock.now = lambda: NOW  # type: ignore[assignment]
        try:
            yield conftest.Api(stack)
        finally:
            clock.now = original  # type: ignore[assignment]
            meter.uninstall()
    conftest.reset_domain_caches()


BATCHES = 10  # one ingest invocation of 10 messages (the template's BatchSize); median over messages
SINGLES = 100  # 10 invocations


def _post_single(api: conftest.Api, event: dict[str, Any]) -> conftest.Reply:
    return api.call("POST", "/v1/events", as_=conftest.OPERATOR, raw_body=json.dumps(event),
                    headers={"content-type": "application/cloudevents+json"})


def _ingest_world(api: conftest.Api) -> None:
    world = conftest.World(api)
    world.resource("minutes", size=20)
    world.team("team-a")
    world.subscription("team-a", "minutes", "flex", quantity=100_000)


def ingest_path() -> dict[str, Any]:
    """POST /v1/events (ProducerApiFunction) and the queue drained by IngestFunction, one team and
    resource, 100-event batches."""
    with fresh_stack() as api:
        _ingest_world(api)
        batches = [[conftest.cloud_event("team-a", "minutes", 7, NOW - timedelta(minutes=batch * 100 + i),
                                         id=f"b{batch}-{i}", user_id=f"u{i % 5}") for i in range(100)]
                   for batch in range(BATCHES)]
        # the first request loads the catalogue (cached 60 s per container): not a per-request cost
        assert conftest.send_events(api, batches[0]).status == 202
        posts: list[Sample] = []
        with counting() as accept:
            for events in batches[1:]:
                with timed(posts):
                    assert conftest.send_events(api, events).status == 202
        invocations: list[tuple[Sample, int]] = []
        messages: list[Sample] = []
        with counting() as counter, timing_ingest(invocations, messages):
            conftest.drain_events(api.stack)
        events_total = BATCHES * 100
        return {"events": events_total, "batches_of": 100, "dynamodb_requests": counter.total,
                "requests_per_event": round(counter.total / events_total, 4), "by_operation": dict(counter.calls),
                "accept_per_request": per_unit(accept, len(posts), "ProducerApiFunction", typical(posts), 1),
                "apply_per_event": per_unit(counter, events_total, "IngestFunction",
                                            ingest_timing(invocations, messages, 100),
                                            len(invocations) / events_total)}


def ingest_single_events() -> dict[str, Any]:
    """The same, one event per POST /v1/events request (one SQS message per event)."""
    with fresh_stack() as api:
        _ingest_world(api)
        events = [conftest.cloud_event("team-a", "minutes", 7, NOW - timedelta(minutes=i), user_id=f"u{i % 5}")
                  for i in range(SINGLES + 1)]
        assert _post_single(api, events[0]).status == 202  # warms the catalogue cache
        posts: list[Sample] = []
        with counting() as accept:
            for event in events[1:]:
                with timed(posts):
                    assert _post_single(api, event).status == 202
        invocations: list[tuple[Sample, int]] = []
        messages: list[Sample] = []
        with counting() as counter, timing_ingest(invocations, messages):
            conftest.drain_events(api.stack)
        total = SINGLES + 1
        return {"events": total, "dynamodb_requests": counter.total,
                "requests_per_event": round(counter.total / total, 4), "by_operation": dict(counter.calls),
                "accept_per_request": per_unit(accept, len(posts), "ProducerApiFunction", typical(posts), 1),
                "apply_per_event": per_unit(counter, total, "IngestFunction", ingest_timing(invocations, messages, 1),
                                            len(invocations) / total)}


READ_RUNS = 5


def read_paths() -> dict[str, Any]:
    with fresh_stack() as api:
        world = conftest.World(api)
        world.team("team-a")
        for r in range(10):
            world.resource(f"res-{r}", kind="api" if r % 2 else "resource", size=1)
            for s in range(3):
                world.subscription("team-a", f"res-{r}", ["free", "flex", "token_flex"][s], quantity=100)
        day = NOW - timedelta(days=729)
        events = []
        while day < NOW:
            events.append(conftest.cloud_event("team-a", "res-0", 1, day))
            day += timedelta(days=1)
            if len(events) == 100:
                conftest.send_events(api, events)
                events = []
        if events:
            conftest.send_events(api, events)
        conftest.drain_events(api.stack)
        api.get("/v1/teams/team-a/balances", as_=ADMIN)  # warm the container's catalogue cache
        results: dict[str, Any] = {}
        for name, path, query, identity in [
            ("balances_10_resources_x_3_subscriptions", "/v1/teams/team-a/balances", "", ADMIN),
            ("one_balance", "/v1/teams/team-a/balances/res-0", "", ADMIN),
            ("usage_24_months_by_day_one_resource", "/v1/teams/team-a/usage",
             "from=2024-11-26&to=2026-11-25&granularity=day&resource_id=res-0", ADMIN),
            ("usage_24_months_by_month_one_resource", "/v1/teams/team-a/usage",
             "from=2024-12-01&to=2026-11-30&granularity=month&resource_id=res-0", ADMIN),
            ("usage_24_months_by_month_all_resources", "/v1/teams/team-a/usage",
             "from=2024-12-01&to=2026-11-30&granularity=month", ADMIN),
            ("entitlement_check", "/v1/teams/team-a/entitlements/res-0", "", conftest.OPERATOR),
        ]:
            with counting() as counter:
                reply = api.get(path, as_=identity, query=query)
            assert reply.status == 200, reply.text
            seconds: list[Sample] = []
            for _ in range(READ_RUNS):  # outside any window: the hooks stay idle
                with timed(seconds):
                    api.get(path, as_=identity, query=query)
            function = "OperatorApiFunction" if identity is conftest.OPERATOR else "TeamApiFunction"
            results[name] = {"dynamodb_requests": counter.total, "by_operation": dict(counter.calls),
                             "per_request": per_unit(counter, 1, function, typical(seconds), 1)}
            if identity is ADMIN:
                results[name]["note"] = "includes the membership GetItem that authorizes the caller"
        return results


def optional(name: str, module: str) -> Any:
    """Paths added by later issues register themselves in bench/<module>.py."""
    try:
        return __import__(f"bench.{module}", fromlist=["run"]).run(fresh_stack, counting)
    except ModuleNotFoundError:
        return {"skipped": f"bench/{module}.py not present"}


def _row(name: str, parts: list[tuple[dict[str, Any], float]], api_requests: float = 0.0) -> dict[str, Any]:
    """One cost-table row: the sum of per-unit figures, each times how many of them the row holds."""
    def total(key: str) -> float:
        return sum(part[key] * times for part, times in parts)

    return {
        "unit": name,
        "dynamodb_requests": round(total("dynamodb_requests"), 3),
        "wru": round(total("wru"), 3),
        "rru": round(total("rru"), 3),
        "gsi_wru_included": round(total("gsi_wru"), 3),
        "lambda_gb_s": round(total("lambda_gb_s"), 4),
        "lambda_invocations": round(total("lambda_invocations"), 3),
        "sqs_requests": round(total("sqs_requests"), 3),
        "sqs_billed_requests": round(total("sqs_billed_requests"), 3),
        "sqs_messages_sent": round(total("sqs_messages_sent"), 3),
        "ses_emails": round(total("ses_emails"), 3),
        "http_api_requests": api_requests,
    }


def cost_table(results: dict[str, Any]) -> dict[str, Any]:
    """The rows of docs/operations.md "Cost and scale on paper", from the figures above."""
    batched, single = results["ingest"], results["ingest_single_events"]
    rows = [
        _row("1 million usage events, 100-event batches (one team+resource per batch)",
             [(batched["accept_per_request"], MILLION / 100), (batched["apply_per_event"], MILLION)],
             api_requests=MILLION / 100),
        _row("1 million usage events, single-event requests",
             [(single["accept_per_request"], MILLION), (single["apply_per_event"], MILLION)], api_requests=MILLION),
        _row("1 balances read (GET /v1/teams/{team_id}/balances)",
             [(results["reads"]["balances_10_resources_x_3_subscriptions"]["per_request"], 1)], api_requests=1),
    ]
    close = results["close_billing_cycles"]
    if "20_teams" in close:
        rows.append(_row("1 closed billing cycle (invoice + payment + email)",
                         [(close["20_teams"]["per_closed_cycle"], 1)]))
    alerts = results["evaluate_alerts"]
    if "scheduled_run" in alerts:
        rows.append(_row("1 scheduled alert run per 1,000 teams with alerts",
                         [(alerts["scheduled_run"]["per_1000_teams"], 1)]))
        rows.append(_row("1 alert email (stream-triggered evaluation of one team that sends it)",
                         [(alerts["stream_invocation_one_email"]["per_email"], 1)]))
        rows.append(_row("1 stream-triggered alert evaluation of one team, no email",
                         [(alerts["stream_invocation_one_team"]["per_invocation"], 1)]))
    return {
        "how": ("DynamoDB WRU/RRU estimated from the actual item sizes by the on-demand rules "
                "(bench/meter.py); Lambda GB-s = handler wall time against in-process moto x MemorySize; "
                "SQS requests = send + receive + delete calls (billed per 64 KB chunk), idle polling "
                "excluded; no prices"),
        "lambda_memory_mb": memory_mb("IngestFunction"),
        "lambda_architecture": architecture("IngestFunction"),
        "rows": rows,
    }


def main() -> None:
    started = time.perf_counter()
    results = {
        "ingest": ingest_path(),
        "ingest_single_events": ingest_single_events(),
        "reads": read_paths(),
        "close_billing_cycles": optional("close", "close_cycles"),
        "evaluate_alerts": optional("alerts", "alerts"),
        "scale_writer": optional("scale_writer", "scale_writer"),  # issue 18: one writer per hot key, fan-out
        "bounded_items": optional("bounded items", "scale_items"),
        # each handler against `import boto3`, alternated (bench/imports.py): from the build output
        # (make bench builds it first: make build-host), and from the repository
        "imports_built": imports.run(build=ROOT / ".aws-sam" / "host"),
        "imports": imports.run(),
    }
    results["cost_table"] = cost_table(results)
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(results, indent=2)
    (ROOT / "bench" / "results.json").write_text(text + "\n")
    print(text)
    for key in ("imports_built", "imports"):  # stdout stays one JSON document
        print(f"{key}:\n{imports.table(results[key])}", file=sys.stderr)


if __name__ == "__main__":
    main()
