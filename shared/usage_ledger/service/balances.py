"""Read side: balance cards, the developer-portal banner and the entitlement check."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from usage_ledger.domain.access import require_visible, visible_resource
from usage_ledger.domain.balance import balance_card, project
from usage_ledger.domain.calendar import iso
from usage_ledger.domain.errors import NotFound
from usage_ledger.domain.ledger import TeamSnapshot, units_needed
from usage_ledger.domain.model import Member
from usage_ledger.service.ports import LedgerStore


class Balances:
    def __init__(self, ledger: LedgerStore) -> None:
        self.ledger = ledger

    def cards(self, snapshot: TeamSnapshot, member: Member | None, now: datetime) -> list[dict[str, Any]]:
        result = []
        for resource_id in sorted(snapshot.resources):
            ledger = snapshot.resources[resource_id]
            resource = self.ledger.resource(resource_id)
            if resource is None or not ledger.shown_at(now):
                continue
            if member is not None and not visible_resource(member, resource):
                continue
            result.append(balance_card(resource, ledger.subscriptions, ledger.state, ledger.cycle_units, now,
                                      ledger.closed()))
        return result

    def team_balances(self, team_id: str, member: Member, now: datetime) -> dict[str, Any]:
        snapshot = self.ledger.load_team(team_id)
        return {"team_id": team_id, "as_of": iso(now), "balances": self.cards(snapshot, member, now)}

    def one_balance(self, team_id: str, resource_id: str, member: Member, now: datetime) -> dict[str, Any]:
        resource = self.ledger.resource(resource_id)
        if resource is None:
            raise NotFound(f"Resource {resource_id!r} not found.")
        require_visible(member, resource)
        ledger = self.ledger.load_team(team_id, resource_id=resource_id).ledger(resource_id)
        if not ledger.shown_at(now):
            raise NotFound(f"Team {team_id!r} has no subscription to {resource_id!r}.")
        return {"team_id": team_id, "as_of": iso(now),
                **balance_card(resource, ledger.subscriptions, ledger.state, ledger.cycle_units, now,
                               ledger.closed())}

    def banner(self, snapshot: TeamSnapshot, now: datetime) -> dict[str, Any] | None:
        """`error` while an api resource is exhausted, else `warning` while one is low."""
        by_status: dict[str, list[str]] = {"exhausted": [], "low": []}
        names: dict[str, str] = {}
        covering: dict[str, str] = {}  # low at zero prepaid: Pay as You Go is covering usage, not "running low"
        for card in self.cards(snapshot, None, now):
            if card["kind"] == "api" and card["status"] in by_status:
                by_status[card["status"]].append(card["resource_id"])
                names[card["resource_id"]] = card["display_name"]
                if card["status"] == "low" and card["available"] == 0 and card.get("payg"):
                    covering[card["resource_id"]] = (f"{card['display_name']} ({card['available']:,} of "
                                                     f"{card['total']:,} available)")
        if by_status["exhausted"]:
            ids = by_status["exhausted"]
            return {"level": "error", "resource_ids": ids,
                    "message": "API balance used up: " + ", ".join(names[i] for i in ids)
                    + ". Calls past the balance are recorded as shortfall; add capacity to avoid interruption."}
        if by_status["low"]:
            ids = by_status["low"]
            running_low = [names[i] for i in ids if i not in covering]
            parts = (["API balance running low: " + ", ".join(running_low) + "."] if running_low else []) + (
                ["Prepaid API units used up, Pay as You Go is covering usage: " + ", ".join(covering.values()) + "."]
                if covering else [])
            return {"level": "warning", "resource_ids": ids, "message": " ".join(parts)}
        return None

    def notices(self, team_id: str, now: datetime) -> dict[str, Any]:
        return {"banner": self.banner(self.ledger.load_team(team_id), now), "as_of": iso(now)}

    def entitlement(self, team_id: str, resource_id: str, quantity: Decimal | None, now: datetime) -> dict[str, Any]:
        """May the team use `quantity` more base units now? One Query of the resource's items."""
        resource = self.ledger.resource(resource_id)
        if resource is None:
            raise NotFound(f"Resource {resource_id!r} not found.")
        ledger = self.ledger.load_team(team_id, resource_id=resource_id).ledger(resource_id)
        # nothing stored for the resource: only then pay a second request to tell "unknown team"
        if not ledger.subscriptions and not ledger.has_balance and self.ledger.get_team(team_id) is None:
            raise NotFound(f"Team {team_id!r} not found.")
        projection = project(resource, ledger.subscriptions, ledger.state, now)
        pending = ledger.state.pending_usage
        # no quantity: one charged unit's worth of base units
        needed = units_needed(pending, quantity if quantity is not None else resource.charge_unit_size,
                              resource.charge_unit_size)
        if needed <= projection.available:
            covered_by: str | None = "prepaid"
        elif projection.has_payg and not projection.payg_past_due:  # past_due: payg covers nothing more
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
