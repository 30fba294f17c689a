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

    def banner(self, snapshot: TeamSnapshot, member: Member | None, now: datetime) -> dict[str, Any] | None:
        """The caller's banner (contract section 3): `error` while an api resource is exhausted or a
        payg of one of the caller's visible resources is past_due, else `warning` while an api
        resource is low. Each reason gets its sentence; the worst level wins."""
        cards = self.cards(snapshot, member, now)
        past_due = [card for card in cards if (card.get("payg") or {}).get("status") == "past_due"]
        exhausted = [card for card in cards if card["kind"] == "api" and card["status"] == "exhausted"]
        low = [card for card in cards if card["kind"] == "api" and card["status"] == "low"]
        # low at zero prepaid with Pay as You Go covering usage is not "running low"
        covering = [card for card in low if card["available"] == 0 and card.get("payg")]
        running_low = [card for card in low if card not in covering]
        sentences = []
        if past_due:
            sentences.append("An invoice for " + _names(past_due) + " could not be charged, so Pay as You Go "
                             "covers no more usage: update the card in Settings, Payment method.")
        if exhausted:
            sentences.append("API balance used up: " + _names(exhausted) + ". Calls past the balance are "
                             "recorded as shortfall; add capacity to avoid interruption.")
        if running_low:
            sentences.append("API balance running low: " + _names(running_low) + ".")
        covering = [card for card in covering if card not in past_due]
        if covering:
            sentences.append("Prepaid API units used up, Pay as You Go is covering usage: " + ", ".join(
                f"{card['display_name']} ({card['available']:,} of {card['total']:,} available)"
                for card in covering) + ".")
        if not sentences:
            return None
        flagged = {card["resource_id"] for card in (*past_due, *exhausted, *low)}
        return {"level": "error" if past_due or exhausted else "warning",
                "resource_ids": sorted(flagged), "message": " ".join(sentences)}

    def notices(self, team_id: str, member: Member | None, now: datetime) -> dict[str, Any]:
        return {"banner": self.banner(self.ledger.load_team(team_id), member, now), "as_of": iso(now)}

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


def _names(cards: list[dict[str, Any]]) -> str:
    return ", ".join(card["display_name"] for card in cards)
