"""Balance cards, the API banner and usage reports."""
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from usage_ledger import clock
from usage_ledger.http.api import json_response
from usage_ledger.http.identity import Action, require
from usage_ledger.http.schemas import IDENTIFIER
from usage_ledger.service import balances

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
