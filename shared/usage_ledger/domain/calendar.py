"""Period arithmetic: refresh periods (UTC) and Pay-as-You-Go billing cycles (local dates).

Both are anchor + n x interval with the day clamped to the month's last day, never "add one
month" repeated, so an anchor on the 31st returns to the 31st after a short month.
"""
from __future__ import annotations

import calendar as _calendar
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import overload
from zoneinfo import ZoneInfo

UTC = UTC


def clamp_day(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, _calendar.monthrange(year, month)[1]))


def add_months(anchor: date, months: int) -> date:
    """The anchor's day `months` later, clamped to the end of that month."""
    index = anchor.year * 12 + (anchor.month - 1) + months
    return clamp_day(index // 12, index % 12 + 1, anchor.day)


def months_between(earlier: date, later: date) -> int:
    return (later.year - earlier.year) * 12 + (later.month - earlier.month)


# ------------------------------------------------------------------ refresh periods (UTC)


@dataclass(frozen=True)
class Period:
    start: datetime  # inclusive, UTC
    end: datetime | None  # exclusive, UTC; None = open-ended

    def contains(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


def _shift(anchor: datetime, months: int) -> datetime:
    moved = add_months(anchor.date(), months)
    return datetime.combine(moved, anchor.timetz())


def refresh_boundary(starts_at: datetime, refresh_period: str, index: int) -> datetime:
    """Start of the index-th period of a subscription that refreshes every month or year."""
    step = 12 if refresh_period == "year" else 1
    return _shift(starts_at.astimezone(UTC), step * index)


def refresh_period_at(starts_at: datetime, refresh_period: str | None, at: datetime) -> Period:
    """The period containing `at` (at >= starts_at). Without refresh: one open-ended period."""
    starts_at = starts_at.astimezone(UTC)
    if refresh_period is None:
        return Period(starts_at, None)
    step = 12 if refresh_period == "year" else 1
    index = months_between(starts_at.date(), at.astimezone(UTC).date()) // step
    index = max(index, 0)
    # the estimate can be one too high (earlier day in month) or, with clamping, one too low
    while index > 0 and refresh_boundary(starts_at, refresh_period, index) > at:
        index -= 1
    while refresh_boundary(starts_at, refresh_period, index + 1) <= at:
        index += 1
    return Period(
        refresh_boundary(starts_at, refresh_period, index),
        refresh_boundary(starts_at, refresh_period, index + 1),
    )


# ------------------------------------------------------------------ billing cycles (local)


@dataclass(frozen=True)
class Cycle:
    """One billing cycle: local dates (inclusive) and the UTC instants that bound it."""

    index: int
    start_date: date
    end_date: date  # inclusive
    starts_at: datetime  # UTC, inclusive: local midnight of start_date
    ends_at: datetime  # UTC, exclusive: local midnight after end_date

    def contains(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of `day` in `zone`: local midnight, or the end of a DST gap that skips it."""
    naive = datetime.combine(day, time(0))
    after = naive.replace(tzinfo=zone).astimezone(UTC)  # fold=0: in a gap, at or after the transition
    if after.astimezone(zone).replace(tzinfo=None) == naive:
        return after
    # midnight does not exist (America/Santiago's spring forward, Pacific/Apia's lost 2011-12-30):
    # the day starts at the transition, found between the fold=1 reading (before it) and fold=0
    low = int(naive.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    high = int(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def cycle_by_index(purchased_at: datetime, tz: str, index: int, ends_at: datetime | None = None) -> Cycle:
    """The index-th cycle; `ends_at`: the subscription's end, which its last cycle ends at."""
    zone = ZoneInfo(tz)
    anchor = purchased_at.astimezone(zone).date()
    start = add_months(anchor, index)
    next_start = add_months(anchor, index + 1)
    cycle = Cycle(
        index=index,
        start_date=start,
        end_date=next_start - timedelta(days=1),
        starts_at=_local_midnight(start, zone),
        ends_at=_local_midnight(next_start, zone),
    )
    return _ending(cycle, ends_at, zone)


def _ending(cycle: Cycle, ends_at: datetime | None, zone: ZoneInfo) -> Cycle:
    """A subscription that ends inside (or before) a cycle ends it there (contract section 7): it
    ends at `ends_at`, on the local date of its last instant (never before its start date)."""
    if ends_at is None or ends_at >= cycle.ends_at:
        return cycle
    last_day = (ends_at - timedelta(microseconds=1)).astimezone(zone).date()
    return replace(cycle, end_date=max(last_day, cycle.start_date), ends_at=ends_at)


def cycle_at(purchased_at: datetime, tz: str, at: datetime, ends_at: datetime | None = None) -> Cycle:
    """The cycle containing instant `at`; instants before the purchase belong to cycle 0 (and,
    with the subscription's `ends_at`, instants after it to its last cycle, ended there)."""
    zone = ZoneInfo(tz)
    if ends_at is not None and at >= ends_at:
        at = ends_at - timedelta(microseconds=1)
    anchor = purchased_at.astimezone(zone).date()
    local_day = at.astimezone(zone).date()
    index = max(months_between(anchor, local_day), 0)
    while index > 0 and cycle_by_index(purchased_at, tz, index).starts_at > at:
        index -= 1
    while cycle_by_index(purchased_at, tz, index).ends_at <= at:
        index += 1
    return cycle_by_index(purchased_at, tz, index, ends_at)


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def whole_days_between(now: datetime, later: datetime) -> int:
    """Whole days from now until later, rounded down (negative when later is past)."""
    return (later - now) // timedelta(days=1)


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z: the one timestamp format the API answers with."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


# RFC 3339 date-time: fromisoformat alone also takes ISO 8601 forms such as 20261125T120000,
# week dates (2026-W48-3) and second offsets (+00:00:30)
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def parse_instant(text: str) -> datetime:
    """An RFC 3339 timestamp that carries an offset (naive times are refused)."""
    if not RFC3339.fullmatch(text):
        if RFC3339.fullmatch(text + "Z"):
            raise ValueError("must carry a UTC offset (e.g. Z or +02:00)")
        raise ValueError("must look like 2026-11-25T12:00:00Z")
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset (e.g. Z or +02:00)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 at +14:00, year 9999 at -14:00: no such instant in UTC
        raise ValueError("is out of range") from None
