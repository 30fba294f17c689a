"""Invoices: the team's list (newest first, cursor pages), one invoice as JSON, rendered HTML or PDF, and
its credit notes as JSON or PDF."""

from aws_lambda_powertools.event_handler import Response
from usage_ledger.bootstrap import container
from usage_ledger.domain.access import Action
from usage_ledger.domain.pages import DEFAULT_PAGE
from usage_ledger.http.api import accept_quality, json_response, prefers
from usage_ledger.http.identity import TeamRouter
from usage_ledger.http.params import PageCursor, PageLimit, PathId
from usage_ledger.http.responses import CreditNote, Invoice, Invoices, ok
from usage_ledger.service.documents import credit_note_filename, pdf_filename

routes = TeamRouter()  # each route names its action; the guard checks it before validation
router = routes.router


@routes.get("/v1/teams/<team_id>/invoices", Action.READ_INVOICES, responses=ok(Invoices))
def list_invoices(team_id: PathId, limit: PageLimit = DEFAULT_PAGE, cursor: PageCursor = None):
    return json_response(container().billing.list_invoices(team_id, limit, cursor))


@routes.get("/v1/teams/<team_id>/invoices/<invoice_id>", Action.READ_INVOICES, responses=ok(Invoice))
def get_invoice(team_id: PathId, invoice_id: str):  # any unknown id, however odd, is a 404
    billing = container().billing
    invoice = billing.invoice(team_id, invoice_id)
    accept = router.current_event.headers.get("accept") or ""
    vary = {"Vary": "Accept"}
    if prefers(accept, "application/pdf") and accept_quality(accept, "application/pdf") >= accept_quality(
            accept, "text/html"):
        filename = pdf_filename(invoice)  # [A-Za-z0-9._-] only: safe in the header as it is
        return Response(status_code=200, content_type="application/pdf", body=billing.render_invoice_pdf(invoice),
                        headers={**vary, "Content-Disposition": f'inline; filename="{filename}"'})
    if prefers(accept, "text/html"):
        return Response(status_code=200, content_type="text/html; charset=utf-8",
                        body=billing.render_invoice_html(invoice), headers=vary)
    return json_response(invoice.view(), headers=vary)


@routes.get("/v1/teams/<team_id>/invoices/<invoice_id>/credit-notes/<credit_note_id>", Action.READ_INVOICES,
            responses=ok(CreditNote))
def get_credit_note(team_id: PathId, invoice_id: str, credit_note_id: str):
    credit_notes = container().credit_notes
    note = credit_notes.credit_note(team_id, invoice_id, credit_note_id)
    accept = router.current_event.headers.get("accept") or ""
    vary = {"Vary": "Accept"}
    if prefers(accept, "application/pdf"):
        filename = credit_note_filename(note)  # [A-Za-z0-9._-] only: safe in the header as it is
        return Response(status_code=200, content_type="application/pdf", body=credit_notes.render_pdf(note),
                        headers={**vary, "Content-Disposition": f'inline; filename="{filename}"'})
    return json_response(note.view(), headers=vary)
