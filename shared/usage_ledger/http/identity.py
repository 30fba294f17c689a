"""Who is calling and what they may do: the one place authorization is decided (contract section 2)."""
from __future__ import annotations

from enum import Enum
from typing import Any

from usage_ledger.adapters import ledger_store
from usage_ledger.domain.model import Member, Resource
from usage_ledger.errors import Forbidden, NotFound, Unauthorized


class Action(Enum):
    READ_BALANCES = "read balances and usage"
    READ_NOTICES = "read notices"
    READ_INVOICES = "read invoices"
    READ_ALERTS = "read alerts"
    MANAGE_ALERTS = "create or delete alerts"


def _authorizer(event: dict[str, Any]) -> dict[str, Any]:
    return (event.get("requestContext") or {}).get("authorizer") or {}


def require_operator(event: dict[str, Any]) -> None:
    """Operator and producer routes take IAM callers only."""
    authorizer = _authorizer(event)
    if authorizer.get("iam"):
        return
    if authorizer.get("jwt"):
        raise Forbidden("This route takes IAM (SigV4) callers, not team users.")
    raise Unauthorized("This route needs IAM authorization.")


def caller_user_id(event: dict[str, Any]) -> str:
    claims = (_authorizer(event).get("jwt") or {}).get("claims") or {}
    sub = claims.get("sub")
    if not sub:
        raise Unauthorized("A JWT with a `sub` claim is required.")
    return str(sub)


def team_member(event: dict[str, Any], team_id: str) -> Member:
    """The caller as a member of the team; 404 for anyone else (existence is not leaked)."""
    member = ledger_store.get_member(team_id, caller_user_id(event))
    if member is None:
        raise NotFound(f"Team {team_id!r} not found.")
    return member


def may(member: Member, action: Action) -> bool:
    if action is Action.MANAGE_ALERTS:
        return member.manages_alerts
    if action in (Action.READ_BALANCES, Action.READ_NOTICES):
        return member.is_admin or member.is_hub_admin
    return member.is_admin


def require(member: Member, action: Action) -> Member:
    if not may(member, action):
        raise Forbidden(f"Your roles do not allow you to {action.value} for this team.")
    return member


def member_guard(event: dict[str, Any]) -> dict[str, Any]:
    """The team routes' guard: resolves the caller's membership before anything else runs."""
    team_id = (event.get("pathParameters") or {}).get("team_id", "")
    return {"member": team_member(event, team_id)}


def visible_resource(member: Member, resource: Resource) -> bool:
    """Admins see every resource; a hub_admin only `api` resources."""
    return member.is_admin or (member.is_hub_admin and resource.kind == "api")


def require_visible(member: Member, resource: Resource) -> None:
    if not visible_resource(member, resource):
        raise Forbidden(f"Your roles do not allow you to read resource {resource.resource_id!r}.")
