"""Balance cards, the API banner and usage reports."""
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from usage_ledger import clock
from usage_ledger.bootstrap import container
from usage_ledger.domain.access import Action
from usage_ledger.http.api import json_response
from usage_ledger.http.identity import TeamRouter
from usage_ledger.http.schemas import IDENTIFIER

routes = TeamRouter()  # each route names its action; the guard checks it before validation
router = routes.router
PathId = Annotated[str, Path(pattern=IDENTIFIER)]


@routes.get("/v1/teams/<team_id>/balances", Action.READ_BALANCES)
def get_balances(team_id: PathId):
    member = router.context["member"]
    return json_response(container().balances.team_balances(team_id, member, clock.now()))


@routes.get("/v1/teams/<team_id>/balances/<resource_id>", Action.READ_BALANCES)
def get_balance(team_id: PathId, resource_id: PathId):
    member = router.context["member"]
    return json_response(container().balances.one_balance(team_id, resource_id, member, clock.now()))


@routes.get("/v1/teams/<team_id>/notices", Action.READ_NOTICES)
def get_notices(team_id: PathId):
    return json_response(container().balances.notices(team_id, clock.now()))


@routes.get("/v1/teams/<team_id>/usage", Action.READ_BALANCES)
def get_usage(
    team_id: PathId,
    from_: Annotated[str | None, Query(alias="from", description="UTC date YYYY-MM-DD, inclusive")] = None,
    to: Annotated[str | None, Query(description="UTC date YYYY-MM-DD, inclusive")] = None,
    granularity: Annotated[str | None, Query(description="day or month")] = None,
    group_by: Annotated[str | None, Query(description="resource, user or app")] = None,
    resource_id: Annotated[str | None, Query()] = None,
):
    member = router.context["member"]
    report = container().usage.report
    return json_response(report(team_id, member, clock.now(), from_=from_, to=to, granularity=granularity,
                                group_by=group_by, resource_id=resource_id))
