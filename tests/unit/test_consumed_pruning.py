"""Issue 18: the balance keeps `consumed` only for refresh periods that may still take units.
Pruning never changes what a card, an entitlement or a debit computes, and keeps I2 exact."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from usage_ledger.domain.balance import balance_card
from usage_ledger.domain.ledger import CONSUMED_HORIZON, BalanceState, apply_usage, pruned
from usage_ledger.domain.model import Resource, Subscription, UsageEvent

START = datetime(2024, 1, 1, tzinfo=UTC)
SIZE = Decimal(5)
RESOURCE = Resource("minutes", "api", "Minutes", "minute", SIZE)


@st.composite
def subscriptions(draw):
    result = []
    for index in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["free", "token_flex", "flex", "payg"]))
        starts = START + timedelta(days=draw(st.integers(0, 400)))
        ends = draw(st.one_of(st.none(), st.integers(1, 900).map(lambda d, s=starts: s + timedelta(days=d))))
        if kind == "payg":
            result.append(Subscription("t", f"s{index}", "minutes", kind, starts, ends_at=ends, purchased_at=starts,
                                       timezone="UTC", unit_amount=100, currency="usd"))
        else:
            result.append(Subscription("t", f"s{index}", "minutes", kind, starts, quantity=draw(st.integers(1, 40)),
                                       ends_at=ends, refresh_period=draw(st.sampled_from([None, "month", "year"]))))
    return result


def batch(draw_pairs, offset_days: int, prefix: str) -> list[UsageEvent]:
    base = START + timedelta(days=offset_days)
    return [UsageEvent("src", f"{prefix}{index}", "t", "minutes", quantity, base + timedelta(hours=hours))
            for index, (quantity, hours) in enumerate(sorted(draw_pairs, key=lambda pair: pair[1]))]


pairs = st.lists(st.tuples(st.integers(1, 60).map(Decimal), st.integers(0, 40 * 24)), max_size=15)


def split(state: BalanceState) -> int:
    return sum(state.consumed.values()) + state.retired_units + state.payg_units + state.shortfall_units


def card(subs, state, now):
    return balance_card(RESOURCE, subs, state, {}, now)


@settings(max_examples=250, deadline=None)
@given(subs=subscriptions(), history=st.lists(st.tuples(st.integers(0, 1100), pairs), max_size=6),
       later=pairs, gap=st.integers(0, 1200), late=st.integers(0, 900))
def test_pruning_never_changes_a_card_or_a_debit(subs, history, later, gap, late):
    # a history of applies without pruning and the same with it: the same debits all along
    kept = BalanceState()  # never pruned (what the balance held before issue 18)
    state = BalanceState()
    now = START
    for number, (offset, events) in enumerate(sorted(history, key=lambda pair: pair[0])):
        now = START + timedelta(days=offset + 41)
        events = batch(events, offset, f"h{number}-")
        full = apply_usage(kept, RESOURCE, subs, events, now=now)
        kept = BalanceState(**{**full.state.__dict__, "consumed": {**kept.consumed, **full.state.consumed},
                               "retired_units": 0})
        debit = apply_usage(state, RESOURCE, subs, events, now=now)
        state = debit.state
        assert debit.payg_by_cycle == full.payg_by_cycle
        assert (state.charged_units, state.payg_units, state.shortfall_units) == (
            full.state.charged_units, full.state.payg_units, full.state.shortfall_units)
        assert state.charged_units == split(state)  # I2 with retired units
        assert state.consumed.items() <= kept.consumed.items()
    # later: a card and an entitlement read now, and a batch that may reach back `late` days
    now = now + timedelta(days=gap)
    assert card(subs, state, now) == card(subs, kept, now)
    assert all(state.available_in(sub, now) == kept.available_in(sub, now) for sub in subs)
    events = batch(later, max((now - START).days - late, 0), "late-")
    events = [event for event in events if event.time <= now]
    one, other = (apply_usage(s, RESOURCE, subs, events, now=now) for s in (state, kept))
    assert one.payg_by_cycle == other.payg_by_cycle
    assert (one.state.charged_units, one.state.payg_units, one.state.shortfall_units) == (
        other.state.charged_units, other.state.payg_units, other.state.shortfall_units)
    assert one.state.charged_units == split(one.state)


def test_a_period_past_the_horizon_is_pruned_and_its_units_retired():
    monthly = Subscription("t", "m", "minutes", "flex", START, quantity=10, refresh_period="month")
    events = [UsageEvent("src", f"e{month}", "t", "minutes", Decimal(15), START + timedelta(days=31 * month))
              for month in range(30)]  # 3 units a month for 30 months
    state = apply_usage(BalanceState(), RESOURCE, [monthly], events[:20], now=events[19].time).state
    assert len(state.consumed) == 20 and state.retired_units == 0  # 20 months: nothing past the horizon
    for event in events[20:]:  # as they happen: each apply prunes what passed the horizon
        state = apply_usage(state, RESOURCE, [monthly], [event], now=event.time).state
    assert 25 <= len(state.consumed) < 30 and state.retired_units == 3 * (30 - len(state.consumed))
    assert state.charged_units == split(state) == 90 and state.shortfall_units == 0
    later = events[-1].time + CONSUMED_HORIZON
    after = pruned(state, [monthly], later)
    assert len(after.consumed) == 1 and after.retired_units == 87  # the current month stays
    assert after.charged_units == split(after)
    # an event older than the horizon takes nothing from its period: it goes on to shortfall
    old = UsageEvent("src", "old", "t", "minutes", Decimal(5), START + timedelta(days=1))
    debit = apply_usage(after, RESOURCE, [monthly], [old], now=later)
    assert debit.state.shortfall_units == 1 and debit.state.consumed == after.consumed
