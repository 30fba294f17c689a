"""The usage table: actual usage per team, resource and UTC day or month, by user and by app.

One item per (team, resource, period); per-user and per-app totals are attributes of it
(`u:<user_id>`, `a:<app_id>`), so a batch adds to a day with one update and a 24-month
month view reads 24 items.
"""
from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any, Iterable

from usage_ledger.adapters import dynamo
from usage_ledger.config import settings
from usage_ledger.domain.calendar import utc_day
from usage_ledger.domain.model import UsageEvent

USER_PREFIX = "u:"
APP_PREFIX = "a:"
# reports reach 24 months back; aggregates stay a little longer, then TTL removes them
RETENTION = timedelta(days=25 * 31)


def table() -> str:
    return settings().usage_table


def period_sk(granularity: str, resource_id: str, period: str) -> str:
    return f"{'D' if granularity == 'day' else 'M'}#{resource_id}#{period}"


def aggregate_updates(team_id: str, resource_id: str, events: Iterable[UsageEvent]) -> list[dict[str, Any]]:
    """TransactWriteItems Update entries that add the events to their day and month items."""
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    expiry: dict[str, int] = {}
    for event in events:
        day = utc_day(event.time)
        for granularity, period in (("day", day.isoformat()), ("month", day.isoformat()[:7])):
            sk = period_sk(granularity, resource_id, period)
            bucket = totals[sk]
            bucket["quantity"] += event.quantity
            bucket[USER_PREFIX + (event.user_id or "")] += event.quantity
            bucket[APP_PREFIX + (event.app_id or "")] += event.quantity
            expiry[sk] = calendar.timegm((day + RETENTION).timetuple())
    updates = []
    for sk in sorted(totals):
        names, adds, value_map = {}, [], {}
        for index, (attribute, amount) in enumerate(sorted(totals[sk].items())):
            names[f"#a{index}"] = attribute
            value_map[f":v{index}"] = amount
            adds.append(f"#a{index} :v{index}")
        value_map[":ttl"] = expiry[sk]
        value_map[":rid"] = resource_id
        updates.append({
            "Update": {
                "TableName": table(),
                "Key": dynamo.to_item({"PK": team_id, "SK": sk}),
                "UpdateExpression": "ADD " + ", ".join(adds) + " SET expires_at = :ttl, resource_id = :rid",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": dynamo.values(value_map),
            }
        })
    return updates


def read_periods(team_id: str, resource_id: str, granularity: str, first: str, last: str) -> list[dict[str, Any]]:
    """The stored items of one resource between two periods (inclusive), one Query."""
    return list(dynamo.query_all(
        TableName=table(),
        KeyConditionExpression="PK = :pk AND SK BETWEEN :first AND :last",
        ExpressionAttributeValues=dynamo.values({
            ":pk": team_id,
            ":first": period_sk(granularity, resource_id, first),
            ":last": period_sk(granularity, resource_id, last),
        }),
    ))


def split_attributes(item: dict[str, Any], prefix: str) -> dict[str | None, Decimal]:
    return {
        (key[len(prefix):] or None): Decimal(value)
        for key, value in item.items()
        if key.startswith(prefix)
    }
