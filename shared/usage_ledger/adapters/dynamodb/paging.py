"""One cursor codec and one pager for the team's lists (alerts and invoices newest first, members by
user id) and the usage report's series (by key): opaque cursors bound to the team, and to the
list's scope where one route pages more than one kind of key."""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeVar

from usage_ledger.adapters.dynamodb.models import LedgerItem
from usage_ledger.domain.errors import ValidationFailed

Item = TypeVar("Item", bound=LedgerItem)


def encode_cursor(team_id: str, last_id: str, scope: str | None = None) -> str:
    fields = {"t": team_id, "k": last_id} if scope is None else {"t": team_id, "s": scope, "k": last_id}
    raw = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, team_id: str, is_id: Callable[[str], bool], scope: str | None = None) -> str:
    """The id to continue after; garbage, a forged id, another team's cursor or another scope's
    (a user id handed to the app list) is a 422 on `cursor`."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        last_id = decoded["k"]
        if decoded["t"] != team_id or decoded.get("s") != scope or not isinstance(last_id, str) or not is_id(last_id):
            raise ValueError(last_id)
        return last_id
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
        raise ValidationFailed.single("cursor", "is not a cursor from this list") from None


def page(model: type[Item], pk: str, sk_of: Callable[[str], str], *, limit: int, after: str | None,
         condition: Any = None, descending: bool = False, consistent_read: bool = False) -> tuple[list[Item], bool]:
    """Up to `limit` items of the partition in key order (descending when asked), after
    the item with id `after`; asks for one more to know whether a next page exists (one Query
    unless DynamoDB's 1 MB page cap cuts it short, when pynamodb reads on)."""
    start = {"PK": {"S": pk}, "SK": {"S": sk_of(after)}} if after is not None else None
    items = list(model.query(pk, condition, scan_index_forward=not descending, consistent_read=consistent_read,
                             limit=limit + 1, last_evaluated_key=start))
    return items[:limit], len(items) > limit


def newest_first(model: type[Item], pk: str, sk_of: Callable[[str], str], *, limit: int, after: str | None,
                 condition: Any = None, consistent_read: bool = False) -> tuple[list[Item], bool]:
    """`page` in descending key order (alerts and invoices have time-sortable ids)."""
    return page(model, pk, sk_of, limit=limit, after=after, condition=condition, descending=True,
                consistent_read=consistent_read)
