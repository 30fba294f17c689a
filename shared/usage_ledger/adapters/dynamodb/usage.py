"""The usage table: actual usage per team and resource by UTC day and month, and per user and app.

Three kinds of items, each of a bounded size whatever the number of users or apps (docs/data-model.md):
- totals: one item per (resource, UTC day) and per (resource, UTC month): `quantity`;
- shares: one item per (resource, user, UTC month) and per (resource, app, UTC month): the
  month's `quantity` and one attribute per day with usage (`d01`..`d31`), so an item holds at most
  32 numbers (~0.3 KB) and a batch adds to a user's day and month with one update.
A share's sort key is `U#<resource>#K<key>!<YYYY-MM>` (`A#` for apps; `U#<resource>#N!<YYYY-MM>`
for usage recorded without a user), with the key escaped so that the items sort in the report's
series order (by key as Python compares strings, no key last): a report page reads the items of
its own keys only, one Query that starts after the last page's key.

These items stay on the low-level client: their ADD updates ride in the ingest transaction beside
pynamodb's own items.
"""
from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from usage_ledger.adapters import aws
from usage_ledger.adapters.dynamodb import keys
from usage_ledger.adapters.dynamodb.paging import decode_cursor, encode_cursor
from usage_ledger.domain.calendar import utc_day
from usage_ledger.domain.model import UsageBucket, UsageEvent

# reports reach 24 months back; aggregates stay a little longer, then TTL removes them
RETENTION = timedelta(days=25 * 31)
# a user or app id as events carry it (http.schemas.UsageData), a resource id as the catalogue has it
MAX_KEY_LENGTH = 128
# share items a key can have at most (24 months of reports, 25 kept, one more while TTL lags)
MONTHS_PER_KEY = 27
DAY_PREFIX = "d"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _values(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in mapping.items()}


def _expiry(day: date) -> int:
    return calendar.timegm((day + RETENTION).timetuple())


def _month_end(month: str) -> date:
    year, number = int(month[:4]), int(month[5:7])
    return date(year, number, calendar.monthrange(year, number)[1])


class UsageStore:
    def __init__(self, table: str) -> None:
        self.table = table

    def aggregate_updates(self, team_id: str, resource_id: str, events: Iterable[UsageEvent]) -> list[dict[str, Any]]:
        """TransactWriteItems `Update` bodies that add the events to their items (the resource's
        day and month totals, and one share item per user and month and per app and month), in a
        deterministic order (a replayed message writes the same chunks). One update per item the
        batch touches, however many of its events fall on it."""
        totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        expiry: dict[str, int] = {}
        for event in events:
            day = utc_day(event.time)
            month = day.isoformat()[:7]
            for granularity, period in (("day", day.isoformat()), ("month", month)):
                sk = keys.usage_period_sk(granularity, resource_id, period)
                totals[sk]["quantity"] += event.quantity
                expiry[sk] = _expiry(day if granularity == "day" else _month_end(month))
            for group_by, key in (("user", event.user_id), ("app", event.app_id)):
                sk = keys.usage_share_sk(group_by, resource_id, key, month)
                totals[sk]["quantity"] += event.quantity
                totals[sk][f"{DAY_PREFIX}{day.day:02d}"] += event.quantity
                expiry[sk] = _expiry(_month_end(month))
        updates = []
        for sk in sorted(totals):
            names: dict[str, str] = {}
            adds: list[str] = []
            value_map: dict[str, Any] = {}
            for index, (attribute, amount) in enumerate(sorted(totals[sk].items())):
                names[f"#a{index}"] = attribute
                value_map[f":v{index}"] = amount
                adds.append(f"#a{index} :v{index}")
            value_map[":ttl"] = expiry[sk]
            value_map[":rid"] = resource_id
            updates.append({
                "TableName": self.table,
                "Key": _values({"PK": team_id, "SK": sk}),
                "UpdateExpression": "ADD " + ", ".join(adds) + " SET expires_at = :ttl, resource_id = :rid",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": _values(value_map),
            })
        return updates

    def buckets(self, team_id: str, resource_id: str, granularity: str, first: str, last: str) -> list[UsageBucket]:
        """The resource's stored totals between two periods (inclusive), in period order: one Query."""
        items = self._query(
            KeyConditionExpression="PK = :pk AND SK BETWEEN :first AND :last",
            ProjectionExpression="SK, quantity",
            ExpressionAttributeValues=_values({
                ":pk": team_id,
                ":first": keys.usage_period_sk(granularity, resource_id, first),
                ":last": keys.usage_period_sk(granularity, resource_id, last),
            }))
        return [UsageBucket(period=keys.period_of_usage_sk(item["SK"]), quantity=Decimal(item.get("quantity", 0)),
                            by_user={}, by_app={}) for item in items]

    def shares(self, team_id: str, resource_id: str, group_by: str, first: date, last: date,
               after: str | None, wanted: int) -> Iterator[tuple[str | None, dict[str, Decimal]]]:
        """The users (or apps) after `after`, in series order, that used the resource between two
        UTC days (inclusive), each with its usage by day in that range. Lazy: one Query whose
        pages hold the share items of about `wanted` keys each, read only as far as the caller goes."""
        first_month, last_month = first.isoformat()[:7], last.isoformat()[:7]
        first_day, last_day = first.isoformat(), last.isoformat()
        key: str | None = None
        days: dict[str, Decimal] = {}
        started = False
        for item in self._query(
                KeyConditionExpression="PK = :pk AND SK BETWEEN :start AND :end",
                ExpressionAttributeValues=_values({
                    ":pk": team_id,
                    ":start": keys.usage_shares_after(group_by, resource_id, after),
                    ":end": keys.usage_shares_end(group_by, resource_id),
                }),
                Limit=max(wanted, 1) * MONTHS_PER_KEY):
            item_key, month = keys.share_of_usage_sk(item["SK"])
            if not started or item_key != key:
                if started and days:
                    yield key, days
                key, days, started = item_key, {}, True
            if not first_month <= month <= last_month:
                continue
            for attribute, amount in item.items():
                if attribute.startswith(DAY_PREFIX) and len(attribute) == 3 and attribute[1:].isdigit():
                    day = f"{month}-{attribute[1:]}"
                    if first_day <= day <= last_day:
                        days[day] = Decimal(amount)
        if started and days:
            yield key, days

    @staticmethod
    def page_cursor(team_id: str, group_by: str, last_key: str) -> str:
        """The cursor of a usage report page that ended with `last_key` (series are paged by key)."""
        return encode_cursor(team_id, last_key, scope=f"usage:{group_by}")

    @staticmethod
    def page_after(team_id: str, group_by: str, cursor: str) -> str:
        """The key a usage report page continues after; a 422 on `cursor` for anything this route
        did not hand out for this team and grouping."""
        return decode_cursor(cursor, team_id, _is_usage_key, scope=f"usage:{group_by}")

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query, following LastEvaluatedKey (lazily: a page is read when reached)."""
        client = aws.client("dynamodb")
        while True:
            page = client.query(TableName=self.table, **kwargs)
            for item in page.get("Items", []):
                yield {key: _deserializer.deserialize(value) for key, value in item.items()}
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _is_usage_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and not key.isspace()
