"""The ledger table: catalogue, teams, members, apps, subscriptions, balances and cycles.

Key layout (docs/data-model.md): everything a balance card needs lives in the team's
partition under `RES#<resource_id>#...`, so one Query answers GET /balances.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from usage_ledger.adapters import dynamo
from usage_ledger.config import settings
from usage_ledger.domain.calendar import iso, parse_instant
from usage_ledger.domain.ledger import BalanceState, CycleKey
from usage_ledger.domain.model import App, Member, PaymentMethod, Resource, Subscription, Team

CATALOGUE_PK = "CATALOGUE"
OPEN_CYCLES = "CYCLE#OPEN"
TEAMS_INDEX = "TEAM"
# GSI1 partition listing every (team, api resource): the scheduled alert run finds api notices here
API_RESOURCES_INDEX = "APIBAL"
# the catalogue changes rarely; a container re-reads it at most this often
CATALOGUE_TTL_SECONDS = 60


def team_pk(team_id: str) -> str:
    return f"TEAM#{team_id}"


def resource_prefix(resource_id: str) -> str:
    return f"RES#{resource_id}#"


def balance_sk(resource_id: str) -> str:
    return f"RES#{resource_id}#BAL"


def subscription_sk(resource_id: str, subscription_id: str) -> str:
    return f"RES#{resource_id}#SUB#{subscription_id}"


def cycle_sk(resource_id: str, subscription_id: str, index: int) -> str:
    return f"RES#{resource_id}#CYCLE#{subscription_id}#{index:06d}"


def api_index_keys(team_id: str, resource_id: str) -> dict[str, str]:
    """GSI1 keys that list a team's api resource (on its subscriptions and its balance)."""
    return {"GSI1PK": API_RESOURCES_INDEX, "GSI1SK": f"{team_id}#{resource_id}"}


def table() -> str:
    return settings().ledger_table


# ------------------------------------------------------------------ codecs


def resource_to_item(resource: Resource) -> dict[str, Any]:
    return {
        "PK": CATALOGUE_PK,
        "SK": f"RESOURCE#{resource.resource_id}",
        "resource_id": resource.resource_id,
        "kind": resource.kind,
        "display_name": resource.display_name,
        "unit": resource.unit,
        "charge_unit_size": resource.charge_unit_size,
        "low_balance_percent": resource.low_balance_percent,
    }


def resource_from_item(item: dict[str, Any]) -> Resource:
    return Resource(
        resource_id=item["resource_id"],
        kind=item["kind"],
        display_name=item["display_name"],
        unit=item["unit"],
        charge_unit_size=Decimal(item["charge_unit_size"]),
        low_balance_percent=Decimal(item["low_balance_percent"]),
    )


def subscription_to_item(subscription: Subscription) -> dict[str, Any]:
    payment = subscription.payment_method
    return {
        "PK": team_pk(subscription.team_id),
        "SK": subscription_sk(subscription.resource_id, subscription.subscription_id),
        "entity": "subscription",
        "team_id": subscription.team_id,
        "subscription_id": subscription.subscription_id,
        "resource_id": subscription.resource_id,
        "type": subscription.type,
        "quantity": subscription.quantity,
        "starts_at": iso(subscription.starts_at),
        "ends_at": iso(subscription.ends_at),
        "refresh_period": subscription.refresh_period,
        "purchased_at": iso(subscription.purchased_at),
        "timezone": subscription.timezone,
        "unit_amount": subscription.unit_amount,
        "currency": subscription.currency,
        "purchaser_user_id": subscription.purchaser_user_id,
        "payment_method": None
        if payment is None
        else {"brand": payment.brand, "last4": payment.last4, "exp_month": payment.exp_month, "exp_year": payment.exp_year},
    }


def _instant(value: Any) -> datetime | None:
    return parse_instant(value) if value else None


def subscription_from_item(item: dict[str, Any]) -> Subscription:
    payment = item.get("payment_method")
    return Subscription(
        team_id=item["team_id"],
        subscription_id=item["subscription_id"],
        resource_id=item["resource_id"],
        type=item["type"],
        quantity=int(item["quantity"]) if item.get("quantity") is not None else None,
        starts_at=parse_instant(item["starts_at"]),
        ends_at=_instant(item.get("ends_at")),
        refresh_period=item.get("refresh_period"),
        purchased_at=_instant(item.get("purchased_at")),
        timezone=item.get("timezone"),
        unit_amount=int(item["unit_amount"]) if item.get("unit_amount") is not None else None,
        currency=item.get("currency"),
        purchaser_user_id=item.get("purchaser_user_id"),
        payment_method=None
        if not payment
        else PaymentMethod(payment["brand"], payment["last4"], int(payment["exp_month"]), int(payment["exp_year"])),
    )


def subscription_view(subscription: Subscription) -> dict[str, Any]:
    """The subscription as the API shows it (contract section 1 field names)."""
    item = subscription_to_item(subscription)
    for key in ("PK", "SK", "entity"):
        item.pop(key)
    return item


def balance_to_item(team_id: str, resource_id: str, kind: str, state: BalanceState) -> dict[str, Any]:
    return {
        "PK": team_pk(team_id),
        "SK": balance_sk(resource_id),
        "entity": "balance",
        "team_id": team_id,
        "resource_id": resource_id,
        "kind": kind,
        "usage_total": state.usage_total,
        "pending_usage": state.pending_usage,
        "charged_units": state.charged_units,
        "consumed": state.consumed,
        "payg_units": state.payg_units,
        "shortfall_units": state.shortfall_units,
        "daily_units": state.daily_units,
        "version": state.version,
    }


def balance_from_item(item: dict[str, Any] | None) -> BalanceState:
    if not item:
        return BalanceState()
    return BalanceState(
        usage_total=dynamo.as_decimal(item.get("usage_total")),
        pending_usage=dynamo.as_decimal(item.get("pending_usage")),
        charged_units=dynamo.as_int(item.get("charged_units")),
        consumed={key: int(value) for key, value in (item.get("consumed") or {}).items()},
        payg_units=dynamo.as_int(item.get("payg_units")),
        shortfall_units=dynamo.as_int(item.get("shortfall_units")),
        daily_units={key: int(value) for key, value in (item.get("daily_units") or {}).items()},
        version=dynamo.as_int(item.get("version")),
    )


def member_from_item(item: dict[str, Any]) -> Member:
    return Member(
        team_id=item["team_id"],
        user_id=item["user_id"],
        email=item["email"],
        roles=frozenset(item.get("roles") or []),
        full_access=bool(item.get("full_access")),
    )


def app_from_item(item: dict[str, Any]) -> App:
    return App(team_id=item["team_id"], app_id=item["app_id"], name=item["name"], owner_user_id=item["owner_user_id"])


# ------------------------------------------------------------------ team partition


@dataclass
class ResourceLedger:
    """Everything stored for one team and resource: the balance, subscriptions, payg cycles."""

    resource_id: str
    state: BalanceState = field(default_factory=BalanceState)
    has_balance_item: bool = False
    subscriptions: list[Subscription] = field(default_factory=list)
    cycle_units: dict[CycleKey, int] = field(default_factory=dict)
    closed_cycles: set[CycleKey] = field(default_factory=set)


@dataclass
class TeamSnapshot:
    team: Team | None
    members: dict[str, Member] = field(default_factory=dict)
    apps: dict[str, App] = field(default_factory=dict)
    resources: dict[str, ResourceLedger] = field(default_factory=dict)

    def ledger(self, resource_id: str) -> ResourceLedger:
        return self.resources.setdefault(resource_id, ResourceLedger(resource_id))


def _absorb(snapshot: TeamSnapshot, item: dict[str, Any]) -> None:
    sk: str = item["SK"]
    if sk == "META":
        snapshot.team = Team(team_id=item["team_id"], name=item["name"])
    elif sk.startswith("MEMBER#"):
        member = member_from_item(item)
        snapshot.members[member.user_id] = member
    elif sk.startswith("APP#"):
        app = app_from_item(item)
        snapshot.apps[app.app_id] = app
    elif sk.startswith("RES#"):
        entity = item.get("entity")
        ledger = snapshot.ledger(item["resource_id"])
        if entity == "balance":
            ledger.state = balance_from_item(item)
            ledger.has_balance_item = True
        elif entity == "subscription":
            ledger.subscriptions.append(subscription_from_item(item))
        elif entity == "cycle":
            key = CycleKey(item["subscription_id"], int(item["cycle_index"]))
            ledger.cycle_units[key] = int(item.get("charged_units", 0))
            if item.get("status") == "closed" or item.get("status") == "closing":
                ledger.closed_cycles.add(key)


def load_team(team_id: str, *, everything: bool = False, resource_id: str | None = None) -> TeamSnapshot:
    """One Query of the team's partition: its resources (default), one resource, or all of it."""
    snapshot = TeamSnapshot(team=None)
    if everything:
        condition, expression_values = "PK = :pk", {":pk": team_pk(team_id)}
    else:
        prefix = resource_prefix(resource_id) if resource_id else "RES#"
        condition = "PK = :pk AND begins_with(SK, :prefix)"
        expression_values = {":pk": team_pk(team_id), ":prefix": prefix}
    for item in dynamo.query_all(
        TableName=table(),
        KeyConditionExpression=condition,
        ExpressionAttributeValues=dynamo.values(expression_values),
        ConsistentRead=True,
    ):
        _absorb(snapshot, item)
    return snapshot


def get_item(pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None:
    response = dynamo.client().get_item(
        TableName=table(), Key=dynamo.to_item({"PK": pk, "SK": sk}), ConsistentRead=consistent
    )
    return dynamo.from_item(response["Item"]) if "Item" in response else None


def get_team(team_id: str) -> Team | None:
    item = get_item(team_pk(team_id), "META")
    return Team(team_id=item["team_id"], name=item["name"]) if item else None


def get_member(team_id: str, user_id: str) -> Member | None:
    item = get_item(team_pk(team_id), f"MEMBER#{user_id}")
    return member_from_item(item) if item else None


def get_subscription(team_id: str, resource_id: str, subscription_id: str) -> Subscription | None:
    item = get_item(team_pk(team_id), subscription_sk(resource_id, subscription_id))
    return subscription_from_item(item) if item else None


def put_item(item: dict[str, Any], *, condition: str | None = None, expression_values: dict[str, Any] | None = None) -> None:
    kwargs: dict[str, Any] = {"TableName": table(), "Item": dynamo.to_item(item)}
    if condition:
        kwargs["ConditionExpression"] = condition
    if expression_values:
        kwargs["ExpressionAttributeValues"] = dynamo.values(expression_values)
    dynamo.client().put_item(**kwargs)


def put_item_once(item: dict[str, Any]) -> bool:
    """Create the item unless its key exists; False when it already did."""
    try:
        put_item(item, condition="attribute_not_exists(PK)")
        return True
    except ClientError as error:
        if dynamo.is_condition_failure(error):
            return False
        raise


# ------------------------------------------------------------------ catalogue

_catalogue_cache: dict[str, Any] = {"loaded_at": 0.0, "resources": {}}


def catalogue(*, fresh: bool = False) -> dict[str, Resource]:
    """The whole catalogue (one Query), cached per container for CATALOGUE_TTL_SECONDS."""
    if fresh or time.monotonic() - _catalogue_cache["loaded_at"] > CATALOGUE_TTL_SECONDS:
        resources = {
            item["resource_id"]: resource_from_item(item)
            for item in dynamo.query_all(
                TableName=table(),
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues=dynamo.values({":pk": CATALOGUE_PK}),
            )
        }
        _catalogue_cache.update(loaded_at=time.monotonic(), resources=resources)
    return _catalogue_cache["resources"]


def resource(resource_id: str) -> Resource | None:
    """A catalogue resource; a miss re-reads the catalogue once (it may be new)."""
    found = catalogue().get(resource_id)
    if found is None:
        found = catalogue(fresh=True).get(resource_id)
    return found


def forget_catalogue() -> None:
    _catalogue_cache.update(loaded_at=0.0, resources={})


def existing_teams(team_ids: set[str]) -> set[str]:
    """Which of these teams exist: one BatchGetItem per 100 ids."""
    found: set[str] = set()
    ids = sorted(team_ids)
    for start in range(0, len(ids), 100):
        keys = [dynamo.to_item({"PK": team_pk(team_id), "SK": "META"}) for team_id in ids[start:start + 100]]
        request = {table(): {"Keys": keys, "ProjectionExpression": "team_id"}}
        while request:
            response = dynamo.client().batch_get_item(RequestItems=request)
            found.update(dynamo.from_item(item)["team_id"] for item in response["Responses"].get(table(), []))
            request = response.get("UnprocessedKeys") or {}
    return found
