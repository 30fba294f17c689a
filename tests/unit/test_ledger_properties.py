"""Property tests of the consumption rules (usage_ledger.domain.ledger): conservation, no overdraft, order."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from usage_ledger.domain.ledger import BalanceState, apply_usage, period_key
from usage_ledger.domain.model import Resource, Subscription, UsageEvent, in_consumption_order

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def resource(size: Decimal) -> Resource:
    return Resource("minutes", "api", "Minutes", "minute", size)


@st.composite
def subscriptions(draw):
    count = draw(st.integers(0, 5))
    result = []
    for index in range(count):
        kind = draw(st.sampled_from(["free", "token_flex", "flex", "payg"]))
        starts = START + timedelta(days=draw(st.integers(0, 200)))
        ends = draw(st.one_of(st.none(), st.integers(1, 400).map(lambda d, s=starts: s + timedelta(days=d))))
        if kind == "payg":
            result.append(Subscription("t", f"s{index}", "minutes", kind, starts, ends_at=ends, purchased_at=starts,
                                       timezone=draw(st.sampled_from(["UTC", "America/Los_Angeles", "Asia/Tokyo"])),
                                       unit_amount=100, currency="usd"))
        else:
            result.append(Subscription("t", f"s{index}", "minutes", kind, starts, quantity=draw(st.integers(1, 50)),
                                       ends_at=ends, refresh_period=draw(st.sampled_from([None, "month", "year"]))))
    return result


quantities = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(500), places=6)
events = st.lists(st.tuples(quantities, st.integers(0, 330 * 24)), max_size=40).map(
    lambda pairs: [UsageEvent("src", f"e{i}", "t", "minutes", q, START + timedelta(hours=h))
                   for i, (q, h) in enumerate(sorted(pairs, key=lambda p: p[1]))])
sizes = st.sampled_from([Decimal(1), Decimal(20), Decimal("0.5"), Decimal(7)])


def charged_split(state: BalanceState) -> int:
    return sum(state.consumed.values()) + state.payg_units + state.shortfall_units


@settings(max_examples=300, deadline=None)
@given(subscriptions(), events, sizes, st.integers(1, 5))
def test_usage_is_conserved_and_no_prepaid_period_is_overdrawn(subs, usage, size, split):
    # applying events in several batches gives the same state as one batch
    state = BalanceState()
    cut = len(usage) // split or len(usage)
    payg_units = 0
    for start in range(0, len(usage), cut or 1):
        debit = apply_usage(state, resource(size), subs, usage[start:start + cut], now=NOW)
        state = debit.state
        payg_units += sum(debit.payg_by_cycle.values())
    total = sum((event.quantity for event in usage), Decimal(0))
    assert state.usage_total == total
    assert state.usage_total == state.charged_units * size + state.pending_usage
    assert Decimal(0) <= state.pending_usage < size
    assert state.charged_units == charged_split(state)
    assert payg_units == state.payg_units
    quantities_by_id = {s.subscription_id: s.quantity for s in subs if s.is_prepaid}
    for key, units in state.consumed.items():
        assert 0 < units <= quantities_by_id[key.split("@")[0]]
    one_shot = apply_usage(BalanceState(), resource(size), subs, usage, now=NOW).state
    assert (one_shot.charged_units, one_shot.pending_usage, one_shot.consumed, one_shot.shortfall_units) == (
        state.charged_units, state.pending_usage, state.consumed, state.shortfall_units)


@settings(max_examples=300, deadline=None)
@given(subscriptions(), events)
def test_a_later_subscription_in_order_is_debited_only_when_earlier_ones_are_empty(subs, usage):
    state = BalanceState()
    for event in usage:
        before = state
        state = apply_usage(state, resource(Decimal(1)), subs, [event], now=NOW).state
        active = in_consumption_order([s for s in subs if s.is_active(event.time)])
        debited = [s for s in active if s.is_prepaid and state.debited(s, event.time) > before.debited(s, event.time)]
        for subscription in debited:
            for earlier in active[: active.index(subscription)]:
                if earlier.is_prepaid:
                    assert state.available_in(earlier, event.time) == 0, (earlier, subscription)
        if state.shortfall_units > before.shortfall_units or state.payg_units > before.payg_units:
            assert all(state.available_in(s, event.time) == 0 for s in active if s.is_prepaid)
        if state.shortfall_units > before.shortfall_units:
            assert not any(s.is_payg for s in active)


def test_consumption_order_is_total_and_matches_the_contract():
    t = START
    subs = [
        Subscription("t", "b", "m", "flex", t, quantity=1),
        Subscription("t", "a", "m", "flex", t, quantity=1),
        Subscription("t", "c", "m", "flex", t - timedelta(days=1), quantity=1),
        Subscription("t", "d", "m", "flex", t, quantity=1, ends_at=t + timedelta(days=9)),
        Subscription("t", "e", "m", "payg", t, purchased_at=t, timezone="UTC"),
        Subscription("t", "f", "m", "token_flex", t, quantity=1),
        Subscription("t", "g", "m", "free", t, quantity=1, ends_at=t + timedelta(days=99)),
    ]
    assert [s.subscription_id for s in in_consumption_order(subs)] == ["g", "f", "d", "c", "a", "b", "e"]


def test_a_refresh_period_starts_full_again():
    sub = Subscription("t", "s", "m", "flex", START, quantity=3, refresh_period="month")
    jan = [UsageEvent("x", f"j{i}", "t", "m", Decimal(1), START + timedelta(days=i)) for i in range(5)]
    state = apply_usage(BalanceState(), resource(Decimal(1)), [sub], jan, now=NOW).state
    assert state.shortfall_units == 2 and state.consumed == {period_key(sub, START): 3}
    feb = START.replace(month=2, day=3)
    assert state.available_in(sub, feb) == 3
