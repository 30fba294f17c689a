"""Correcting an invoice (contract section 7): issue a credit note, refund it on a paid invoice,
email it to the purchaser, read and render it.

1. credit: the note is put, numbered from the team's credit-note counter, in one transaction with
   the invoice's `credited` (conditional on the invoice as read: racing notes never credit past the
   total, and an attempt in flight is never undercut) and, at zero due, `void` with its
   subscription's past_due lifted. A race re-reads the invoice and tries again.
2. refund (paid invoices): claimed on the note before the processor is called; a claim taken over
   asks the processor for this note's refund (by its metadata) first; recorded under the claim.
   An outage leaves the refund owed: the same request again finishes it.
3. email: once per note, under its claim; released if SES fails (the same request again sends it).
"""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from usage_ledger import clock
from usage_ledger.domain.commands import IssueCreditNote
from usage_ledger.domain.credit_note import CreditNote, credit_note_for, credited, refund_key
from usage_ledger.domain.errors import Conflict, Contended, NotFound
from usage_ledger.domain.ids import new_credit_note_id
from usage_ledger.service.documents import (
    CREDIT_NOTE_EMAIL,
    CREDIT_NOTE_SUBJECT,
    Issuer,
    credit_note_document,
)
from usage_ledger.service.ports import (
    Added,
    Attachment,
    BillingStore,
    CreditNoteStore,
    LedgerStore,
    Mailer,
    PaymentGateway,
    Renderer,
)

logger = Logger(child=True)
MAX_RACES = 25  # re-reads of the invoice before the request gives up (409: try again)


class CreditNotes:
    def __init__(self, ledger: LedgerStore, invoices: BillingStore, store: CreditNoteStore,
                 payments: PaymentGateway, mailer: Mailer, renderer: Renderer, portal_url: str,
                 issuer: Issuer) -> None:
        self.ledger, self.invoices, self.store, self.payments = ledger, invoices, store, payments
        self.mailer, self.renderer, self.portal_url, self.issuer = mailer, renderer, portal_url, issuer

    # -------------------------------------------------------------- issuing

    def issue(self, command: IssueCreditNote, now: datetime) -> tuple[CreditNote, bool]:
        """(the credit note, created). A replay of the same credit_note_id with the same fields
        finishes what the first left undone (its refund, its email); different fields: Conflict."""
        if self.ledger.get_team(command.team_id) is None:
            raise NotFound(f"Team {command.team_id!r} not found.")
        credit_note_id = command.credit_note_id or new_credit_note_id()
        created = False
        for _ in range(MAX_RACES):
            note = self.store.get(command.team_id, credit_note_id)
            if note is not None:
                break
            invoice = self.invoices.get_invoice(command.team_id, command.invoice_id)
            if invoice is None:
                raise NotFound(f"Invoice {command.invoice_id!r} not found.")
            draft = credit_note_for(invoice, credit_note_id, command.amount, command.reason, command.memo, now)
            numbered = replace(draft, number=self.store.next_number(command.team_id))
            added, note = self.store.add(invoice, credited(invoice, numbered), numbered, clock.now())
            if added is Added.CREATED:
                created = True
                break
            if added is Added.ATTEMPT_UNDER_WAY:
                raise Conflict(f"A payment attempt on invoice {command.invoice_id!r} is under way; try again shortly.")
            note = None  # raced (or a replay put it first: read it above)
        if note is None:
            raise Contended(f"invoice {command.invoice_id}: crediting it kept racing")
        if not note.same_request(command.invoice_id, command.amount, command.reason, command.memo):
            raise Conflict(f"Credit note {credit_note_id!r} already exists with different fields.")
        note = self._refund(note)
        self._email(note)
        return note, created

    def _refund(self, note: CreditNote) -> CreditNote:
        """The refund a paid invoice's credit note owes, made once (see the module's step 2)."""
        if not note.refund_owed:
            return note
        assert note.payment_intent  # credit_note_for refuses a paid invoice without one
        token = uuid.uuid4().hex
        taken, resumed = self.store.claim_refund(note, token, clock.lease_until(), clock.now())
        if not taken:
            stored = self.store.get(note.team_id, note.credit_note_id)
            if stored is not None and stored.refund is not None:
                return stored
            raise Conflict(f"The refund of credit note {note.credit_note_id!r} is under way; try again shortly.")
        key = refund_key(note.team_id, note.credit_note_id)
        try:
            refund = self.payments.find_refund(payment_intent=note.payment_intent, idempotency_key=key) \
                if resumed else None
            if refund is None:
                refund = self.payments.refund(
                    idempotency_key=key, payment_intent=note.payment_intent, amount=note.amount,
                    metadata={"credit_note_id": note.credit_note_id, "invoice_id": note.invoice_id,
                              "team_id": note.team_id})
        except Exception:
            self.store.release_refund(note, token)
            raise
        if not self.store.record_refund(note, refund, token):
            logger.warning("lost a refund claim before recording it", extra={"credit_note_id": note.credit_note_id})
        return self.store.get(note.team_id, note.credit_note_id) or note

    def _email(self, note: CreditNote) -> None:
        """The purchaser's copy, once; a failure is logged, not raised (the credit stands), and the
        same request again sends it."""
        if note.email_status is not None and note.email_status != "sending":
            return
        token = uuid.uuid4().hex
        if not self.store.claim_email(note, token, clock.lease_until(), clock.now()):
            return
        if not note.purchaser_email:
            self.store.email_done(note, token, None)
            return
        try:
            subject, html, text, attachments = self.render_email(note)
            message_id = self.mailer.send([note.purchaser_email], subject, html, text, attachments)
        except Exception:
            logger.exception("a credit note's email failed; the same request again sends it",
                             extra={"credit_note_id": note.credit_note_id})
            self.store.release_email(note, token)
            return
        self.store.email_done(note, token, message_id)

    # -------------------------------------------------------------- reading and rendering

    def credit_note(self, team_id: str, invoice_id: str, credit_note_id: str) -> CreditNote:
        note = self.store.get(team_id, credit_note_id)
        if note is None or note.invoice_id != invoice_id:
            raise NotFound(f"Credit note {credit_note_id!r} of invoice {invoice_id!r} not found.")
        return note

    def _context(self, note: CreditNote) -> dict[str, Any]:
        return credit_note_document(note, self.issuer, self.portal_url)

    def render_pdf(self, note: CreditNote) -> bytes:
        return self.renderer.pdf(self._context(note))

    def render_email(self, note: CreditNote) -> tuple[str, str, str, tuple[Attachment, ...]]:
        context = {**self._context(note), "email": True}
        attachments = (Attachment(context["pdf_filename"], "application/pdf", self.renderer.pdf(context)),)
        return (CREDIT_NOTE_SUBJECT.format(**context["subject"]),
                self.renderer.render(f"{CREDIT_NOTE_EMAIL}.html", **context),
                self.renderer.render(f"{CREDIT_NOTE_EMAIL}.txt", **context), attachments)
