"""The one lease rule of every claim a job takes (a cycle being closed, an invoice's email, an
alert notice): the claim is free when no lease is held or the holder's lease has run out."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pynamodb.exceptions import UpdateError

from usage_ledger.adapters.dynamodb.attributes import InstantAttribute
from usage_ledger.adapters.dynamodb.errors import is_condition_failure


def lease_free(lease_until: InstantAttribute, now: datetime) -> Any:
    """A condition: nobody holds the lease at `now` (leases run on the wall clock)."""
    return lease_until.does_not_exist() | (lease_until < now)


def take(item: Any, actions: list[Any], condition: Any) -> dict[str, Any] | None:
    """Take a claim on `item`: one conditional UpdateItem. The item's attributes as they were before
    (low-level form, to tell a resumed claim), or None when the condition failed (held or done)."""
    try:
        data = type(item)._get_connection().update_item(
            # the item as it was (UPDATED_OLD would do; moto does not answer it)
            item.PK, range_key=item.SK, actions=actions, condition=condition, return_values="ALL_OLD")
    except UpdateError as error:
        if is_condition_failure(error):
            return None
        raise
    return (data or {}).get("Attributes", {})
