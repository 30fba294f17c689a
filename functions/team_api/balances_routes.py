"""Balance cards, the API banner and usage reports (JSON, or CSV with `Accept: text/csv`)."""
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from usage_ledger import clock
from usage_ledger.bootstrap import container
from usage_ledger.domain.access import Action
from usage_ledger.domain.pages import DEFAULT_PAGE, MAX_PAGE
from usage_ledger.http.api import csv_body, json_response, prefers
from usage_ledger.http.identity import TeamRouter
from usage_ledger.http.params import PathId
from usage_ledger.http.responses import Balance, Balances, Notices, UsageReport, ok
from usage_ledger.service.usage import CSV_HEADER, GRANULARITIES, GROUPS, csv_rows

routes = TeamRouter()  # each route names its action; the guard checks it before validation
router = routes.router
NEXT_CURSOR = "X-Next-Cursor"  # the next page's cursor, for CSV (and JSON) answers; absent on the last page


@routes.get("/v1/teams/<team_id>/balances", Action.READ_BALANCES, responses=ok(Balances))
def get_balances(team_id: PathId):
    member = router.context["member"]
    return json_response(container().balances.team_balances(team_id, member, clock.now()))


@routes.get("/v1/teams/<team_id>/balances/<resource_id>", Action.READ_BALANCES, responses=ok(Balance))
def get_balance(team_id: PathId, resource_id: PathId):
    member = router.context["member"]
    return json_response(container().balances.one_balance(team_id, resource_id, member, clock.now()))


@routes.get("/v1/teams/<team_id>/notices", Action.READ_NOTICES, responses=ok(Notices))
def get_notices(team_id: PathId):
    member = router.context["member"]
    return json_response(container().balances.notices(team_id, member, clock.now()))


@routes.get("/v1/teams/<team_id>/usage", Action.READ_BALANCES, responses=ok(UsageReport))
def get_usage(
    team_id: PathId,
    # checked by the report (422 in its words); json_schema_extra tells the document what it takes
    from_: Annotated[str | None, Query(alias="from", description="UTC date YYYY-MM-DD, inclusive",
                                       json_schema_extra={"format": "date"})] = None,
    to: Annotated[str | None, Query(description="UTC date YYYY-MM-DD, inclusive",
                                    json_schema_extra={"format": "date"})] = None,
    granularity: Annotated[str | None, Query(description="day (default) or month",
                                             json_schema_extra={"enum": list(GRANULARITIES)})] = None,
    group_by: Annotated[str | None, Query(description="resource (default), user or app",
                                          json_schema_extra={"enum": list(GROUPS)})] = None,
    resource_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=(
        f"series per page (default {DEFAULT_PAGE}, at most {MAX_PAGE}); a page of long series holds fewer "
        "(it stops at about 768 KB): follow next_cursor until it is null"))] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=4096, description=(
        "next_cursor of the previous page (also in its X-Next-Cursor header)"))] = None,
):
    member = router.context["member"]
    report = container().usage.report(team_id, member, clock.now(), from_=from_, to=to, granularity=granularity,
                                      group_by=group_by, resource_id=resource_id, limit=limit, cursor=cursor)
    headers = {"Vary": "Accept"}
    if report["next_cursor"] is not None:
        headers[NEXT_CURSOR] = report["next_cursor"]
    if prefers(router.current_event.headers.get("accept") or "", "text/csv"):
        return Response(status_code=200, content_type="text/csv; charset=utf-8",
                        body=csv_body(CSV_HEADER, csv_rows(report)), headers=headers)
    return json_response(report, headers=headers)
