"""Run-out alerts: create, list, read and delete."""
from typing import Annotated, Optional

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from usage_ledger import clock
from usage_ledger.http.api import json_response
from usage_ledger.http.identity import Action, require
from usage_ledger.http.schemas import IDENTIFIER, AlertBody
from usage_ledger.service import alerting

router = Router()
PathId = Annotated[str, Path(pattern=IDENTIFIER)]
Limit = Annotated[int, Query(ge=1, le=alerting.MAX_LIMIT)]
Cursor = Annotated[Optional[str], Query(max_length=512)]


@router.post("/v1/teams/<team_id>/alerts")
def create_alert(team_id: PathId, body: Annotated[AlertBody, Body()]):
    member = require(router.context["member"], Action.MANAGE_ALERTS)
    return json_response(alerting.create_alert(team_id, member, body, clock.now()), status=201)


@router.get("/v1/teams/<team_id>/alerts")
def list_alerts(team_id: PathId, limit: Limit = alerting.DEFAULT_LIMIT, cursor: Cursor = None):
    require(router.context["member"], Action.READ_ALERTS)
    return json_response(alerting.list_alerts(team_id, limit, cursor))


@router.get("/v1/teams/<team_id>/alerts/<alert_id>")
def get_alert(team_id: PathId, alert_id: PathId):
    require(router.context["member"], Action.READ_ALERTS)
    return json_response(alerting.get_alert(team_id, alert_id))


@router.delete("/v1/teams/<team_id>/alerts/<alert_id>")
def delete_alert(team_id: PathId, alert_id: PathId):
    require(router.context["member"], Action.MANAGE_ALERTS)
    alerting.delete_alert(team_id, alert_id)
    return Response(status_code=204)
