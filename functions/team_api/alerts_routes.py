"""Run-out alerts: create, list, read and delete."""
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from usage_ledger import clock
from usage_ledger.bootstrap import container
from usage_ledger.domain.access import Action
from usage_ledger.domain.pages import DEFAULT_PAGE
from usage_ledger.http.api import json_response
from usage_ledger.http.identity import TeamRouter
from usage_ledger.http.params import PageCursor, PageLimit, PathId
from usage_ledger.http.responses import Alert, Alerts, ok
from usage_ledger.http.schemas import AlertBody

routes = TeamRouter()  # each route names its action; the guard checks it before validation
router = routes.router


@routes.post("/v1/teams/<team_id>/alerts", Action.MANAGE_ALERTS, responses=ok(Alert, "Created", status=201))
def create_alert(team_id: PathId, body: Annotated[AlertBody, Body()]):
    member = router.context["member"]
    return json_response(container().alerting.create_alert(body.command(team_id, member), clock.now()), status=201)


@routes.get("/v1/teams/<team_id>/alerts", Action.READ_ALERTS, responses=ok(Alerts))
def list_alerts(team_id: PathId, limit: PageLimit = DEFAULT_PAGE, cursor: PageCursor = None):
    return json_response(container().alerting.list_alerts(team_id, limit, cursor))


@routes.get("/v1/teams/<team_id>/alerts/<alert_id>", Action.READ_ALERTS, responses=ok(Alert))
def get_alert(team_id: PathId, alert_id: PathId):
    return json_response(container().alerting.get_alert(team_id, alert_id))


@routes.delete("/v1/teams/<team_id>/alerts/<alert_id>", Action.MANAGE_ALERTS)
def delete_alert(team_id: PathId, alert_id: PathId):
    container().alerting.delete_alert(team_id, alert_id)
    return Response(status_code=204)
