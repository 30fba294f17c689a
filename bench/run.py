"""`make bench`: DynamoDB requests per path (counted with a botocore hook, not timed) and import time.

Prints one JSON document; also written to bench/results.json. Everything runs against moto
in-process through the real handlers, so the counts are the requests production would make.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "shared"), str(ROOT / "tests")]
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  POWERTOOLS_TRACE_DISABLED="1", POWERTOOLS_LOG_LEVEL="ERROR", POWERTOOLS_METRICS_DISABLED="true")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

import conftest  # noqa: E402  (the test harness: Api, World, builders)
from infra.stack import deploy  # noqa: E402

NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
ADMIN = conftest.Identity.user("alice")


class RequestCounter:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, event_name: str, **_: Any) -> None:
        self.calls[event_name.rsplit(".", 1)[-1]] += 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@contextmanager
def counting() -> Iterator[RequestCounter]:
    from usage_ledger.adapters import aws

    counter = RequestCounter()
    events = aws.client("dynamodb").meta.events
    events.register("before-call.dynamodb", counter)
    try:
        yield counter
    finally:
        events.unregister("before-call.dynamodb", counter)


@contextmanager
def fresh_stack() -> Iterator[conftest.Api]:
    from usage_ledger import clock

    with mock_aws():
        stack = deploy(boto3.session.Session(region_name="us-east-1"))
        conftest.apply_environment(stack)
        original = clock.now
        clock.now = lambda: NOW  # type: ignore[assignment]
        try:
            yield conftest.Api(stack)
        finally:
            clock.now = original  # type: ignore[assignment]
    conftest.reset_domain_caches()


def ingest_path() -> dict[str, Any]:
    with fresh_stack() as api:
        world = conftest.World(api)
        world.resource("minutes", size=20)
        world.team("team-a")
        world.subscription("team-a", "minutes", "flex", quantity=100_000)
        for batch in range(10):
            events = [conftest.cloud_event("team-a", "minutes", 7, NOW - timedelta(minutes=batch * 100 + i),
                                           id=f"b{batch}-{i}", user_id=f"u{i % 5}") for i in range(100)]
            assert conftest.send_events(api, events).status == 202
        with counting() as counter:
            conftest.drain_events(api.stack)
        return {"events": 1000, "batches_of": 100, "dynamodb_requests": counter.total,
                "requests_per_event": round(counter.total / 1000, 4), "by_operation": dict(counter.calls)}


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
        for name, path, query in [
            ("balances_10_resources_x_3_subscriptions", "/v1/teams/team-a/balances", ""),
            ("one_balance", "/v1/teams/team-a/balances/res-0", ""),
            ("usage_24_months_by_day_one_resource", "/v1/teams/team-a/usage",
             "from=2024-11-26&to=2026-11-25&granularity=day&resource_id=res-0"),
            ("usage_24_months_by_month_one_resource", "/v1/teams/team-a/usage",
             "from=2024-12-01&to=2026-11-30&granularity=month&resource_id=res-0"),
            ("usage_24_months_by_month_all_resources", "/v1/teams/team-a/usage",
             "from=2024-12-01&to=2026-11-30&granularity=month"),
        ]:
            with counting() as counter:
                reply = api.get(path, as_=ADMIN, query=query)
            assert reply.status == 200, reply.text
            results[name] = {"dynamodb_requests": counter.total, "by_operation": dict(counter.calls),
                             "note": "includes the membership GetItem that authorizes the caller"}
        with counting() as counter:
            reply = api.get("/v1/teams/team-a/entitlements/res-0", as_=conftest.OPERATOR)
        assert reply.status == 200, reply.text
        results["entitlement_check"] = {"dynamodb_requests": counter.total, "by_operation": dict(counter.calls)}
        return results


def import_times() -> dict[str, Any]:
    """Cold-start import time of each handler module, median of 5 fresh interpreters (ms)."""
    results = {}
    for function in ["operator_api", "producer_api", "team_api", "ingest", "close_billing_cycles",
                     "evaluate_alerts"]:
        if not (ROOT / "functions" / function / "app.py").exists():
            continue
        code = (
            "import sys, time; sys.path[:0] = [%r, %r]; t = time.perf_counter(); import app; "
            "print((time.perf_counter() - t) * 1000)"
        ) % (str(ROOT / "functions" / function), str(ROOT / "shared"))
        env = {**os.environ, "LEDGER_TABLE": "x", "USAGE_TABLE": "x", "DEDUPE_TABLE": "x"}
        samples = []
        for _ in range(5):
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            samples.append(float(out.stdout.strip().splitlines()[-1]))
        results[function] = {"import_ms_median": round(sorted(samples)[2], 1)}
    return results


def optional(name: str, module: str) -> Any:
    """Paths added by later issues register themselves in bench/<module>.py."""
    try:
        return __import__(f"bench.{module}", fromlist=["run"]).run(fresh_stack, counting)
    except ModuleNotFoundError:
        return {"skipped": f"bench/{module}.py not present"}


def main() -> None:
    started = time.perf_counter()
    results = {
        "ingest": ingest_path(),
        "reads": read_paths(),
        "close_billing_cycles": optional("close", "close_cycles"),
        "evaluate_alerts": optional("alerts", "alerts"),
        "cold_start_imports": import_times(),
    }
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(results, indent=2)
    (ROOT / "bench" / "results.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
