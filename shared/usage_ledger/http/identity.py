"""Who is calling (IAM or a JWT's `sub`), and the team routes' guard that applies the access rules
of `domain.access` before anything else runs (contract section 2)."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from usage_ledger import bootstrap
from usage_ledger.domain.access import PER_SUBSCRIPTION, Action, require
from usage_ledger.domain.errors import Forbidden, NotFound, Unauthorized
from usage_ledger.domain.model import Member

CALLER = "caller_user_id"  # the guard's context key for routes without a team (GET /v1/me)


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
    return bootstrap.container().membership.member(team_id, caller_user_id(event))


class TeamRouter:
    """A Powertools Router whose routes each name the action they need, so the guard can refuse
    a member without the role before Powertools validates the request: a 403 never depends on
    the body, the query or the path's other parameters."""

    def __init__(self) -> None:
        self.router = Router()
        self._needs: list[tuple[str, re.Pattern[str], Action]] = []

    def route(self, method: str, rule: str, action: Action, **options: Any) -> Callable:
        # the rule's <param> segments match one path segment each, as Powertools matches them
        pattern = re.compile(re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", re.escape(rule)))
        self._needs.append((method.upper(), pattern, action))
        return self.router.route(rule, method.upper(), **options)  # responses=, for the OpenAPI document

    def get(self, rule: str, action: Action, **options: Any) -> Callable:
        return self.route("GET", rule, action, **options)

    def post(self, rule: str, action: Action, **options: Any) -> Callable:
        return self.route("POST", rule, action, **options)

    def put(self, rule: str, action: Action, **options: Any) -> Callable:
        return self.route("PUT", rule, action, **options)

    def delete(self, rule: str, action: Action, **options: Any) -> Callable:
        return self.route("DELETE", rule, action, **options)

    def match(self, method: str, path: str) -> tuple[Action, dict[str, str]] | None:
        """The action a request needs and its path parameters, read from the path exactly as
        Powertools will route it; None for a path no route of this router takes."""
        for route_method, pattern, action in self._needs:
            found = pattern.fullmatch(path) if route_method == method.upper() else None
            if found:
                return action, found.groupdict()
        return None


def team_guard(*routers: TeamRouter) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The team routes' guard, run before anything else: 401 without a caller, 404 unless the
    caller is a member of the team, 403 unless the route's action is one the member's roles allow.
    A route no router declares is refused (404), so a route cannot skip its role check. For an
    action decided per subscription (paying), a member who is not a primary_admin is let through
    only as the purchaser of the subscription the path names (or of the invoice's subscription):
    anyone else gets 403 whether or not that subscription exists."""

    def guard(event: dict[str, Any]) -> dict[str, Any]:
        request = APIGatewayProxyEventV2(event)  # method and path as Powertools will route them
        route = next((found for router in routers if (found := router.match(request.http_method, request.path))),
                     None)
        # the team the handler will serve: from the same match, not API Gateway's decoded copy
        if route is not None and route[0] is Action.READ_OWN_TEAMS:
            return {CALLER: caller_user_id(event)}  # 401 without a caller; nothing else to check
        team_id = route[1].get("team_id", "") if route else (event.get("pathParameters") or {}).get("team_id", "")
        member = team_member(event, team_id)
        if route is None:
            raise NotFound("No such route.")
        action, params = route
        purchaser = None
        if action in PER_SUBSCRIPTION and not member.is_primary_admin:
            purchaser = bootstrap.container().payment_methods.purchaser(team_id, params)
        return {"member": require(member, action, purchaser_user_id=purchaser)}

    return guard
