"""Consumption rules: usage becomes charged units, debited in consumption order, with rollover.

Invariants this module keeps (docs/invariants.md):
- usage_total == charged_units x charge_unit_size + pending_usage, 0 <= pending < unit size;
- charged_units == prepaid debits (kept in `consumed`, or retired once pruned) + payg units + shortfall units;
- no prepaid subscription's period is debited past its quantity;
- the balance keeps `consumed` of the periods that may still take units only (CONSUMED_HORIZON).
"""
from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from usage_ledger.domain.calendar import cycle_at, cycle_by_index, refresh_period_at, utc_day
from usage_ledger.domain.model import App, Member, Resource, Subscription, Team, UsageEvent, in_consumption_order

# daily charged units are kept this long: the projection reads the last 7 whole UTC days
DAILY_HISTORY_DAYS = 40


# How far back an apply can meet an event: the edge takes events up to 730 days old
# (http.schemas.EVENT_HISTORY_LIMIT), a message lives 14 days in the events queue and 14 more in
# its DLQ (template.yaml), plus a margin. A prepaid period that ended longer ago takes no units
# (an event that old can only come from replaying a set-aside message later still: its units go
# on down the consumption order, never into a period whose debits the balance no longer keeps),
# so the balance keeps `consumed` only for periods that ended since: bounded, and never read again
# once pruned (prune_consumed).
CONSUMED_HORIZON = timedelta(days=730 + 14 + 14 + 32)


def period_key(subscription: Subscription, at: datetime) -> str:
    """Identifies the refresh period of a prepaid subscription that contains `at`."""
    period = refresh_period_at(subscription.starts_at, subscription.refresh_period, at)
    return f"{subscription.subscription_id}@{period.start.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _period_end(subscription: Subscription, start: datetime) -> datetime | None:
    """When the refresh period starting at `start` stops taking units (its end or the
    subscription's, whichever is first; None: not yet known)."""
    end = refresh_period_at(subscription.starts_at, subscription.refresh_period, start).end
    ends = [moment for moment in (end, subscription.ends_at) if moment is not None]
    return min(ends) if ends else None


def is_past_horizon(subscription: Subscription, at: datetime, now: datetime) -> bool:
    """The period containing `at` ended before the horizon: it takes no more units."""
    start = refresh_period_at(subscription.starts_at, subscription.refresh_period, at).start
    end = _period_end(subscription, start)
    return end is not None and end <= now - CONSUMED_HORIZON


def pruned(state: BalanceState, subscriptions: list[Subscription], now: datetime) -> BalanceState:
    """The state without `consumed` entries of periods past the horizon (is_past_horizon: no
    debit, card or entitlement reads them again), their units moved to `retired_units` so that
    charged_units == sum(consumed) + retired_units + payg_units + shortfall_units still holds."""
    consumed = prune_consumed(state.consumed, subscriptions, now)
    if len(consumed) == len(state.consumed):
        return state
    retired = sum(state.consumed.values()) - sum(consumed.values())
    return replace(state, consumed=consumed, retired_units=state.retired_units + retired)


def prune_consumed(consumed: dict[str, int], subscriptions: list[Subscription], now: datetime) -> dict[str, int]:
    """`consumed` without the periods past the horizon. Entries of a subscription not given are kept."""
    by_id = {subscription.subscription_id: subscription for subscription in subscriptions}
    kept = {}
    for key, units in consumed.items():
        subscription_id, _, start = key.rpartition("@")
        subscription = by_id.get(subscription_id)
        if subscription is not None and subscription.is_prepaid:
            period_start = datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            end = _period_end(subscription, period_start)
            if end is not None and end <= now - CONSUMED_HORIZON:
                continue
        kept[key] = units
    return kept


@dataclass(frozen=True)
class BalanceState:
    """What the ledger stores per team and resource (one DynamoDB item)."""

    usage_total: Decimal = Decimal(0)
    pending_usage: Decimal = Decimal(0)
    charged_units: int = 0
    consumed: dict[str, int] = field(default_factory=dict)  # period_key -> units debited
    retired_units: int = 0  # debited from periods pruned from `consumed` (past CONSUMED_HORIZON)
    payg_units: int = 0
    shortfall_units: int = 0
    daily_units: dict[str, int] = field(default_factory=dict)  # UTC day -> charged units
    version: int = 0

    def debited(self, subscription: Subscription, at: datetime) -> int:
        return self.consumed.get(period_key(subscription, at), 0)

    def available_in(self, subscription: Subscription, at: datetime) -> int:
        """Prepaid units left in the period containing `at` (0 when not active then)."""
        if not subscription.is_prepaid or not subscription.is_active(at):
            return 0
        return max((subscription.quantity or 0) - self.debited(subscription, at), 0)

    def units_on(self, day: date) -> int:
        return self.daily_units.get(day.isoformat(), 0)


@dataclass(frozen=True)
class CycleKey:
    subscription_id: str
    index: int


@dataclass(frozen=True)
class ClosedCycles:
    """The payg cycles that take no more units, as the store shows them: per subscription, every
    cycle up to the last one a close run closed (`through`: a run that closed a cycle was past the
    earlier ones' ends too), and the cycles being closed or closed out of order (`cycles`)."""

    through: Mapping[str, int] = field(default_factory=dict)
    cycles: frozenset[CycleKey] = frozenset()

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, CycleKey):
            return False
        last = self.through.get(key.subscription_id)
        return (last is not None and key.index <= last) or key in self.cycles


@dataclass
class Debit:
    """The effect of applying events: the new state and units per payg cycle."""

    state: BalanceState
    payg_by_cycle: dict[CycleKey, int]


def apply_usage(
    state: BalanceState,
    resource: Resource,
    subscriptions: list[Subscription],
    events: list[UsageEvent],
    *,
    now: datetime,
    closed_cycles: Container[CycleKey] = frozenset(),
    grace: timedelta = timedelta(0),
) -> Debit:
    """Add events (in the order given) and debit every charged unit they complete."""
    size = resource.charge_unit_size
    ordered = in_consumption_order(subscriptions)
    consumed = dict(state.consumed)
    daily = dict(state.daily_units)
    payg_by_cycle: dict[CycleKey, int] = {}
    usage_total, pending = state.usage_total, state.pending_usage
    charged = payg_total = shortfall = 0

    for event in events:
        usage_total += event.quantity
        pending += event.quantity
        units = int(pending // size)
        if units == 0:
            continue
        pending -= units * size
        charged += units
        day = utc_day(event.time).isoformat()
        daily[day] = daily.get(day, 0) + units
        remaining = units
        for subscription in ordered:
            if remaining == 0:
                break
            if not subscription.is_active(event.time):
                continue
            if subscription.is_prepaid:
                if is_past_horizon(subscription, event.time, now):
                    continue
                key = period_key(subscription, event.time)
                left = (subscription.quantity or 0) - consumed.get(key, 0)
                take = min(max(left, 0), remaining)
                if take:
                    consumed[key] = consumed.get(key, 0) + take
                    remaining -= take
            else:  # payg has no limit
                cycle = billing_cycle_of_unit(subscription, event.time, now, closed_cycles, grace)
                payg_by_cycle[cycle] = payg_by_cycle.get(cycle, 0) + remaining
                payg_total += remaining
                remaining = 0
        shortfall += remaining

    if daily:
        newest = max(date.fromisoformat(day) for day in daily)
        horizon = (newest - timedelta(days=DAILY_HISTORY_DAYS)).isoformat()
        daily = {day: units for day, units in daily.items() if day >= horizon}

    new_state = replace(
        state,
        usage_total=usage_total,
        pending_usage=pending,
        charged_units=state.charged_units + charged,
        consumed=consumed,
        payg_units=state.payg_units + payg_total,
        shortfall_units=state.shortfall_units + shortfall,
        daily_units=daily,
        version=state.version + 1,
    )
    return Debit(pruned(new_state, subscriptions, now), payg_by_cycle)


def billing_cycle_of_unit(subscription: Subscription, at: datetime, now: datetime, closed: Container[CycleKey],
                          grace: timedelta) -> CycleKey:
    """Where a payg unit completed at `at` and applied at `now` is billed (contract section 1), the
    one place that decides it: the cycle containing `at`, or the first cycle after it that is not
    closed. A cycle is closed once its end plus the grace period is past at `now` (due: the next
    close run closes it, with or without units) or once the store says so (`closed`: a close run,
    whatever its clock, closed it or is closing it). Never the cycle's history (whether it already
    holds units) or when the close job last ran; a closed cycle is never reopened."""
    assert subscription.purchased_at and subscription.timezone
    purchased_at, zone = subscription.purchased_at, subscription.timezone
    index = cycle_at(purchased_at, zone, at).index
    if cycle_by_index(purchased_at, zone, index, subscription.ends_at).ends_at + grace <= now:
        index = max(cycle_at(purchased_at, zone, now).index, index + 1)
    while CycleKey(subscription.subscription_id, index) in closed:  # closed by a run ahead of our clock
        index += 1
    return CycleKey(subscription.subscription_id, index)


def units_needed(pending_usage: Decimal, quantity: Decimal, size: Decimal) -> int:
    """Charged units that `quantity` more base units complete after the pending remainder."""
    return int((pending_usage + quantity) // size)


@dataclass
class ResourceLedger:
    """Everything stored for one team and resource: the balance, subscriptions, payg cycles."""

    resource_id: str
    state: BalanceState = field(default_factory=BalanceState)
    subscriptions: list[Subscription] = field(default_factory=list)
    cycle_units: dict[CycleKey, int] = field(default_factory=dict)
    closed_cycles: set[CycleKey] = field(default_factory=set)  # closing or closed, still in RES#
    closed_through: dict[str, int] = field(default_factory=dict)  # subscription id -> last cycle index closed

    def closed(self) -> ClosedCycles:
        """The cycles that take no more units (billing_cycle_of_unit)."""
        return ClosedCycles(dict(self.closed_through), frozenset(self.closed_cycles))

    @property
    def has_balance(self) -> bool:
        """A balance was ever written (its first write makes version 1)."""
        return self.state.version > 0

    def shown_at(self, now: datetime) -> bool:
        """A card for every resource the team has a subscription to that has not ended, or an ended
        payg whose last cycle is not closed yet (its final invoice is still to come)."""
        unclosed = {key.subscription_id for key in self.cycle_units}
        return any(not subscription.has_ended(now) or subscription.subscription_id in unclosed
                   for subscription in self.subscriptions)


@dataclass
class TeamSnapshot:
    """A team's partition as one read: the team, its members and apps, and its resource ledgers."""

    team: Team | None
    members: dict[str, Member] = field(default_factory=dict)
    apps: dict[str, App] = field(default_factory=dict)
    resources: dict[str, ResourceLedger] = field(default_factory=dict)

    def ledger(self, resource_id: str) -> ResourceLedger:
        return self.resources.setdefault(resource_id, ResourceLedger(resource_id))
