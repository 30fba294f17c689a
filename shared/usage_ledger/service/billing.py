"""Pay-as-You-Go billing: due cycles -> one numbered invoice each; its payment attempts on the
dunning schedule (contract section 6), one email per attempt; "pay now" and card-update retries;
reading invoices.

Every step is a conditional write, so a run that crashes, or two runs at once, never double-bill:
1. claim: the cycle goes "open" -> "closing" under this run's lease (or a "closing" one whose
   lease ran out is re-taken). Ingest only adds to "open" cycles, so its charged units are final.
2. invoice: one per (team, subscription, cycle) under a deterministic id, put if absent with the
   team's next number (one transaction with the team's counter), and listed as due for payment.
3. close: status "closed" and the cycle leaves the due-cycle index.
4. attempt n: claimed on the invoice (attempt_count == n-1, no live claim) before the processor is
   called, charged with the key (invoice, n) and recorded under the claim with the attempt's email
   claim and the subscription's past_due set in the same transaction. An attempt taken over from
   a run that died (or met an outage) first asks the processor for a charge under that key.
   An outage (ProcessorUnavailable) releases the claim: nothing recorded, no email.
5. email: sent once per attempt under its claim, released if SES fails so the next run sends it.
The close job makes steps 1-3 for every due cycle, then 4-5 for every invoice due at its time.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from usage_ledger import clock
from usage_ledger.domain.billing import (
    AUTHENTICATION_REQUIRED,
    DECLINED,
    PAID,
    PAST_DUE_STATUSES,
    VOID,
    Charge,
    CycleRef,
    Invoice,
    InvoiceRef,
    ProcessorIntent,
    card_expires_at,
    charge_key,
    issue_invoice,
)
from usage_ledger.domain.errors import Conflict, LedgerError, NotFound
from usage_ledger.domain.model import Subscription
from usage_ledger.domain.pages import DEFAULT_PAGE
from usage_ledger.service.documents import INVOICE_EMAIL, RECEIPT_EMAIL, SUBJECTS, Issuer, email_kind, invoice_document
from usage_ledger.service.ports import Attachment, BillingStore, LedgerStore, Mailer, PaymentGateway, Renderer

logger = Logger(child=True)
RECORD_SECONDS = 3.0  # after a charge: recording it (one transaction) and its email, with room to spare


@dataclass
class CloseSummary:
    closed: int = 0
    invoiced: int = 0
    payments_failed: int = 0  # attempts this run recorded as failed
    failed: int = 0  # cycles or invoices whose step failed: they stay due for the next run
    skipped: int = 0  # due, but another run holds it
    attempts: int = 0  # charge attempts this run recorded
    paid: int = 0  # of which succeeded


class Billing:
    def __init__(self, ledger: LedgerStore, store: BillingStore, payments: PaymentGateway, mailer: Mailer,
                 renderer: Renderer, grace: timedelta, portal_url: str, *, issuer: Issuer | None = None) -> None:
        self.ledger, self.store, self.payments = ledger, store, payments
        self.mailer, self.renderer, self.grace, self.portal_url = mailer, renderer, grace, portal_url
        self.issuer = issuer or Issuer()

    # -------------------------------------------------------------- the close job

    def close_due_cycles(self, now: datetime, *, grace: timedelta | None = None) -> dict[str, int]:
        """Close every cycle due at `now` and make every payment attempt due at `now`, in this process
        (the fanned-out job's work, service/jobs.py, done in one place); one item's failure leaves
        it due and moves on."""
        summary = CloseSummary()
        issued = {self._close_and_collect(ref, now, summary) for ref in self.due_work(now, grace=grace)}
        for invoice_ref in self.due_payments(now):
            if invoice_ref not in issued:  # a new invoice's first attempt was made (or met an outage) above
                self.collect(invoice_ref, now, summary)
        return asdict(summary)

    def due_work(self, now: datetime, *, grace: timedelta | None = None) -> Iterator[CycleRef]:
        """What the scheduled run at `now` hands to workers: the cycles due (ended before now - grace,
        not closed), paged from the due-cycle index. Still due until closed, so the next run lists
        again whatever a run or a worker did not finish."""
        grace = self.grace if grace is None else grace
        yield from self.store.due_cycles(now - grace)

    def due_payments(self, now: datetime) -> Iterator[InvoiceRef]:
        """Invoices with work due at `now` (an attempt, or an attempt's unsent email), paged from the
        due-payments index."""
        yield from self.store.due_payments(now)

    def close_cycle(self, ref: CycleRef, now: datetime, summary: CloseSummary | None = None) -> CloseSummary:
        """Close one cycle as of `now` (the scheduled run's time) under a fresh lease, then make its
        new invoice's first attempt; a failure leaves the cycle (or the payment) due, counted in
        `failed`, never raised, and another worker or run takes it."""
        summary = summary if summary is not None else CloseSummary()
        self._close_and_collect(ref, now, summary)
        return summary

    def _close_and_collect(self, ref: CycleRef, now: datetime, summary: CloseSummary) -> InvoiceRef | None:
        token = uuid.uuid4().hex  # this attempt's lease token
        try:
            invoice = self._close_into_invoice(ref, now, token, summary)
        except Exception:
            logger.exception("closing a billing cycle failed; it stays due", extra={"cycle": asdict(ref)})
            summary.failed += 1
            self._release(ref, token)
            return None
        if invoice is None:
            return None
        invoice_ref = InvoiceRef(invoice.team_id, invoice.invoice_id)
        self.collect(invoice_ref, now, summary, token)
        return invoice_ref

    def collect(self, ref: InvoiceRef, now: datetime, summary: CloseSummary | None = None,
                token: str | None = None) -> CloseSummary:
        """The payment work due on one invoice at `now`; a failure leaves it due (counted in `failed`)."""
        summary = summary if summary is not None else CloseSummary()
        try:
            self.attempt_due_payment(ref, now, token, summary)
        except Exception:
            logger.exception("a payment attempt or its email failed; it stays due", extra={"invoice": asdict(ref)})
            summary.failed += 1
        return summary

    def _release(self, ref: CycleRef, token: str) -> None:
        try:
            self.store.release_cycle(ref, token)
        except Exception:  # the lease then simply runs out
            logger.exception("could not release a cycle lease", extra={"cycle": asdict(ref)})

    def _close_into_invoice(self, ref: CycleRef, now: datetime, token: str,
                            summary: CloseSummary | None = None) -> Invoice | None:
        """Close one due cycle into its invoice (issued, numbered, due for payment at `now`): the
        invoice, or None when the cycle had no charged units or another run holds it. Charging
        is `attempt_due_payment`'s. Raises with the cycle still due (release its lease)."""
        summary = summary if summary is not None else CloseSummary()
        # leases run on the wall clock, never on the scheduled event's time: a run that starts
        # late (an async retry) must not take a lease already run out
        cycle = self.store.claim_cycle(ref, token, clock.lease_until(), clock.now())
        if cycle is None:
            summary.skipped += 1
            return None
        invoice = None
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
        if not self.store.close_cycle(ref, token, invoice.invoice_id if invoice else None):
            # our lease ran out and another run took over; it finishes idempotently
            logger.warning("lost a cycle lease before closing it", extra={"cycle": asdict(ref)})
            return invoice
        summary.closed += 1
        return invoice

    def attempt_due_payment(self, ref: InvoiceRef, now: datetime, token: str | None = None,
                            summary: CloseSummary | None = None) -> Invoice | None:
        """The close job's work on one invoice at `now`: send the latest attempt's email if it has
        not gone out, then make the attempt the schedule has due (an open invoice's first, or a
        retry whose next_payment_attempt has come). The invoice as it then stands (None: unknown).
        Raises (ProcessorUnavailable, SES) with the work still due."""
        token = token or uuid.uuid4().hex
        summary = summary if summary is not None else CloseSummary()
        invoice = self.store.get_invoice(ref.team_id, ref.invoice_id)
        if invoice is None:
            return None
        if invoice.email_pending:
            self._email(invoice, now, token, taken=False)
        if not invoice.payment_due(now):
            return invoice
        attempted = self._attempt(invoice, now, token, scheduled=True)
        if attempted is None:
            summary.skipped += 1
            return self.store.get_invoice(ref.team_id, ref.invoice_id)
        summary.attempts += 1
        summary.paid += attempted.status == PAID
        summary.payments_failed += attempted.status != PAID
        self._email(attempted, now, token, taken=True)
        return attempted

    # -------------------------------------------------------------- attempts outside the schedule

    def pay_now(self, team_id: str, invoice_id: str, now: datetime, *, on_session: bool = False,
                outcome: Charge | None = None, read: Invoice | None = None) -> Invoice:
        """One attempt now on the subscription's current card (`POST .../invoices/{id}/pay`). It does
        not move the retry schedule unless it pays. Conflict for a paid invoice, or while another
        attempt on it is under way; NotFound for an unknown one; ProcessorUnavailable on an outage.
        `on_session`: the customer is present (service/confirmations.py); `outcome`: a charge the
        processor already completed (a confirmed PaymentIntent), recorded without charging; `read`:
        the invoice as the caller just read it (the claim checks it is still so)."""
        invoice = read or self.invoice(team_id, invoice_id)
        if invoice.status in (PAID, VOID):
            raise Conflict(f"Invoice {invoice_id!r} is already {invoice.status}.")
        attempted = self._attempt(invoice, now, uuid.uuid4().hex, scheduled=False, email_now=True,
                                  on_session=on_session, outcome=outcome)
        if attempted is None:
            stored = self.invoice(team_id, invoice_id)
            if stored.status in (PAID, VOID):
                raise Conflict(f"Invoice {invoice_id!r} is already {stored.status}.")
            raise Conflict(f"A payment attempt on invoice {invoice_id!r} is under way; try again shortly.")
        return attempted

    def retry_failed_invoices(self, team_id: str, subscription_id: str, now: datetime,
                              until: float | None = None) -> list[Invoice]:
        """One attempt now on each payment_failed or uncollectible invoice of the subscription (found
        through its past_due set), charged to its current card: the invoices as they then stand.
        An invoice another run is attempting right now is returned as it stands, and so is one that
        no longer fits before `until` (time.monotonic()): the close job's retries take it."""
        subscription = self.ledger.subscription_by_id(team_id, subscription_id)
        if subscription is None or not subscription.is_payg:
            raise NotFound(f"Subscription {subscription_id!r} not found.")
        results = []
        for invoice_id in sorted(subscription.past_due_invoices):
            invoice = self.store.get_invoice(team_id, invoice_id)
            if invoice is None or invoice.status not in PAST_DUE_STATUSES:
                continue
            if until is not None and time.monotonic() + self.payments.max_call_seconds + RECORD_SECONDS > until:
                logger.warning("no time left to charge a failed invoice now; the schedule retries it",
                               extra={"invoice_id": invoice_id})
                results.append(invoice)
                continue
            attempted = self._attempt(invoice, now, uuid.uuid4().hex, scheduled=False, email_now=True)
            results.append(attempted or self.invoice(team_id, invoice_id))
        return results

    # -------------------------------------------------------------- one attempt

    def _attempt(self, invoice: Invoice, now: datetime, token: str, *, scheduled: bool,
                 email_now: bool = False, on_session: bool = False, outcome: Charge | None = None) -> Invoice | None:
        """Attempt `attempt_count + 1` on the subscription's card as it is now: claimed, charged,
        recorded (with its email claim). None when another run holds or made this attempt.
        `outcome`: the attempt's charge is already known (the processor completed it): recorded as is."""
        taken, resumed = self.store.claim_attempt(invoice, token, clock.lease_until(), clock.now())
        if not taken:
            return None
        number = invoice.attempt_count + 1
        try:
            subscription = self.ledger.get_subscription(invoice.team_id, invoice.resource_id, invoice.subscription_id)
            charge = outcome
            if charge is None and invoice.action_required and not on_session:
                # the customer may have confirmed the PaymentIntent that needed them (3-D Secure) since,
                # and its event not reached us: that paid the invoice, a new charge would pay it twice
                # (an on-session attempt comes from `pay`, which has just asked)
                waiting = self.awaiting_intent(invoice)
                charge = waiting.charge if waiting is not None and waiting.charge.succeeded else None
            if charge is None and resumed and subscription is not None and subscription.customer_id:
                # a run took this attempt before and may have charged: the processor decides
                charge = self.payments.find_charge(customer_id=subscription.customer_id,
                                                   idempotency_key=charge_key(invoice.invoice_id, number))
            if charge is None:
                charge = self._charge(invoice, subscription, now, attempt=number, on_session=on_session)
        except Exception:
            self._release_attempt(invoice, token)
            raise
        recorded = self.store.record_attempt(invoice.after_attempt(charge, now, scheduled=scheduled), token,
                                             clock.lease_until())
        if recorded is None:
            logger.warning("lost a payment attempt's claim before recording it",
                           extra={"invoice_id": invoice.invoice_id, "attempt": number})
            return None
        if email_now:  # a route: the email must not fail the call; the close job sends it later
            try:
                self._email(recorded, now, token, taken=True)
            except Exception:
                logger.exception("an attempt's email failed; the close job sends it",
                                 extra={"invoice_id": invoice.invoice_id})
        return recorded

    def awaiting_intent(self, invoice: Invoice) -> ProcessorIntent | None:
        """The PaymentIntent of the invoice's last attempt that needed the customer (decline code
        authentication_required), as the processor now has it; None when there is none."""
        attempt = next((attempt for attempt in reversed(invoice.attempts)
                        if not attempt.succeeded and attempt.decline_code == AUTHENTICATION_REQUIRED), None)
        if attempt is None or not attempt.charge_id:
            return None
        return self.payments.payment_intent(attempt.charge_id)

    def _release_attempt(self, invoice: Invoice, token: str) -> None:
        try:
            self.store.release_attempt(invoice, token)
        except Exception:  # the claim then simply runs out
            logger.exception("could not release an attempt claim", extra={"invoice_id": invoice.invoice_id})

    def _charge(self, invoice: Invoice, subscription: Subscription | None, now: datetime, *, attempt: int,
                on_session: bool = False) -> Charge:
        """One attempt on the subscription's current card: a card past its expiry month at `now` is
        not charged at all (the processor may accept it; the contract declines it)."""
        card = subscription.payment_method if subscription is not None else None
        if subscription is None or card is None or not card.id or subscription.customer_id is None:
            # no card saved with the processor: the purchaser must save one
            return Charge("", DECLINED, invoice.amount_due, invoice.currency, "payment_method_missing")
        if now >= card_expires_at(card):
            return Charge("", DECLINED, invoice.amount_due, invoice.currency, "expired_card")
        request: dict[str, Any] = dict(  # credit notes lower what an unpaid invoice asks (section 7)
            idempotency_key=charge_key(invoice.invoice_id, attempt), amount=invoice.amount_due,
            currency=invoice.currency,
            customer_id=subscription.customer_id, payment_method=card,
            description=f"Invoice {invoice.number or invoice.invoice_id} ({invoice.team_name})",
            # the processor's events name the invoice they are about (service/processor_events.py)
            metadata={"team_id": invoice.team_id, "invoice_id": invoice.invoice_id},
        )
        if on_session:
            return self.payments.charge_on_session(**request).charge
        return self.payments.charge(**request)

    def _email(self, invoice: Invoice, now: datetime, token: str, taken: bool) -> None:
        """Send the latest attempt's email (the invoice, the failure notice or the receipt: the render
        chooses from the invoice's state) once; released on failure so a retry sends it."""
        if not invoice.email_pending:
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
