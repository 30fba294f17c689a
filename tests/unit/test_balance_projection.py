"""The run-out projection (usage_ledger.domain.balance) for every balance the API accepts: a date
only while the calendar has one (contract section 1: null past 9999-12-31), never an error."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from usage_ledger.domain.balance import depletion_date, project
from usage_ledger.domain.ledger import BalanceState, period_key
from usage_ledger.domain.model import Resource, Subscription

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
MINUTES = Resource("minutes", "api", "Minutes", "minute", Decimal(1))


def flex(quantity: int) -> Subscription:
    return Subscription("t", "flex-1", "minutes", "flex", datetime(2026, 1, 1, tzinfo=UTC), quantity=quantity)


def test_ten_million_units_used_one_a_week_project_no_date_but_days_remaining():
    subscription = flex(10_000_000)
    yesterday = (NOW - timedelta(days=1)).date().isoformat()
    state = BalanceState(charged_units=1, consumed={period_key(subscription, NOW): 1}, daily_units={yesterday: 1})
    projection = project(MINUTES, [subscription], state, NOW)
    assert (projection.available, projection.days_remaining) == (9_999_999, 69_999_993)
    assert projection.projected_depletion_date is None


@given(quantity=st.integers(1, 10**12), used=st.integers(0, 10**12), days_ago=st.integers(1, 7))
def test_any_accepted_balance_projects_without_error(quantity, used, days_ago):
    subscription = flex(quantity)
    used = min(used, quantity)
    day = (NOW - timedelta(days=days_ago)).date().isoformat()
    state = BalanceState(charged_units=used, consumed={period_key(subscription, NOW): used},
                         daily_units={day: used} if used else {})
    projection = project(MINUTES, [subscription], state, NOW)
    if projection.days_remaining is None:
        assert used == 0 and projection.projected_depletion_date is None
    elif projection.projected_depletion_date is None:
        assert projection.days_remaining > (date.max - NOW.date()).days
    else:
        assert projection.projected_depletion_date == NOW.date() + timedelta(days=projection.days_remaining)


def test_the_last_day_of_the_calendar_is_still_a_date():
    today = date(2026, 11, 25)
    last = (date.max - today).days
    assert depletion_date(today, last) == date.max
    assert depletion_date(today, last + 1) is None
    assert depletion_date(today, 10**20) is None
