"""Read side: balance cards, the developer-portal banner and the entitlement check."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from usage_ledger.adapters import ledger_store
from usage_ledger.adapters.ledger_store import ResourceLedger, TeamSnapshot
from usage_ledger.domain.balance import balance_card, project
from usage_ledger.domain.calendar import iso
from usage_ledger.domain.ledger import units_needed
from usage_ledger.domain.model import Member
from usage_ledger.errors import NotFound, ValidationFailed
from usage_ledger.http.identity import require_visible, visible_resource

MAX_ENTITLEMENT_QUANTITY = Decimal(10) ** 12


def _shown(ledger: ResourceLedger, now: datetime) -> bool:
    """A card for every resource the team has a subscription to that has not ended."""
    return any(not subscription.has_ended(now) for subscription in ledger.subscriptions)


def cards(snapshot: TeamSnapshot, member: Member | None, now: datetime) -> list[dict[str, Any]]:
    result = []
    for resource_id in sorted(snapshot.resources):
        ledger = snapshot.resources[resource_id]
        resource = ledger_store.resource(resource_id)
        if resource is None or not _shown(ledger, now):
            continue
        if member is not None and not visible_resource(member, resource):
            continue
        result.append(balance_card(resource, ledger.subscriptions, ledger.state, ledger.cycle_units, now))
    return result


def team_balances(team_id: str, member: Member, now: datetime) -> dict[str, Any]:
    snapshot = ledger_store.load_team(team_id)
    return {"team_id": team_id, "as_of": iso(now), "balances": cards(snapshot, member, now)}


def one_balance(team_id: str, resource_id: str, member: Member, now: datetime) -> dict[str, Any]:
    resource = ledger_store.resource(resource_id)
    if resource is None:
        raise NotFound(f"Resource {resource_id!r} not found.")
    require_visible(member, resource)
    ledger = ledger_store.load_team(team_id, resource_id=resource_id).ledger(resource_id)
    if not _shown(ledger, now):
        raise NotFound(f"Team {team_id!r} has no subscription to {resource_id!r}.")
    return {"team_id": team_id, "as_of": iso(now),
            **balance_card(resource, ledger.subscriptions, ledger.state, ledger.cycle_units, now)}


def banner(snapshot: TeamSnapshot, now: datetime) -> dict[str, Any] | None:
    """`error` while an api resource is exhausted, else `warning` while one is low."""
    by_status: dict[str, list[str]] = {"exhausted": [], "low": []}
    names: dict[str, str] = {}
    for card in cards(snapshot, None, now):
        if card["kind"] == "api" and card["status"] in by_status:
            by_status[card["status"]].append(card["resource_id"])
            names[card["resource_id"]] = card["display_name"]
    if by_status["exhausted"]:
        ids = by_status["exhausted"]
        return {"level": "error", "resource_ids": ids,
                "message": "API balance used up: " + ", ".join(names[i] for i in ids)
                + ". Calls past the balance are recorded as shortfall; add capacity to avoid interruption."}
    if by_status["low"]:
        ids = by_status["low"]
        return {"level": "warning", "resource_ids": ids,
                "message": "API balance running low: " + ", ".join(names[i] for i in ids) + "."}
    return None


def notices(team_id: str, now: datetime) -> dict[str, Any]:
    return {"banner": banner(ledger_store.load_team(team_id), now), "as_of": iso(now)}


def parse_entitlement_quantity(raw: str | None) -> Decimal | None:
    """`?quantity=N`: ASCII digits only (Decimal alone would take "1e3", " 5" or a full-width "５")."""
    if raw is None:
        return None
    quantity = Decimal(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 20 else Decimal(0)
    if quantity <= 0:
        raise ValidationFailed.single("quantity", "must be a positive whole number of base units")
    if quantity > MAX_ENTITLEMENT_QUANTITY:
        raise ValidationFailed.single("quantity", f"must be at most {MAX_ENTITLEMENT_QUANTITY}")
    return quantity


def entitlement(team_id: str, resource_id: str, quantity: Decimal | None, now: datetime) -> dict[str, Any]:
    """May the team use `quantity` more base units now? One Query of the resource's items."""
    resource = ledger_store.resource(resource_id)
    if resource is None:
        raise NotFound(f"Resource {resource_id!r} not found.")
    ledger = ledger_store.load_team(team_id, resource_id=resource_id).ledger(resource_id)
    # nothing stored for the resource: only then pay a second request to tell "unknown team"
    if not ledger.subscriptions and not ledger.has_balance_item and ledger_store.get_team(team_id) is None:
        raise NotFound(f"Team {team_id!r} not found.")
    projection = project(resource, ledger.subscriptions, ledger.state, now)
    pending = ledger.state.pending_usage
    # no quantity: one charged unit's worth of base units
    needed = units_needed(pending, quantity if quantity is not None else resource.charge_unit_size,
                          resource.charge_unit_size)
    if needed <= projection.available:
        covered_by: str | None = "prepaid"
    elif projection.has_payg:
        covered_by = "payg"
    else:
        covered_by = None
    return {
        "team_id": team_id,
        "resource_id": resource_id,
        "allowed": covered_by is not None,
        "available": projection.available,
        "pending_usage": pending,
        "units_needed": needed,
        "covered_by": covered_by,
        "status": projection.status,
        "as_of": iso(now),
    }
