"""The team's members, one page at a time (admins pick alert recipients from it)."""
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from usage_ledger.bootstrap import container
from usage_ledger.domain.access import Action
from usage_ledger.http.api import json_response
from usage_ledger.http.identity import TeamRouter
from usage_ledger.http.responses import Members, ok
from usage_ledger.http.schemas import IDENTIFIER
from usage_ledger.service.membership import DEFAULT_LIMIT, MAX_LIMIT

routes = TeamRouter()  # each route names its action; the guard checks it before validation
router = routes.router
PathId = Annotated[str, Path(pattern=IDENTIFIER)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=512)]


@routes.get("/v1/teams/<team_id>/members", Action.LIST_MEMBERS, responses=ok(Members))
def list_members(team_id: PathId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None):
    return json_response(container().membership.list_members(team_id, limit, cursor))
