"""The wall clock, in one place so tests can move it (scheduled jobs take 'now' from their event)."""
from datetime import datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)
