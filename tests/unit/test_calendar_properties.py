"""Property tests of usage_ledger.domain.calendar: billing cycles and refresh periods tile time without drift."""
import calendar as _calendar
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from usage_ledger.domain.calendar import (
    _local_midnight,
    cycle_at,
    cycle_by_index,
    refresh_boundary,
    refresh_period_at,
)

ZONES = ["UTC", "America/Los_Angeles", "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Apia", "Europe/London",
         "America/Santiago", "America/Havana", "Asia/Beirut"]
CYCLES = 14  # more than a year: every month length and a DST change or two


def month_length(year: int, month: int) -> int:
    return _calendar.monthrange(year, month)[1]


@st.composite
def purchases(draw, anchor_day: int | None = None):
    """(purchased_at in UTC, zone): a local date with the given day, at any local time of day."""
    zone = draw(st.sampled_from(ZONES))
    year, month = draw(st.integers(2000, 2040)), draw(st.integers(1, 12))
    day = anchor_day if anchor_day is not None else draw(st.integers(1, 31))
    assume(day <= month_length(year, month))
    seconds = draw(st.integers(0, 86_399))
    local = datetime(year, month, day, tzinfo=ZoneInfo(zone)) + timedelta(seconds=seconds)
    purchased_at = local.astimezone(UTC)
    assume(purchased_at.astimezone(ZoneInfo(zone)).date() == local.date())  # not a skipped local time
    return purchased_at, zone


def first_instant_of(day: date, zone: str, at: datetime) -> bool:
    """`at` is the first instant whose local date is `day` or later (a skipped day starts the next)."""
    tz = ZoneInfo(zone)
    return (at - timedelta(seconds=1)).astimezone(tz).date() < day <= at.astimezone(tz).date()


# ------------------------------------------------------------------ billing cycles


@pytest.mark.parametrize("anchor_day", range(1, 32))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_cycles_tile_time_and_start_on_the_clamped_anchor_day(anchor_day, data):
    purchased_at, zone = data.draw(purchases(anchor_day))
    anchor = purchased_at.astimezone(ZoneInfo(zone)).date()
    cycles = [cycle_by_index(purchased_at, zone, index) for index in range(CYCLES)]
    assert cycles[0].contains(purchased_at)
    for index, cycle in enumerate(cycles):
        months = anchor.year * 12 + anchor.month - 1 + index
        year, month = divmod(months, 12)
        assert cycle.index == index
        assert cycle.start_date == date(year, month + 1, min(anchor_day, month_length(year, month + 1)))
        assert cycle.start_date <= cycle.end_date and cycle.starts_at < cycle.ends_at
        assert first_instant_of(cycle.start_date, zone, cycle.starts_at)
        assert first_instant_of(cycle.end_date + timedelta(days=1), zone, cycle.ends_at)
    for current, following in pairwise(cycles):
        assert current.ends_at == following.starts_at
        assert following.start_date == current.end_date + timedelta(days=1)


@settings(max_examples=300, deadline=None)
@given(purchase=purchases(), offset=st.integers(-86_400 * 40, 86_400 * 800))
# 00:30 on 2011-12-31 in Apia, just after the skipped Dec 30 that starts the 12th cycle
@example(purchase=(datetime(2011, 1, 30, 12, tzinfo=UTC), "Pacific/Apia"), offset=334 * 86_400 - 5_400)
def test_cycle_at_contains_the_instant_and_its_local_date(purchase, offset):
    purchased_at, zone = purchase
    at = purchased_at + timedelta(seconds=offset)
    cycle = cycle_at(purchased_at, zone, at)
    assert cycle == cycle_by_index(purchased_at, zone, cycle.index)
    if at < cycle_by_index(purchased_at, zone, 0).starts_at:
        assert cycle.index == 0  # before the purchase: the first cycle
        return
    assert cycle.contains(at)
    assert cycle.start_date <= at.astimezone(ZoneInfo(zone)).date() <= cycle.end_date


@pytest.mark.parametrize("purchased, zone, expected", [
    ("2026-07-15T09:00:00+00:00", "UTC", [("2026-07-15", "2026-08-14"), ("2026-08-15", "2026-09-14")]),
    ("2026-01-31T12:00:00+00:00", "UTC",
     [("2026-01-31", "2026-02-27"), ("2026-02-28", "2026-03-30"), ("2026-03-31", "2026-04-29")]),
    ("2028-01-31T12:00:00+00:00", "UTC",  # a leap year: February ends on the 29th
     [("2028-01-31", "2028-02-28"), ("2028-02-29", "2028-03-30"), ("2028-03-31", "2028-04-29")]),
    ("2028-02-29T12:00:00+00:00", "UTC",  # bought on Feb 29: the 28th in short Februaries, the 29th in leap ones
     [("2028-02-29", "2028-03-28"), ("2028-03-29", "2028-04-28")]),
    ("2026-03-01T05:00:00+00:00", "America/Los_Angeles",  # Feb 28, 21:00 local
     [("2026-02-28", "2026-03-27"), ("2026-03-28", "2026-04-27")]),
])
def test_contract_examples(purchased, zone, expected):
    purchased_at = datetime.fromisoformat(purchased)
    got = [cycle_by_index(purchased_at, zone, index) for index in range(len(expected))]
    assert [(c.start_date.isoformat(), c.end_date.isoformat()) for c in got] == expected


def test_a_feb_29_anchor_returns_to_the_29th_in_the_next_leap_year():
    purchased_at = datetime(2028, 2, 29, 12, tzinfo=UTC)
    assert cycle_by_index(purchased_at, "UTC", 12).start_date == date(2029, 2, 28)
    assert cycle_by_index(purchased_at, "UTC", 48).start_date == date(2032, 2, 29)


def test_cycle_boundaries_are_local_midnight_in_utc():
    # July 15 in Los Angeles (PDT, UTC-7) starts at 07:00Z; Nov 15 (PST, UTC-8) at 08:00Z
    purchased_at = datetime(2026, 7, 15, 18, tzinfo=UTC)
    cycle = cycle_by_index(purchased_at, "America/Los_Angeles", 0)
    assert cycle.starts_at == datetime(2026, 7, 15, 7, tzinfo=UTC)
    assert cycle_by_index(purchased_at, "America/Los_Angeles", 4).starts_at == datetime(2026, 11, 15, 8, tzinfo=UTC)


@pytest.mark.parametrize("day, zone, expected", [
    (date(2011, 12, 30), "Pacific/Apia", datetime(2011, 12, 30, 10, tzinfo=UTC)),  # the skipped day: 00:00 +14 next
    (date(2026, 9, 6), "America/Santiago", datetime(2026, 9, 6, 4, tzinfo=UTC)),  # midnight springs to 01:00 -03
    (date(1991, 10, 20), "America/Argentina/Cordoba", datetime(1991, 10, 20, 4, tzinfo=UTC)),  # a 2-hour gap
    (date(2021, 3, 22), "Asia/Tehran", datetime(2021, 3, 21, 20, 30, tzinfo=UTC)),  # a half-hour offset
])
def test_a_day_whose_midnight_is_skipped_starts_when_the_gap_ends(day, zone, expected):
    assert _local_midnight(day, ZoneInfo(zone)) == expected
    assert first_instant_of(day, zone, expected)


# ------------------------------------------------------------------ refresh periods


@st.composite
def refreshing(draw):
    anchor_day = draw(st.integers(1, 31))
    year, month = draw(st.integers(2000, 2040)), draw(st.integers(1, 12))
    assume(anchor_day <= month_length(year, month))
    starts_at = datetime(year, month, anchor_day, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 86_399)))
    return starts_at, draw(st.sampled_from(["month", "year"]))


@settings(max_examples=300, deadline=None)
@given(subscription=refreshing(), offset=st.integers(0, 86_400 * 365 * 6))
@example(subscription=(datetime(2028, 2, 29, 6, tzinfo=UTC), "year"), offset=86_400 * 366)
@example(subscription=(datetime(2026, 1, 31, 6, tzinfo=UTC), "month"), offset=86_400 * 28)
def test_refresh_periods_contain_the_instant_and_tile(subscription, offset):
    starts_at, refresh = subscription
    at = starts_at + timedelta(seconds=offset)
    period = refresh_period_at(starts_at, refresh, at)
    assert period.contains(at)
    step = 12 if refresh == "year" else 1
    index = next(i for i in range(80) if refresh_boundary(starts_at, refresh, i) == period.start)
    assert period.end == refresh_boundary(starts_at, refresh, index + 1)
    assert refresh_period_at(starts_at, refresh, period.end).start == period.end  # the next one follows on
    months = starts_at.year * 12 + starts_at.month - 1 + index * step
    year, month = divmod(months, 12)
    assert period.start.date() == date(year, month + 1, min(starts_at.day, month_length(year, month + 1)))
    assert period.start.timetz() == starts_at.timetz()  # same UTC time of day: no drift


def test_without_refresh_there_is_one_open_ended_period():
    starts_at = datetime(2026, 1, 31, tzinfo=UTC)
    period = refresh_period_at(starts_at, None, datetime(2030, 1, 1, tzinfo=UTC))
    assert period.start == starts_at and period.end is None


def test_a_monthly_refresh_from_the_31st_clamps_and_returns():
    starts_at = datetime(2026, 1, 31, 9, tzinfo=UTC)
    starts = [refresh_boundary(starts_at, "month", index).date().isoformat() for index in range(4)]
    assert starts == ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]


# ------------------------------------------------------------------ a subscription's end (contract section 7)


@given(purchase=purchases(), offset=st.integers(0, 86_400 * 400), later=st.integers(0, 86_400 * 60))
@settings(max_examples=150, deadline=None)
def test_the_last_cycle_ends_at_ends_at_on_its_local_date_and_later_instants_belong_to_it(purchase, offset, later):
    purchased_at, zone = purchase
    ends_at = purchased_at + timedelta(seconds=offset, microseconds=1)
    natural = cycle_at(purchased_at, zone, ends_at - timedelta(microseconds=1))
    last = cycle_at(purchased_at, zone, ends_at + timedelta(seconds=later), ends_at)
    assert (last.index, last.start_date, last.starts_at) == (natural.index, natural.start_date, natural.starts_at)
    assert last.ends_at == min(ends_at, natural.ends_at)
    assert last.end_date == (ends_at - timedelta(microseconds=1)).astimezone(ZoneInfo(zone)).date()
    assert cycle_by_index(purchased_at, zone, last.index, ends_at) == last
    earlier = cycle_by_index(purchased_at, zone, max(last.index - 1, 0), ends_at)
    assert last.index == 0 or earlier == cycle_by_index(purchased_at, zone, last.index - 1)  # untouched


def test_a_cancel_mid_cycle_in_los_angeles_ends_the_cycle_on_the_local_date():
    purchased = datetime(2026, 3, 1, 5, tzinfo=UTC)  # Feb 28 local: cycle Feb 28 - Mar 27
    ends_at = datetime(2026, 3, 12, 3, tzinfo=UTC)  # Mar 11, 20:00 PDT
    cycle = cycle_at(purchased, "America/Los_Angeles", datetime(2026, 3, 20, tzinfo=UTC), ends_at)
    assert (cycle.index, cycle.start_date, cycle.end_date, cycle.ends_at) == (0, date(2026, 2, 28), date(2026, 3, 11),
                                                                               ends_at)
