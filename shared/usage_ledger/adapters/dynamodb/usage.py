"""The usage table: actual usage per team, resource and UTC day or month, by user and by app.

One item per (team, resource, period); per-user and per-app totals are attributes of it
(`u:<user_id>`, `a:<app_id>`), so a batch adds to a day with one update and a 24-month month
view reads 24 items. Those attribute names are data, which a pynamodb model cannot declare:
this table stays on the low-level client (docs/data-model.md).

A report page names what it reads (`UsageSelect`): the totals, or the attributes of the page's
users or apps only, so the answer DynamoDB sends and the SDK parses stays the size of the page
(a day item of a 5,000-user team is ~80 KB; the attributes of 30 users are ~500 bytes). The read
units are still those of the whole items (DynamoDB charges what it reads, before the projection).
"""
from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from usage_ledger.adapters import aws
from usage_ledger.adapters.dynamodb import keys
from usage_ledger.adapters.dynamodb.paging import decode_cursor, encode_cursor
from usage_ledger.domain.calendar import utc_day
from usage_ledger.domain.model import UsageBucket, UsageEvent
from usage_ledger.service.ports import UsageSelect

USER_PREFIX = "u:"
APP_PREFIX = "a:"
# reports reach 24 months back; aggregates stay a little longer, then TTL removes them
RETENTION = timedelta(days=25 * 31)
# attributes named in one Query's projection (DynamoDB caps an expression at 4 KB)
NAMES_PER_QUERY = 100
# a user or app id as events carry it (http.schemas.UsageData), a resource id as the catalogue has it
MAX_KEY_LENGTH = 128

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _values(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in mapping.items()}


class UsageStore:
    def __init__(self, table: str) -> None:
        self.table = table

    def aggregate_updates(self, team_id: str, resource_id: str, events: Iterable[UsageEvent]) -> list[dict[str, Any]]:
        """TransactWriteItems `Update` bodies that add the events to their day and month items,
        in a deterministic order (a replayed message writes the same chunks)."""
        totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        expiry: dict[str, int] = {}
        for event in events:
            day = utc_day(event.time)
            for granularity, period in (("day", day.isoformat()), ("month", day.isoformat()[:7])):
                sk = keys.usage_period_sk(granularity, resource_id, period)
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
                "TableName": self.table,
                "Key": _values({"PK": team_id, "SK": sk}),
                "UpdateExpression": "ADD " + ", ".join(adds) + " SET expires_at = :ttl, resource_id = :rid",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": _values(value_map),
            })
        return updates

    def buckets(self, team_id: str, resource_id: str, granularity: str, first: str, last: str,
                select: UsageSelect | None = None) -> list[UsageBucket]:
        """The stored periods of one resource between two periods (inclusive), in period order:
        whole items (one Query, following DynamoDB's 1 MB pages), or only what `select` names
        (one Query per 100 attribute names)."""
        query: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :first AND :last",
            "ExpressionAttributeValues": _values({
                ":pk": team_id,
                ":first": keys.usage_period_sk(granularity, resource_id, first),
                ":last": keys.usage_period_sk(granularity, resource_id, last),
            }),
        }
        if select is None:
            return [self._bucket(item) for item in self._query(**query)]
        names = (["quantity"] if select.total else []) + [USER_PREFIX + (key or "") for key in select.users] + [
            APP_PREFIX + (key or "") for key in select.apps]
        merged: dict[str, dict[str, Any]] = {}
        for start in range(0, max(len(names), 1), NAMES_PER_QUERY):
            placeholders = {"#sk": "SK", **{f"#n{index}": name
                                            for index, name in enumerate(names[start:start + NAMES_PER_QUERY])}}
            for item in self._query(**query, ProjectionExpression=", ".join(placeholders),
                                    ExpressionAttributeNames=placeholders):
                merged.setdefault(item["SK"], {}).update(item)
        return [self._bucket(merged[sk]) for sk in sorted(merged)]

    @staticmethod
    def page_cursor(team_id: str, group_by: str, last_key: str) -> str:
        """The cursor of a usage report page that ended with `last_key` (series are paged by key)."""
        return encode_cursor(team_id, last_key, scope=f"usage:{group_by}")

    @staticmethod
    def page_after(team_id: str, group_by: str, cursor: str) -> str:
        """The key a usage report page continues after; a 422 on `cursor` for anything this route
        did not hand out for this team and grouping."""
        return decode_cursor(cursor, team_id, _is_usage_key, scope=f"usage:{group_by}")

    @staticmethod
    def _bucket(item: dict[str, Any]) -> UsageBucket:
        def split(prefix: str) -> dict[str | None, Decimal]:
            return {(key[len(prefix):] or None): Decimal(value)
                    for key, value in item.items() if key.startswith(prefix)}

        return UsageBucket(period=keys.period_of_usage_sk(item["SK"]), quantity=Decimal(item.get("quantity", 0)),
                           by_user=split(USER_PREFIX), by_app=split(APP_PREFIX))

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query, following LastEvaluatedKey."""
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
