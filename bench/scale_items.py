"""Bench (issue 18, bounded items): what an event costs to write as a team's users grow, and what a
balance card reads as a team's history grows.

- write units per event as a team's users grow: the month already has every user (one event
  each), then 1,000 more events of the same day in 100-event messages are applied and metered.
  The team's size is what varies: every message has 5 distinct users (taken in turn from the
  team's 5, 500 or 5,000), so each row writes as many items a message and only the items' sizes
  could differ. One more row is the worst case for per-user items, whatever the team's size:
  every event of a message a different user (100 distinct users a message, 5,000 in the team).
- items a card reads (GET /balances) for a team with 60 months of history (a payg subscription
  invoiced every month, a monthly prepaid one debited every month) against a new team.
Everything through the real handlers against in-process moto (bench/meter.py estimates the units
from the items' real sizes). Alone: `python -c "from bench import run; from bench import scale_items as s;
print(s.run(run.fresh_stack, run.counting))"`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import conftest
from usage_ledger import clock

from bench.run import ADMIN, NOW

MEASURED_EVENTS = 1_000


@contextmanager
def without_moto_transaction_snapshots() -> Iterator[list[str]]:
    """In-process moto deep-copies a whole table for every item of every TransactWriteItems (to
    roll back if it fails): quadratic in the table's size, hours for tens of thousands of items.
    Meanwhile the copy is skipped; the list it yields collects every cancelled transaction, and a
    caller that finds one must fail (without the snapshot a cancelled transaction may have left
    part of its writes). Without cancellations the tables are what moto would have left."""
    import copy as real_copy

    import moto.dynamodb.models as moto_models
    from moto.dynamodb.models.table import Table
    from usage_ledger.adapters import aws

    class Copy:
        @staticmethod
        def deepcopy(value: Any, *args: Any) -> Any:
            return value if isinstance(value, Table) else real_copy.deepcopy(value, *args)

    cancelled: list[str] = []

    def record(parsed: dict[str, Any], **_: Any) -> None:
        if parsed.get("Error", {}).get("Code") == "TransactionCanceledException":
            cancelled.append(str(parsed.get("CancellationReasons")))

    original = moto_models.copy
    moto_models.copy = Copy  # type: ignore[assignment]
    events = aws.client("dynamodb").meta.events
    events.register("after-call.dynamodb.TransactWriteItems", record)
    try:
        yield cancelled
    finally:
        moto_models.copy = original
        events.unregister("after-call.dynamodb.TransactWriteItems", record)
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)


MESSAGE = 100  # events a message (POST /v1/events takes 1 to 100)
DISTINCT_USERS = 5  # distinct users a message in the rows that vary the team's size


def _events(team: str, users: int, count: int, distinct: int) -> list[dict[str, Any]]:
    """`count` events of one UTC day (as they arrive: the last hours'), each message holding
    `distinct` users, the messages taking the team's users in turn."""
    def user(number: int) -> int:
        message, place = divmod(number, MESSAGE)
        return (message * distinct + place % distinct) % users

    return [conftest.cloud_event(team, "minutes", 1 + number % 3,
                                 MONTH_START + timedelta(days=20, minutes=number),
                                 user_id=f"user-{user(number):05d}", app_id=f"app-{number % 3}")
            for number in range(count)]


def _ingest(api: Any, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 100):
        reply = conftest.send_events(api, events[start:start + 100])
        assert reply.status == 202, reply.text
    conftest.drain_events(api.stack)


def _write_units(fresh_stack: Any, counting: Any, users: int, distinct: int = DISTINCT_USERS) -> dict[str, Any]:
    with fresh_stack() as api, without_moto_transaction_snapshots() as cancelled:
        world = conftest.World(api)
        world.resource("minutes", size=1)
        team = world.team("team-a")
        world.subscription(team, "minutes", "flex", quantity=10_000_000, starts_at="2026-01-01T00:00:00Z")
        _ingest(api, [conftest.cloud_event(team, "minutes", 1, MONTH_START + timedelta(hours=number % 480),
                                           user_id=f"user-{number:05d}") for number in range(users)])
        events = _events(team, users, MEASURED_EVENTS, distinct)
        for start in range(0, len(events), MESSAGE):
            assert conftest.send_events(api, events[start:start + MESSAGE]).status == 202
        with counting() as meter:  # the apply only (the accept's cost does not depend on users)
            conftest.drain_events(api.stack)
        summary = meter.summary(per=MEASURED_EVENTS)
        assert not cancelled, cancelled
        return {"users": users, "distinct_users_a_message": distinct, "wru_per_event": summary["wru"],
                "wru_by_table": summary["wru_by_table"], "largest_item_bytes": _largest_item(api)}


def _largest_item(api: Any) -> int:
    import boto3

    from bench.meter import item_size

    client, largest = boto3.client("dynamodb"), 0
    for table in (api.stack.physical["UsageTable"], api.stack.physical["LedgerTable"]):
        kwargs: dict[str, Any] = {}
        while True:
            page = client.scan(TableName=table, **kwargs)
            largest = max([largest, *(item_size(item) for item in page["Items"])])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return largest


def _close(api: Any, at: datetime) -> None:
    """The hourly close run at `at`: the scheduled function enqueues, its workers close."""
    clock.now = lambda: at  # type: ignore[assignment]
    ran = conftest.run_job(api.stack, "CloseBillingCyclesFunction", conftest.billing_run_event(at))
    assert ran["metrics"].get("CyclesFailed", 0) == 0, ran


def _card_reads(api: Any, counting: Any, team: str) -> dict[str, Any]:
    from usage_ledger.adapters import aws

    clock.now = lambda: NOW  # type: ignore[assignment]
    read: list[int] = []

    def count(parsed: dict[str, Any], **_: Any) -> None:
        read.append(int(parsed.get("ScannedCount", 0)))

    events = aws.client("dynamodb").meta.events
    events.register("after-call.dynamodb.Query", count)
    try:
        with counting() as meter:
            reply = api.get(f"/v1/teams/{team}/balances", as_=ADMIN)
    finally:
        events.unregister("after-call.dynamodb.Query", count)
    assert reply.status == 200, reply.text
    return {"items_read": sum(read), "queries": len(read), "rru": meter.summary()["rru"],
            "balance_item_bytes": _balance_bytes(api, team)}


def _balance_bytes(api: Any, team: str) -> int:
    import boto3

    from bench.meter import item_size

    item = boto3.client("dynamodb").get_item(TableName=api.stack.physical["LedgerTable"],
                                              Key={"PK": {"S": f"TEAM#{team}"}, "SK": {"S": "RES#minutes#BAL"}})
    return item_size(item.get("Item"))


def _history(fresh_stack: Any, counting: Any) -> dict[str, Any]:
    with fresh_stack() as api:
        world = conftest.World(api)
        world.resource("minutes", size=1)
        start = NOW.replace(day=1, hour=0) - timedelta(days=60 * 31)
        start = start.replace(day=1)
        results = {}
        for team, months in (("team-old", 60), ("team-new", 1)):
            world.team(team)
            first = NOW.replace(day=1, hour=0) if months == 1 else start
            anchor = first.strftime("%Y-%m-%dT%H:%M:%SZ")
            world.subscription(team, "minutes", "payg", purchased_at=anchor, starts_at=anchor,
                               subscription_id=f"{team}-payg")
            world.subscription(team, "minutes", "flex", quantity=5, refresh_period="month", starts_at=anchor,
                               subscription_id=f"{team}-flex")
            at = first
            for _ in range(months):
                clock.now = lambda at=at: at + timedelta(days=3)  # type: ignore[assignment]
                _ingest(api, [conftest.cloud_event(team, "minutes", 8, at + timedelta(days=2))])
                nxt = (at + timedelta(days=32)).replace(day=1)
                if nxt <= NOW:
                    _close(api, nxt + timedelta(hours=2))
                at = nxt
            results[team] = _card_reads(api, counting, team)
        return {"after_60_months": results["team-old"], "new_team": results["team-new"]}


def run(fresh_stack: Any, counting: Any) -> dict[str, Any]:
    writes = {f"{users}_users": _write_units(fresh_stack, counting, users) for users in (5, 500, 5_000)}
    writes["5000_users_every_event_a_new_user"] = _write_units(fresh_stack, counting, 5_000, distinct=MESSAGE)
    cards = _history(fresh_stack, counting)
    return {
        "write_units_per_event": writes,
        "wru_ratio_5000_over_5_users": round(writes["5000_users"]["wru_per_event"]
                                             / writes["5_users"]["wru_per_event"], 2),
        "wru_ratio_every_event_a_new_user_over_5_users": round(
            writes["5000_users_every_event_a_new_user"]["wru_per_event"] / writes["5_users"]["wru_per_event"], 2),
        "card_reads": cards,
        "card_items_ratio_60_months_over_new": round(cards["after_60_months"]["items_read"]
                                                     / max(cards["new_team"]["items_read"], 1), 2),
    }
