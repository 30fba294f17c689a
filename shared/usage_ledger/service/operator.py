"""Operator use cases: the catalogue, teams, members, apps and subscriptions (idempotent writes)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from usage_ledger.domain.calendar import iso
from usage_ledger.domain.commands import CreateSubscription, PutApp, PutMember, PutResource, PutTeam
from usage_ledger.domain.errors import Conflict, FieldError, NotFound, PaymentMethodRejected, ValidationFailed
from usage_ledger.domain.model import App, Member, PaymentMethod, Resource, Subscription, Team
from usage_ledger.service.ports import LedgerStore, PaymentGateway

PAYG_ONLY_FIELDS = ("purchased_at", "timezone", "unit_amount", "currency", "purchaser_user_id")


@dataclass
class Written:
    """A PUT/POST outcome: the representation and whether it was created (201) or not (200)."""

    body: dict[str, Any]
    created: bool


def card_view(card: PaymentMethod | None) -> dict[str, Any] | None:
    if card is None:
        return None
    return {"id": card.id, "brand": card.brand, "last4": card.last4, "exp_month": card.exp_month,
            "exp_year": card.exp_year}


def subscription_view(subscription: Subscription) -> dict[str, Any]:
    """The subscription as the API shows it (contract section 1 field names)."""
    return {
        "team_id": subscription.team_id, "subscription_id": subscription.subscription_id,
        "resource_id": subscription.resource_id, "type": subscription.type, "quantity": subscription.quantity,
        "starts_at": iso(subscription.starts_at), "ends_at": iso(subscription.ends_at),
        "refresh_period": subscription.refresh_period, "purchased_at": iso(subscription.purchased_at),
        "timezone": subscription.timezone, "unit_amount": subscription.unit_amount,
        "currency": subscription.currency, "purchaser_user_id": subscription.purchaser_user_id,
        "payment_method": card_view(subscription.payment_method),
    }


def _same_grant(existing: Subscription, requested: Subscription, payment_method_id: str | None) -> bool:
    """A repeated create: the same fields and the same card (the processor described the stored one)."""
    stored_card = existing.payment_method.id if existing.payment_method else None
    return (stored_card == payment_method_id
            and subscription_view(replace(existing, payment_method=None)) == subscription_view(requested))


class Operator:
    def __init__(self, ledger: LedgerStore, payments: PaymentGateway) -> None:
        self.ledger, self.payments = ledger, payments

    def put_resource(self, command: PutResource) -> Written:
        if command.declared_resource_id is not None and command.declared_resource_id != command.resource_id:
            raise ValidationFailed.single("resource_id", "must match the resource id in the path")
        resource = Resource(resource_id=command.resource_id, kind=command.kind, display_name=command.display_name,
                            unit=command.unit, charge_unit_size=command.charge_unit_size.normalize(),
                            low_balance_percent=command.low_balance_percent.normalize())
        created = self.ledger.put_resource(resource)
        if created is None:
            raise Conflict(
                f"Resource {resource.resource_id!r} exists with another kind or charge_unit_size; "
                "those cannot change once set (create a new resource instead)."
            )
        return Written({"resource_id": resource.resource_id, "kind": resource.kind,
                        "display_name": resource.display_name, "unit": resource.unit,
                        "charge_unit_size": resource.charge_unit_size,
                        "low_balance_percent": resource.low_balance_percent}, created)

    def put_team(self, command: PutTeam) -> Written:
        created = self.ledger.put_team(Team(team_id=command.team_id, name=command.name))
        return Written({"team_id": command.team_id, "name": command.name}, created)

    def _require_team(self, team_id: str) -> None:
        if self.ledger.get_team(team_id) is None:
            raise NotFound(f"Team {team_id!r} not found.")

    def put_member(self, command: PutMember) -> Written:
        self._require_team(command.team_id)
        member = Member(team_id=command.team_id, user_id=command.user_id, email=command.email,
                        roles=frozenset(command.roles), full_access=command.full_access)
        created = self.ledger.put_member(member)
        return Written({"team_id": member.team_id, "user_id": member.user_id, "email": member.email,
                        "roles": sorted(member.roles), "full_access": member.full_access}, created)

    def put_app(self, command: PutApp) -> Written:
        self._require_team(command.team_id)
        if self.ledger.get_member(command.team_id, command.owner_user_id) is None:
            raise ValidationFailed.single("owner_user_id", "must be a member of the team")
        app = App(team_id=command.team_id, app_id=command.app_id, name=command.name,
                  owner_user_id=command.owner_user_id)
        created = self.ledger.put_app(app)
        return Written({"team_id": app.team_id, "app_id": app.app_id, "name": app.name,
                        "owner_user_id": app.owner_user_id}, created)

    def remove_member(self, team_id: str, user_id: str) -> None:
        """The user is no longer a member: 404 on the team's routes from now on, no alert or notice
        email. Alerts naming them are not rewritten (they show them as ineligible when read);
        usage recorded under them stays."""
        if not self.ledger.delete_member(team_id, user_id):
            raise NotFound(f"Member {user_id!r} of team {team_id!r} not found.")

    def remove_app(self, team_id: str, app_id: str) -> None:
        """The app is no longer the team's: its owner gets no more API emails for it; usage
        recorded under it stays."""
        if not self.ledger.delete_app(team_id, app_id):
            raise NotFound(f"App {app_id!r} of team {team_id!r} not found.")

    def _subscription_errors(self, subscription: Subscription, payment_method_id: str | None) -> list[FieldError]:
        errors: list[FieldError] = []
        if self.ledger.resource(subscription.resource_id) is None:
            errors.append(FieldError("resource_id", "is not a catalogue resource"))
        if subscription.ends_at is not None and subscription.ends_at <= subscription.starts_at:
            errors.append(FieldError("ends_at", "must be after starts_at"))
        if subscription.is_payg:
            if subscription.quantity is not None:
                errors.append(FieldError("quantity", "is not allowed for payg (it has no limit)"))
            if subscription.refresh_period is not None:
                errors.append(FieldError("refresh_period", "is not allowed for payg"))
            for name in PAYG_ONLY_FIELDS:
                if getattr(subscription, name) is None:
                    errors.append(FieldError(name, "is required for payg"))
            if payment_method_id is None:
                errors.append(FieldError("payment_method", "is required for payg"))
            purchaser = subscription.purchaser_user_id
            if purchaser and self.ledger.get_member(subscription.team_id, purchaser) is None:
                errors.append(FieldError("purchaser_user_id", "must be a member of the team"))
        else:
            if subscription.quantity is None:
                errors.append(FieldError("quantity", f"is required for {subscription.type}"))
            for name in PAYG_ONLY_FIELDS:
                if getattr(subscription, name) is not None:
                    errors.append(FieldError(name, "is only allowed for payg"))
            if payment_method_id is not None:
                errors.append(FieldError("payment_method", "is only allowed for payg"))
        return errors

    def create_subscription(self, command: CreateSubscription) -> Written:
        requested, card_id = command.subscription, command.payment_method_id
        self._require_team(requested.team_id)
        errors = self._subscription_errors(requested, card_id)
        if errors:
            raise ValidationFailed(errors)
        existing = self.ledger.subscription_by_id(requested.team_id, requested.subscription_id)
        if existing is None:
            subscription = self._with_saved_card(requested, card_id)
            resource = self.ledger.resource(subscription.resource_id)
            if self.ledger.create_subscription(subscription, listed_for_alerts=resource is not None
                                               and resource.kind == "api"):
                return Written(subscription_view(subscription), created=True)
            existing = self.ledger.subscription_by_id(requested.team_id, requested.subscription_id)
        if existing is not None and _same_grant(existing, requested, card_id):
            return Written(subscription_view(existing), created=False)
        raise Conflict(f"Subscription {requested.subscription_id!r} already exists with different fields.")

    def _with_saved_card(self, subscription: Subscription, card_id: str | None) -> Subscription:
        """payg: the card attached to a Customer of the subscription's own at the processor."""
        if card_id is None:
            return subscription
        try:
            customer_id, card = self.payments.save_card(
                card_id, customer_id=None, reference=f"{subscription.team_id}/{subscription.subscription_id}")
        except PaymentMethodRejected as error:
            raise ValidationFailed.single("payment_method.id", error.detail) from error
        return replace(subscription, payment_method=card, customer_id=customer_id)
