"""The team's members, one page at a time (admins pick alert recipients from it)."""

from usage_ledger.bootstrap import container
from usage_ledger.domain.access import Action
from usage_ledger.domain.pages import DEFAULT_PAGE
from usage_ledger.http.api import json_response
from usage_ledger.http.identity import CALLER, TeamRouter
from usage_ledger.http.params import PageCursor, PageLimit, PathId
from usage_ledger.http.responses import Me, Members, ok

routes = TeamRouter()  # each route names its action; the guard checks it before validation
router = routes.router


@routes.get("/v1/teams/<team_id>/members", Action.LIST_MEMBERS, responses=ok(Members))
def list_members(team_id: PathId, limit: PageLimit = DEFAULT_PAGE, cursor: PageCursor = None):
    return json_response(container().membership.list_members(team_id, limit, cursor))


@routes.get("/v1/me", Action.READ_OWN_TEAMS, responses=ok(Me))
def me():
    """The caller's teams and roles: any signed-in user, no team in the path."""
    return json_response(container().membership.me(router.context[CALLER]))
