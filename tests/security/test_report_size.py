"""An oversized usage report (issue 17): 300 users over 24 months by day was one 8-12 MB answer,
past Lambda's 6 MB response limit (a 500 when deployed). Reports are paged by key and a page stops
at about 768 KB, so one answer stays far below 6 MB whatever the team's size: here 5,000 users
over 730 days, as JSON and as CSV, with the Lambda's own time and memory measured (moto's excluded).

The usage table is filled directly (the UsageStore's own item updates, written as batch puts),
not through ingest, to stay fast. Each user has usage on one day, so the items stay small enough
for moto (whose item-size check is quadratic in an item's attributes): a page's answer is the same
size as for users with usage every day (every series has all 730 points, zero-filled), but
DynamoDB's reads are not. docs/data-model.md has what a page of a team whose 5,000 users all use
the resource every day reads.
"""
from __future__ import annotations

import csv
import io
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

import boto3
import pytest
from conftest import Identity, reset_domain_caches

ALICE = Identity.user("alice")
USERS = 5_000
FIRST = date(2024, 11, 26)  # 730 days to FROZEN_AT (2026-11-25), inside the 24 months a report reaches
DAYS = 730
QUERY = "from=2024-11-26&to=2026-11-25&granularity=day&group_by=user&resource_id=minutes&limit=100"
LIMIT_BYTES = 1_000_000  # what the test holds a page to; Lambda's limit is 6 MB
# a Lambda at the template's 512 MB has about a third of a vCPU; 30 s is the function's timeout
OWN_SECONDS = 5.0
PEAK_BYTES = 64 * 1024 * 1024


def user(number: int) -> str:
    return f"user-{number:04d}"


def fill_usage_table(team_id: str, resource_id: str) -> int:
    """5,000 users' usage over 730 days, as the ingest transaction would have left it; returns the
    number of items written."""
    from usage_ledger.adapters.dynamodb.usage import UsageStore
    from usage_ledger.config import settings
    from usage_ledger.domain.model import UsageEvent

    events = [
        UsageEvent("test/oversized", str(number), team_id, resource_id, Decimal(1 + number % 997) / 4,
                   datetime.combine(FIRST + timedelta(days=number % DAYS), clock_time(12), UTC),
                   user_id=user(number))
        for number in range(USERS)
    ]
    table = settings().usage_table
    items = []
    for update in UsageStore(table).aggregate_updates(team_id, resource_id, events):
        names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
        adds, sets = update["UpdateExpression"].removeprefix("ADD ").split(" SET ")
        item = dict(update["Key"])
        for pair in adds.split(", "):
            name, value = pair.split(" ")
            item[names[name]] = values[value]
        assert sets == "expires_at = :ttl, resource_id = :rid"
        item.update(expires_at=values[":ttl"], resource_id=values[":rid"])
        items.append(item)
    client = boto3.client("dynamodb")
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]
        client.batch_write_item(RequestItems={table: batch})
    return len(items)


@dataclass
class Cost:
    wall: float = 0.0
    moto: float = 0.0  # inside moto (what DynamoDB would do), excluded from the Lambda's figures
    peak: int = 0  # bytes the handler held at most above what was allocated before it, moto's excluded

    @property
    def own(self) -> float:
        return self.wall - self.moto


@contextmanager
def lambda_cost(monkeypatch: pytest.MonkeyPatch, *, memory: bool) -> Iterator[Cost]:
    """Wall time of the block less the time inside moto; with `memory`, the traced peak of the
    block's allocations less moto's (tracemalloc's peak is reset after each moto call, so what
    moto allocates while it answers is not counted; its answer, which the SDK parses, is)."""
    from moto.core.botocore_stubber import BotocoreStubber

    cost = Cost()
    original = BotocoreStubber.__call__

    def measured(self: Any, *args: Any, **kwargs: Any) -> Any:
        if memory:
            cost.peak = max(cost.peak, tracemalloc.get_traced_memory()[1] - baseline)
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            cost.moto += time.perf_counter() - started
            if memory:
                tracemalloc.reset_peak()

    monkeypatch.setattr(BotocoreStubber, "__call__", measured)
    if memory:
        tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0] if memory else 0
    started = time.perf_counter()
    try:
        yield cost
    finally:
        cost.wall = time.perf_counter() - started
        if memory:
            cost.peak = max(cost.peak, tracemalloc.get_traced_memory()[1] - baseline)
            tracemalloc.stop()
        monkeypatch.setattr(BotocoreStubber, "__call__", original)


@pytest.fixture
def big_team(api, world):
    world.resource("minutes", kind="api", size=20)
    world.team("team-a")
    world.subscription("team-a", "minutes", "flex", quantity=10)
    # a total per day and per month, a share item per user and month, one per month for "no app"
    assert fill_usage_table("team-a", "minutes") == DAYS + 25 + USERS + 25
    return "team-a"


def test_a_5000_user_24_month_daily_report_is_paged_far_below_6_mb(api, big_team, monkeypatch):
    from bench import meter

    meter.install()  # counts DynamoDB requests and read units (from the items' real sizes)
    reset_domain_caches()  # clients built after the meter's hooks
    try:
        api.get(f"/v1/teams/{big_team}/balances", as_=ALICE)  # a warm container: catalogue cached
        with meter.counting() as reads:
            first = api.get(f"/v1/teams/{big_team}/usage", as_=ALICE, query=QUERY)
    finally:
        meter.uninstall()
    assert first.status == 200, first.text[:500]
    page = first.json
    series = page["series"]
    # the page stops at about 768 KB: some 29 series of 730 days, not the 100 asked for
    assert 25 <= len(series) < 100 and len(first.text.encode()) < LIMIT_BYTES
    assert [s["key"]["user_id"] for s in series] == [user(number) for number in range(len(series))]
    assert all(len(s["points"]) == DAYS for s in series)
    assert series[1]["points"][1] == {"period": "2024-11-27", "quantity": 0.5}
    assert page["next_cursor"] and first.headers["X-Next-Cursor"] == page["next_cursor"]
    # one Query of the share items (one per user and month) of the page's users and the next one:
    # what a page reads is the page's, whatever the number of users (issue 18)
    assert reads.calls == {"GetItem": 1, "Query": 1}, reads.calls
    assert sum(reads.rru.values()) < 50, dict(reads.rru)

    # the next page as CSV, with the Lambda's own time (tracemalloc slows it: an upper bound) and memory
    with lambda_cost(monkeypatch, memory=True) as cost:
        second = api.get(f"/v1/teams/{big_team}/usage", as_=ALICE, query=f"{QUERY}&cursor={page['next_cursor']}",
                         headers={"Accept": "text/csv"})
    assert second.status == 200 and second.content_type == "text/csv; charset=utf-8"
    assert len(second.text.encode()) < LIMIT_BYTES
    rows = list(csv.reader(io.StringIO(second.text)))
    following = sorted({row[1] for row in rows[1:]})
    assert following == [user(number) for number in range(len(series), len(series) + len(following))]
    assert len(rows) == 1 + DAYS * len(following) and rows[1] == ["2024-11-26", user(len(series)), "0"]
    assert second.headers["X-Next-Cursor"]

    figures = {
        "json_page_bytes": len(first.text.encode()), "series_per_json_page": len(series),
        "csv_page_bytes": len(second.text.encode()), "series_per_csv_page": len(following),
        "dynamodb_requests": dict(reads.calls), "read_units": sum(reads.rru.values()),
        "lambda_own_seconds_traced": round(cost.own, 3), "moto_seconds": round(cost.moto, 3),
        "lambda_peak_mb": round(cost.peak / 2**20, 1),
    }
    print("oversized report:", figures)
    assert cost.own < OWN_SECONDS, figures
    assert cost.peak < PEAK_BYTES, figures
