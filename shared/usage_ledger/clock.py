"""The wall clock, in one place so tests can move it (the close job bills as of its event's time)."""
from datetime import UTC, datetime, timedelta

# how long a job holds a claim on a step (closing a cycle, sending an email): longer than any
# function's timeout (300 s), so a live run never loses its claim to another run
LEASE = timedelta(minutes=10)


def now() -> datetime:
    return datetime.now(UTC)


def lease_until() -> datetime:
    """When a claim taken now runs out. On the wall clock, never on a scheduled event's time: a
    run that starts late (an async retry, up to an hour) must not take a lease already run out."""
    return now() + LEASE
