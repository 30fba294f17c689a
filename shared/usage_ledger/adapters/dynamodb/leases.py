"""The one lease rule of every claim a job takes (a cycle being closed, an invoice's email, an
alert notice): the claim is free when no lease is held or the holder's lease has run out."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from usage_ledger.adapters.dynamodb.attributes import InstantAttribute


def lease_free(lease_until: InstantAttribute, now: datetime) -> Any:
    """A condition: nobody holds the lease at `now` (leases run on the wall clock)."""
    return lease_until.does_not_exist() | (lease_until < now)
