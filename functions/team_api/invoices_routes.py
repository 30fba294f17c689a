"""Invoices: the team's list (newest first, cursor pages) and one invoice as JSON or rendered HTML."""
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from usage_ledger.bootstrap import container
from usage_ledger.domain.access import Action
from usage_ledger.http.api import json_response, prefers
from usage_ledger.http.identity import TeamRouter
from usage_ledger.http.responses import Invoice, Invoices, ok
from usage_ledger.http.schemas import IDENTIFIER
from usage_ledger.service.billing import DEFAULT_LIMIT, MAX_LIMIT

routes = TeamRouter()  # each route names its action; the guard checks it before validation
router = routes.router
PathId = Annotated[str, Path(pattern=IDENTIFIER)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=1024)]


@routes.get("/v1/teams/<team_id>/invoices", Action.READ_INVOICES, responses=ok(Invoices))
def list_invoices(team_id: PathId, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None):
    return json_response(container().billing.list_invoices(team_id, limit, cursor))


@routes.get("/v1/teams/<team_id>/invoices/<invoice_id>", Action.READ_INVOICES, responses=ok(Invoice))
def get_invoice(team_id: PathId, invoice_id: str):  # any unknown id, however odd, is a 404
    billing = container().billing
    invoice = billing.invoice(team_id, invoice_id)
    if prefers(router.current_event.headers.get("accept") or "", "text/html"):
        return Response(status_code=200, content_type="text/html; charset=utf-8",
                        body=billing.render_invoice_html(invoice))
    return json_response(invoice.view())
