"""Operator use cases: the catalogue, teams, members, apps and subscriptions (idempotent writes)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from usage_ledger.adapters import dynamo, ledger_store
from usage_ledger.adapters.ledger_store import team_pk
from usage_ledger.domain.calendar import parse_instant
from usage_ledger.domain.model import PaymentMethod, Resource, Subscription
from usage_ledger.errors import Conflict, FieldError, NotFound, ValidationFailed
from usage_ledger.http.schemas import AppBody, MemberBody, ResourceBody, SubscriptionBody, TeamBody

PAYG_ONLY_FIELDS = ("purchased_at", "timezone", "unit_amount", "currency", "purchaser_user_id", "payment_method")


@dataclass
class Written:
    """A PUT/POST outcome: the representation and whether it was created (201) or not (200)."""

    body: dict[str, Any]
    created: bool


def _upsert(item: dict[str, Any]) -> bool:
    """Put the item; True when it did not exist before (one request, ReturnValues tells)."""
    response = dynamo.client().put_item(
        TableName=ledger_store.table(), Item=dynamo.to_item(item), ReturnValues="ALL_OLD"
    )
    return "Attributes" not in response


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key not in {"PK", "SK", "entity", "GSI1PK", "GSI1SK"}}


def put_resource(resource_id: str, body: ResourceBody) -> Written:
    if body.resource_id is not None and body.resource_id != resource_id:
        raise ValidationFailed.single("resource_id", "must match the resource id in the path")
    resource = Resource(
        resource_id=resource_id,
        kind=body.kind,
        display_name=body.display_name,
        unit=body.unit,
        charge_unit_size=body.charge_unit_size.normalize(),
        low_balance_percent=body.low_balance_percent.normalize(),
    )
    item = ledger_store.resource_to_item(resource)
    try:
        # kind and unit size give meaning to stored balances: they cannot change once set
        response = dynamo.client().put_item(
            TableName=ledger_store.table(),
            Item=dynamo.to_item(item),
            ConditionExpression="attribute_not_exists(PK) OR (kind = :kind AND charge_unit_size = :size)",
            ExpressionAttributeValues=dynamo.values({":kind": resource.kind, ":size": resource.charge_unit_size}),
            ReturnValues="ALL_OLD",
        )
    except ClientError as error:
        if dynamo.is_condition_failure(error):
            raise Conflict(
                f"Resource {resource_id!r} exists with another kind or charge_unit_size; "
                "those cannot change once set (create a new resource instead)."
            ) from None
        raise
    ledger_store.forget_catalogue()
    return Written(_public(item), created="Attributes" not in response)


def put_team(team_id: str, body: TeamBody) -> Written:
    item = {"PK": team_pk(team_id), "SK": "META", "entity": "team", "team_id": team_id, "name": body.name,
            "GSI1PK": ledger_store.TEAMS_INDEX, "GSI1SK": team_id}
    created = _upsert(item)
    return Written(_public(item), created)


def _require_team(team_id: str) -> None:
    if ledger_store.get_team(team_id) is None:
        raise NotFound(f"Team {team_id!r} not found.")


def put_member(team_id: str, user_id: str, body: MemberBody) -> Written:
    _require_team(team_id)
    item = {
        "PK": team_pk(team_id),
        "SK": f"MEMBER#{user_id}",
        "entity": "member",
        "team_id": team_id,
        "user_id": user_id,
        "email": body.email,
        "roles": sorted(body.roles),
        "full_access": body.full_access,
    }
    created = _upsert(item)
    return Written(_public(item), created)


def put_app(team_id: str, app_id: str, body: AppBody) -> Written:
    _require_team(team_id)
    if ledger_store.get_member(team_id, body.owner_user_id) is None:
        raise ValidationFailed.single("owner_user_id", "must be a member of the team")
    item = {
        "PK": team_pk(team_id),
        "SK": f"APP#{app_id}",
        "entity": "app",
        "team_id": team_id,
        "app_id": app_id,
        "name": body.name,
        "owner_user_id": body.owner_user_id,
    }
    created = _upsert(item)
    return Written(_public(item), created)


def _subscription_errors(team_id: str, body: SubscriptionBody) -> list[FieldError]:
    errors: list[FieldError] = []
    if ledger_store.resource(body.resource_id) is None:
        errors.append(FieldError("resource_id", "is not a catalogue resource"))
    if body.ends_at is not None and parse_instant(body.ends_at) <= parse_instant(body.starts_at):
        errors.append(FieldError("ends_at", "must be after starts_at"))
    if body.type == "payg":
        if body.quantity is not None:
            errors.append(FieldError("quantity", "is not allowed for payg (it has no limit)"))
        if body.refresh_period is not None:
            errors.append(FieldError("refresh_period", "is not allowed for payg"))
        for name in PAYG_ONLY_FIELDS:
            if getattr(body, name) is None:
                errors.append(FieldError(name, "is required for payg"))
        if body.purchaser_user_id and ledger_store.get_member(team_id, body.purchaser_user_id) is None:
            errors.append(FieldError("purchaser_user_id", "must be a member of the team"))
    else:
        if body.quantity is None:
            errors.append(FieldError("quantity", f"is required for {body.type}"))
        for name in PAYG_ONLY_FIELDS:
            if getattr(body, name) is not None:
                errors.append(FieldError(name, "is only allowed for payg"))
    return errors


def create_subscription(team_id: str, body: SubscriptionBody) -> Written:
    _require_team(team_id)
    errors = _subscription_errors(team_id, body)
    if errors:
        raise ValidationFailed(errors)
    payment = body.payment_method
    subscription = Subscription(
        team_id=team_id,
        subscription_id=body.subscription_id or f"sub_{uuid.uuid4().hex[:20]}",
        resource_id=body.resource_id,
        type=body.type,
        quantity=body.quantity,
        starts_at=parse_instant(body.starts_at),
        ends_at=parse_instant(body.ends_at) if body.ends_at else None,
        refresh_period=body.refresh_period,
        purchased_at=parse_instant(body.purchased_at) if body.purchased_at else None,
        timezone=body.timezone,
        unit_amount=body.unit_amount,
        currency=body.currency,
        purchaser_user_id=body.purchaser_user_id,
        payment_method=PaymentMethod(payment.brand, payment.last4, payment.exp_month, payment.exp_year)
        if payment
        else None,
    )
    item = ledger_store.subscription_to_item(subscription)
    resource = ledger_store.resource(subscription.resource_id)
    if resource is not None and resource.kind == "api":  # listed for the scheduled alert run from day one
        item.update(ledger_store.api_index_keys(team_id, subscription.resource_id))
    # the id guard makes subscription ids unique per team across resources
    guard = {"PK": team_pk(team_id), "SK": f"SUBID#{subscription.subscription_id}", "entity": "subscription_id",
             "resource_id": subscription.resource_id}
    try:
        dynamo.client().transact_write_items(
            TransactItems=[
                {"Put": {"TableName": ledger_store.table(), "Item": dynamo.to_item(guard),
                         "ConditionExpression": "attribute_not_exists(PK)"}},
                {"Put": {"TableName": ledger_store.table(), "Item": dynamo.to_item(item),
                         "ConditionExpression": "attribute_not_exists(PK)"}},
            ]
        )
        return Written(ledger_store.subscription_view(subscription), created=True)
    except ClientError as error:
        if "ConditionalCheckFailed" not in dynamo.cancellation_codes(error):
            raise
    existing_guard = ledger_store.get_item(team_pk(team_id), f"SUBID#{subscription.subscription_id}")
    existing = (
        ledger_store.get_subscription(team_id, existing_guard["resource_id"], subscription.subscription_id)
        if existing_guard
        else None
    )
    if existing is not None and ledger_store.subscription_view(existing) == ledger_store.subscription_view(subscription):
        return Written(ledger_store.subscription_view(existing), created=False)
    raise Conflict(f"Subscription {subscription.subscription_id!r} already exists with different fields.")
