"""Pay-as-You-Go billing: due cycles -> one invoice, one charge, one email each; and reading invoices.

Every step is a conditional write, so a run that crashes, or two runs at once, never double-bill:
1. claim: the cycle goes "open" -> "closing" under this run's lease (or a "closing" one whose
   lease ran out is re-taken). Ingest only adds to "open" cycles, so its charged units are final.
2. invoice: one per (team, subscription, cycle) under a deterministic id, put if absent.
3. charge: through the payment gateway with an idempotency key derived from the invoice id; the
   invoice goes "pending" -> "paid" | "payment_failed", taking the email claim in the same write.
4. email: sent once under the claim, released if SES fails so the next run retries.
5. close: status "closed" and the cycle leaves the due-cycle index.
A cycle whose run fails stays due and is picked up again once its lease is released.
"""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from usage_ledger import clock
from usage_ledger.domain.billing import PAYMENT_FAILED, UNPAID, CycleRef, Invoice, charge_key, issue_invoice
from usage_ledger.domain.errors import LedgerError, NotFound
from usage_ledger.domain.pages import DEFAULT_PAGE
from usage_ledger.service.documents import INVOICE_EMAIL, RECEIPT_EMAIL, SUBJECTS, Issuer, email_kind, invoice_document
from usage_ledger.service.ports import Attachment, BillingStore, LedgerStore, Mailer, PaymentGateway, Renderer

logger = Logger(child=True)



@dataclass
class CloseSummary:
    closed: int = 0
    invoiced: int = 0
    payments_failed: int = 0
    failed: int = 0
    skipped: int = 0  # due, but another run holds it


class Billing:
    def __init__(self, ledger: LedgerStore, store: BillingStore, payments: PaymentGateway, mailer: Mailer,
                 renderer: Renderer, grace: timedelta, portal_url: str, *, issuer: Issuer | None = None) -> None:
        self.ledger, self.store, self.payments = ledger, store, payments
        self.mailer, self.renderer, self.grace, self.portal_url = mailer, renderer, grace, portal_url
        self.issuer = issuer or Issuer()

    # -------------------------------------------------------------- the close job

    def close_due_cycles(self, now: datetime, *, grace: timedelta | None = None) -> dict[str, int]:
        """Close every cycle due at `now`; one cycle's failure leaves it due and moves on."""
        grace = self.grace if grace is None else grace
        token = uuid.uuid4().hex  # this run's lease token
        summary = CloseSummary()
        for ref in self.store.due_cycles(now - grace):
            try:
                self._close_one(ref, now, token, summary)
            except Exception:
                logger.exception("closing a billing cycle failed; it stays due", extra={"cycle": asdict(ref)})
                summary.failed += 1
                self._release(ref, token)
        return asdict(summary)

    def _release(self, ref: CycleRef, token: str) -> None:
        try:
            self.store.release_cycle(ref, token)
        except Exception:  # the lease then simply runs out
            logger.exception("could not release a cycle lease", extra={"cycle": asdict(ref)})

    def _close_one(self, ref: CycleRef, now: datetime, token: str, summary: CloseSummary) -> None:
        # leases run on the wall clock, never on the scheduled event's time: a run that starts
        # late (an async retry) must not take a lease already run out
        cycle = self.store.claim_cycle(ref, token, clock.lease_until(), clock.now())
        if cycle is None:
            summary.skipped += 1
            return
        invoice_id = None
        if cycle.charged_units > 0:
            subscription = self.ledger.get_subscription(cycle.team_id, cycle.resource_id, cycle.subscription_id)
            if subscription is None or not subscription.is_payg or subscription.payment_method is None:
                raise LedgerError(f"cycle {ref} has no payg subscription to bill")
            team, purchaser, balance = self.ledger.team_member_balance(cycle.team_id, subscription.purchaser_user_id,
                                                                       cycle.resource_id)
            resource = self.ledger.resource(cycle.resource_id)
            invoice, created = self.store.issue(issue_invoice(cycle, subscription, team, purchaser, resource, now,
                                                              balance.pending_usage))  # rolls into the next cycle
            summary.invoiced += created
            invoice, email_taken = self._collect(invoice, now, token)
            summary.payments_failed += invoice.status == PAYMENT_FAILED and email_taken
            self._email(invoice, now, token, email_taken)
            invoice_id = invoice.invoice_id
        if not self.store.close_cycle(ref, token, invoice_id):
            # our lease ran out and another run took over; it finishes idempotently
            logger.warning("lost a cycle lease before closing it", extra={"cycle": asdict(ref)})
            return
        summary.closed += 1

    def _collect(self, invoice: Invoice, now: datetime, token: str) -> tuple[Invoice, bool]:
        """Charge a pending invoice once; the invoice as settled, and whether this run settled it
        (and so holds its email claim)."""
        if invoice.status != UNPAID:
            return invoice, False
        charge = self.payments.charge(
            idempotency_key=charge_key(invoice.invoice_id), amount=invoice.total, currency=invoice.currency,
            payment_method=invoice.payment_method, description=f"Invoice {invoice.invoice_id}", now=now,
        )
        settled = self.store.settle(invoice, charge, now, token, clock.lease_until())
        if settled is None:  # settled by another run, with the same (idempotent) charge
            stored = self.store.get_invoice(invoice.team_id, invoice.invoice_id)
            assert stored is not None
            return stored, False
        return settled, True

    def _email(self, invoice: Invoice, now: datetime, token: str, taken: bool) -> None:
        """Send the invoice (or the payment-failed notice) once; released on failure so a retry sends it."""
        if invoice.emailed:
            return
        if not taken and not self.store.claim_email(invoice, token, clock.lease_until(), clock.now()):
            return  # sent, or being sent by another run
        if not invoice.purchaser_email:
            logger.warning("invoice has no purchaser to email", extra={"invoice_id": invoice.invoice_id})
            self.store.email_has_no_recipient(invoice, token)
            return
        try:
            subject, html, text, attachments = self.render_email(invoice)
            message_id = self.mailer.send([invoice.purchaser_email], subject, html, text, attachments)
        except Exception:
            self.store.release_email(invoice, token)
            raise
        self.store.email_sent(invoice, token, message_id, now)

    # -------------------------------------------------------------- read side

    def invoice(self, team_id: str, invoice_id: str) -> Invoice:
        invoice = self.store.get_invoice(team_id, invoice_id)
        if invoice is None:
            raise NotFound(f"Invoice {invoice_id!r} not found.")
        return invoice

    def list_invoices(self, team_id: str, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> dict[str, Any]:
        invoices, next_cursor = self.store.list_invoices(team_id, limit, cursor)
        return {"items": [invoice.view() for invoice in invoices], "next_cursor": next_cursor}

    # -------------------------------------------------------------- rendering (kept last: one block)

    def _context(self, invoice: Invoice) -> dict[str, Any]:
        """The invoice as every rendering shows it (HTML, text, PDF): display strings, no raw values."""
        return invoice_document(invoice, self.issuer, self.portal_url)

    def render_invoice_html(self, invoice: Invoice) -> str:
        return self.renderer.render("invoice.html", **self._context(invoice))

    def render_invoice_pdf(self, invoice: Invoice) -> bytes:
        return self.renderer.pdf(self._context(invoice))

    def render_email(self, invoice: Invoice) -> tuple[str, str, str, tuple[Attachment, ...]]:
        """(subject, html, text, attachments) of the email the invoice's state calls for: the
        invoice (with its PDF), a failed payment with its retry, the last failure, or a receipt."""
        context = {**self._context(invoice), "email": True}
        kind = email_kind(invoice)
        subject = SUBJECTS[kind].format(**context["subject"])
        attachments: tuple[Attachment, ...] = ()
        if kind in (INVOICE_EMAIL, RECEIPT_EMAIL):
            attachments = (Attachment(context["pdf_filename"], "application/pdf", self.renderer.pdf(context)),)
        return (subject, self.renderer.render(f"{kind}.html", **context),
                self.renderer.render(f"{kind}.txt", **context), attachments)
