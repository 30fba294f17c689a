"""Balance cards, the API banner and usage reports."""
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from usage_ledger import clock
from usage_ledger.http.api import json_response
from usage_ledger.http.identity import Action, require
from usage_ledger.http.schemas import IDENTIFIER
from usage_ledger.service import balances, usage

router = Router()
PathId = Annotated[str, Path(pattern=IDENTIFIER)]


@router.get("/v1/teams/<team_id>/balances")
def get_balances(team_id: PathId):
    member = require(router.context["member"], Action.READ_BALANCES)
    return json_response(balances.team_balances(team_id, member, clock.now()))


@router.get("/v1/teams/<team_id>/balances/<resource_id>")
def get_balance(team_id: PathId, resource_id: PathId):
    member = require(router.context["member"], Action.READ_BALANCES)
    return json_response(balances.one_balance(team_id, resource_id, member, clock.now()))


@router.get("/v1/teams/<team_id>/notices")
def get_notices(team_id: PathId):
    require(router.context["member"], Action.READ_NOTICES)
    return json_response(balances.notices(team_id, clock.now()))


@router.get("/v1/teams/<team_id>/usage")
def get_usage(
    team_id: PathId,
    from_: Annotated[str | None, Query(alias="from", description="UTC date YYYY-MM-DD, inclusive")] = None,
    to: Annotated[str | None, Query(description="UTC date YYYY-MM-DD, inclusive")] = None,
    granularity: Annotated[str | None, Query(description="day or month")] = None,
    group_by: Annotated[str | None, Query(description="resource, user or app")] = None,
    resource_id: Annotated[str | None, Query()] = None,
):
    member = require(router.context["member"], Action.READ_BALANCES)
    return json_response(usage.report(team_id, member, clock.now(), from_=from_, to=to, granularity=granularity,
                                      group_by=group_by, resource_id=resource_id))
