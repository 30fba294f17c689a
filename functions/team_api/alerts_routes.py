"""Run-out alerts: create, list, read and delete."""
from typing import Annotated, Optional

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from usage_ledger import clock
from usage_ledger.bootstrap import container
from usage_ledger.domain.access import Action
from usage_ledger.http.api import json_response
from usage_ledger.http.identity import TeamRouter
from usage_ledger.http.responses import Alert, Alerts, ok
from usage_ledger.http.schemas import IDENTIFIER, AlertBody
from usage_ledger.service.alerting import DEFAULT_LIMIT, MAX_LIMIT

routes = TeamRouter()  # each route names its action; the guard checks it before validation
router = routes.router
PathId = Annotated[str, Path(pattern=IDENTIFIER)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[Optional[str], Query(max_length=512)]


@routes.post("/v1/teams/<team_id>/alerts", Action.MANAGE_ALERTS, responses=ok(Alert, "Created", status=201))
def create_alert(team_id: PathId, body: Annotated[AlertBody, Body()]):
    member = router.context["member"]
    return json_response(container().alerting.create_alert(body.command(team_id, member), clock.now()), status=201)


@routes.get("/v1/teams/<team_id>/alerts", Action.READ_ALERTS, responses=ok(Alerts))
def list_alerts(team_id: PathId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None):
    return json_response(container().alerting.list_alerts(team_id, limit, cursor))


@routes.get("/v1/teams/<team_id>/alerts/<alert_id>", Action.READ_ALERTS, responses=ok(Alert))
def get_alert(team_id: PathId, alert_id: PathId):
    return json_response(container().alerting.get_alert(team_id, alert_id))


@routes.delete("/v1/teams/<team_id>/alerts/<alert_id>", Action.MANAGE_ALERTS)
def delete_alert(team_id: PathId, alert_id: PathId):
    container().alerting.delete_alert(team_id, alert_id)
    return Response(status_code=204)
