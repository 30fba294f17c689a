"""Who may do what in a team (contract section 2): the one place authorization is decided."""
from __future__ import annotations

from enum import Enum

from usage_ledger.domain.errors import Forbidden
from usage_ledger.domain.model import Member, Resource


class Action(Enum):
    READ_BALANCES = "read balances and usage"
    READ_NOTICES = "read notices"
    READ_INVOICES = "read invoices"
    READ_ALERTS = "read alerts"
    MANAGE_ALERTS = "create or delete alerts"
    LIST_MEMBERS = "list members"
    PAY = "set this subscription's payment method or pay its invoices"
    CANCEL = "cancel this Pay as You Go subscription"
    READ_OWN_TEAMS = "read your own teams"  # GET /v1/me: no team in the path, any signed-in user


# actions decided per subscription: the guard looks up the subscription's purchaser for them
PER_SUBSCRIPTION = frozenset({Action.PAY, Action.CANCEL})


def may(member: Member, action: Action, *, purchaser_user_id: str | None = None) -> bool:
    """`purchaser_user_id`: for PER_SUBSCRIPTION actions, the purchaser of the subscription the
    request names (None when there is none: then only a primary_admin may go on, to a 404)."""
    if action is Action.READ_OWN_TEAMS:
        return True
    if action in PER_SUBSCRIPTION:
        return member.is_primary_admin or (purchaser_user_id is not None and purchaser_user_id == member.user_id)
    if action is Action.MANAGE_ALERTS:
        return member.manages_alerts
    if action in (Action.READ_BALANCES, Action.READ_NOTICES):
        return member.is_admin or member.is_hub_admin
    return member.is_admin  # read invoices and alerts, list members


def require(member: Member, action: Action, *, purchaser_user_id: str | None = None) -> Member:
    if not may(member, action, purchaser_user_id=purchaser_user_id):
        raise Forbidden(f"Your roles do not allow you to {action.value} for this team.")
    return member


def visible_resource(member: Member, resource: Resource) -> bool:
    """Admins see every resource; a hub_admin only `api` resources."""
    return member.is_admin or (member.is_hub_admin and resource.kind == "api")


def require_visible(member: Member, resource: Resource) -> None:
    if not visible_resource(member, resource):
        raise Forbidden(f"Your roles do not allow you to read resource {resource.resource_id!r}.")
