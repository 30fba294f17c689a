"""Balance cards, status and run-out projection, computed at read time from stored state and now.

Nothing here depends on a job running at a period boundary: availability is read from the
period that contains `now`.
"""
from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from usage_ledger.domain.calendar import cycle_at, cycle_by_index, iso, refresh_period_at, utc_day, whole_days_between
from usage_ledger.domain.ledger import BalanceState, CycleKey, billing_cycle_of_unit
from usage_ledger.domain.model import Resource, Subscription, in_consumption_order

PROJECTION_WINDOW_DAYS = 7


@dataclass(frozen=True)
class Projection:
    available: int
    total: int
    status: str
    days_remaining: int | None
    projected_depletion_date: date | None
    has_payg: bool
    payg_past_due: bool = False  # payg covers nothing more until the failed invoices are paid


def payg_past_due(subscriptions: list[Subscription]) -> bool:
    """Contract section 6: the resource's payg is past_due while any payg subscription of it has an
    invoice that is payment_failed or uncollectible."""
    return any(subscription.is_payg and subscription.is_past_due for subscription in subscriptions)


def consumed_in_window(state: BalanceState, today: date) -> int:
    """Charged units completed over the 7 whole UTC days before today (whatever covered them)."""
    return sum(state.units_on(today - timedelta(days=offset)) for offset in range(1, PROJECTION_WINDOW_DAYS + 1))


def project(resource: Resource, subscriptions: list[Subscription], state: BalanceState, now: datetime) -> Projection:
    active = [subscription for subscription in subscriptions if subscription.is_active(now)]
    prepaid = [subscription for subscription in active if subscription.is_prepaid]
    available = sum(state.available_in(subscription, now) for subscription in prepaid)
    total = sum(subscription.quantity or 0 for subscription in prepaid)
    has_payg = any(subscription.is_payg for subscription in active)

    if available == 0 and not has_payg:
        status = "exhausted"
    elif total > 0 and Decimal(available) <= resource.low_balance_percent * total / 100:
        status = "low"
    else:
        status = "ok"

    today = utc_day(now)
    consumed = consumed_in_window(state, today)
    days_remaining: int | None
    if not prepaid or consumed == 0:
        days_remaining = None
    elif available == 0:
        days_remaining = 0
    else:
        days_remaining = int(Decimal(available) * PROJECTION_WINDOW_DAYS // consumed)
    return Projection(available, total, status, days_remaining, depletion_date(today, days_remaining), has_payg,
                      payg_past_due(subscriptions))


def depletion_date(today: date, days_remaining: int | None) -> date | None:
    """today + days_remaining, or None past the calendar's last day (9999-12-31): a balance of
    10,000,000 units used one a week lasts 70 million days (contract section 1)."""
    if days_remaining is None or days_remaining > (date.max - today).days:
        return None
    return today + timedelta(days=days_remaining)


def next_refresh(subscription: Subscription, now: datetime) -> datetime | None:
    if subscription.refresh_period is None or not subscription.is_active(now):
        return None
    boundary = refresh_period_at(subscription.starts_at, subscription.refresh_period, now).end
    if boundary is None or (subscription.ends_at is not None and boundary >= subscription.ends_at):
        return None
    return boundary


def days_until(now: datetime, later: datetime | None) -> int | None:
    return whole_days_between(now, later) if later is not None else None


def balance_card(
    resource: Resource,
    subscriptions: list[Subscription],
    state: BalanceState,
    cycle_units: dict[CycleKey, int],
    now: datetime,
    closed: Container[CycleKey] = frozenset(),
) -> dict[str, Any]:
    """One card of GET /balances (contract section 3), in the contract's field names; `closed`:
    the payg cycles a close run closed (its open cycle is the first one after them)."""
    shown = in_consumption_order([s for s in subscriptions if not s.has_ended(now)])
    projection = project(resource, shown, state, now)
    active = [s for s in shown if s.is_active(now)]
    ends = [s.ends_at for s in active if s.ends_at is not None]
    ends_at = min(ends) if ends else None
    refreshes = [r for r in (next_refresh(s, now) for s in active) if r is not None]
    refreshes_at = min(refreshes) if refreshes else None
    total_purchased = sum(s.quantity or 0 for s in active if s.is_prepaid and s.type != "free")

    rows = []
    for subscription in shown:
        row: dict[str, Any] = {
            "subscription_id": subscription.subscription_id,
            "type": subscription.type,
            "available": state.available_in(subscription, now) if subscription.is_prepaid else None,
            "total": subscription.quantity if subscription.is_prepaid else None,
            "starts_at": iso(subscription.starts_at),
            "ends_at": iso(subscription.ends_at),
            "refreshes_at": iso(next_refresh(subscription, now)),
            # payg only: whose card pays it (the page asks for the card only where the caller may have
            # it) and the zone its cycle dates and invoices are in
            "purchaser_user_id": subscription.purchaser_user_id if subscription.is_payg else None,
            "timezone": subscription.timezone if subscription.is_payg else None,
        }
        rows.append(row)

    payg = None
    # an ended payg stays on the card until its last cycle is closed: that cycle is its final invoice
    unclosed = {key.subscription_id for key in cycle_units}
    payg_subscription = next((s for s in active if s.is_payg), None) or next(
        (s for s in in_consumption_order(subscriptions)
         if s.is_payg and s.has_ended(now) and s.subscription_id in unclosed), None)
    if payg_subscription is not None:
        assert payg_subscription.purchased_at and payg_subscription.timezone
        purchased_at, zone = payg_subscription.purchased_at, payg_subscription.timezone
        ends_at = payg_subscription.ends_at
        if payg_subscription.has_ended(now):  # no unit lands after ends_at: its final cycle, until closed
            key = CycleKey(payg_subscription.subscription_id, cycle_at(purchased_at, zone, now, ends_at).index)
        else:  # the cycle a unit completed now would be billed in: the one containing now, unless closed
            key = billing_cycle_of_unit(payg_subscription, now, now, closed, timedelta(0))
        cycle = cycle_by_index(purchased_at, zone, key.index, ends_at)
        units = cycle_units.get(key, 0)
        payg = {
            "subscription_id": payg_subscription.subscription_id,
            "cycle_start": cycle.start_date.isoformat(),
            "cycle_end": cycle.end_date.isoformat(),
            "charged_units": units,
            "unit_amount": payg_subscription.unit_amount,
            "amount": units * (payg_subscription.unit_amount or 0),
            "currency": payg_subscription.currency,
            "status": "past_due" if payg_past_due(subscriptions) else "active",
            "ends_at": iso(payg_subscription.ends_at),  # its last cycle ends then (set when cancelled)
        }

    return {
        "resource_id": resource.resource_id,
        "kind": resource.kind,
        "display_name": resource.display_name,
        "unit": resource.unit,
        "charge_unit_size": resource.charge_unit_size,
        "available": projection.available,
        "total": projection.total,
        "total_purchased": total_purchased,
        "pending_usage": state.pending_usage,
        "shortfall_units": state.shortfall_units,
        "status": projection.status,
        "ends_at": iso(ends_at),
        "ends_in_days": days_until(now, ends_at),
        "refreshes_at": iso(refreshes_at),
        "refreshes_in_days": days_until(now, refreshes_at),
        "days_remaining": projection.days_remaining,
        "projected_depletion_date": projection.projected_depletion_date.isoformat()
        if projection.projected_depletion_date
        else None,
        "subscriptions": rows,
        "payg": payg,
    }
