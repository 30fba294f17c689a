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
from usage_ledger.domain.billing import (
    DECLINED,
    PAID,
    PAST_DUE_STATUSES,
    PAYMENT_FAILED,
    UNPAID,
    Charge,
    CycleRef,
    Invoice,
    card_expires_at,
    charge_key,
    issue_invoice,
)
from usage_ledger.domain.model import Subscription
from usage_ledger.domain.calendar import iso
from usage_ledger.domain.errors import Conflict, LedgerError, NotFound
from usage_ledger.domain.money import format_minor_units
from usage_ledger.domain.pages import DEFAULT_PAGE
from usage_ledger.service.ports import BillingStore, LedgerStore, Mailer, PaymentGateway, Renderer

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
                 renderer: Renderer, grace: timedelta, portal_url: str) -> None:
        self.ledger, self.store, self.payments = ledger, store, payments
        self.mailer, self.renderer, self.grace, self.portal_url = mailer, renderer, grace, portal_url

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
            team, purchaser = self.ledger.team_and_member(cycle.team_id, subscription.purchaser_user_id)
            resource = self.ledger.resource(cycle.resource_id)
            invoice, created = self.store.issue(issue_invoice(cycle, subscription, team, purchaser, resource, now))
            summary.invoiced += created
            invoice, email_taken = self._collect(invoice, subscription, now, token)
            summary.payments_failed += invoice.status == PAYMENT_FAILED and email_taken
            self._email(invoice, now, token, email_taken)
            invoice_id = invoice.invoice_id
        if not self.store.close_cycle(ref, token, invoice_id):
            # our lease ran out and another run took over; it finishes idempotently
            logger.warning("lost a cycle lease before closing it", extra={"cycle": asdict(ref)})
            return
        summary.closed += 1

    def _collect(self, invoice: Invoice, subscription: Subscription, now: datetime, token: str) -> tuple[Invoice, bool]:
        """Charge a pending invoice once; the invoice as settled, and whether this run settled it
        (and so holds its email claim)."""
        if invoice.status != UNPAID:
            return invoice, False
        charge = self._charge(invoice, subscription, now, attempt=1)
        settled = self.store.settle(invoice, charge, now, token, clock.lease_until())
        if settled is None:  # settled by another run, with the same (idempotent) charge
            stored = self.store.get_invoice(invoice.team_id, invoice.invoice_id)
            assert stored is not None
            return stored, False
        return settled, True

    def _charge(self, invoice: Invoice, subscription: Subscription, now: datetime, *, attempt: int) -> Charge:
        """One attempt on the subscription's card: a card past its expiry month at `now` is not
        charged at all (the processor may accept it; the contract declines it)."""
        card = subscription.payment_method
        if card is None or not card.id or subscription.customer_id is None:
            # a card saved before the processor was wired in: the purchaser must save it again
            return Charge("", DECLINED, invoice.total, invoice.currency, "payment_method_missing")
        if now >= card_expires_at(card):
            return Charge("", DECLINED, invoice.total, invoice.currency, "expired_card")
        return self.payments.charge(
            idempotency_key=charge_key(invoice.invoice_id, attempt), amount=invoice.total, currency=invoice.currency,
            customer_id=subscription.customer_id, payment_method=card,
            description=f"Invoice {invoice.number or invoice.invoice_id} ({invoice.team_name})",
        )

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
            subject, html, text = self.render_email(invoice)
            message_id = self.mailer.send([invoice.purchaser_email], subject, html, text)
        except Exception:
            self.store.release_email(invoice, token)
            raise
        self.store.email_sent(invoice, token, message_id, now)

    # -------------------------------------------------------------- rendering

    def _context(self, invoice: Invoice) -> dict[str, Any]:
        card = invoice.payment_method
        return {
            "invoice": invoice.view(),
            "team_name": invoice.team_name,
            "resource_name": invoice.resource_name,
            "unit": invoice.unit,
            "purchaser_email": invoice.purchaser_email or "",
            "card_brand": card.brand.title(),
            "card_last4": card.last4,
            "portal_url": self.portal_url,
        }

    def render_invoice_html(self, invoice: Invoice) -> str:
        return self.renderer.render("invoice.html", **self._context(invoice))

    def render_email(self, invoice: Invoice) -> tuple[str, str, str]:
        """(subject, html, text): the invoice, or for a failed payment the notice to update the card."""
        context = self._context(invoice)
        total = format_minor_units(invoice.total, invoice.currency)
        if invoice.status == PAYMENT_FAILED:
            subject = f"Payment failed for invoice {invoice.invoice_id} ({total}): please update your card"
            template = "payment_failed"
        else:
            subject = f"Your invoice {invoice.invoice_id} for {total}"
            template = "invoice"
        return (subject, self.renderer.render(f"{template}.html", **context),
                self.renderer.render(f"{template}.txt", **context))

    # -------------------------------------------------------------- read side

    def invoice(self, team_id: str, invoice_id: str) -> Invoice:
        invoice = self.store.get_invoice(team_id, invoice_id)
        if invoice is None:
            raise NotFound(f"Invoice {invoice_id!r} not found.")
        return invoice

    def list_invoices(self, team_id: str, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> dict[str, Any]:
        invoices, next_cursor = self.store.list_invoices(team_id, limit, cursor)
        return {"items": [invoice.view() for invoice in invoices], "next_cursor": next_cursor}

    # -------------------------------------------------------------- payment routes' entry points (dunning replaces these)

    def pay_now(self, team_id: str, invoice_id: str, now: datetime) -> Invoice:
        """One charge attempt now on the subscription's current card. A `paid` invoice: Conflict."""
        invoice = self.invoice(team_id, invoice_id)
        if invoice.status == PAID:
            raise Conflict(f"Invoice {invoice_id!r} is already paid.")
        subscription = self.ledger.subscription_by_id(team_id, invoice.subscription_id)
        if subscription is None or not subscription.is_payg:
            raise NotFound(f"Invoice {invoice_id!r} not found.")
        return self._attempt_now(invoice, subscription, now)

    def retry_failed_invoices(self, team_id: str, subscription_id: str, now: datetime) -> list[Invoice]:
        """One attempt now on each payment_failed or uncollectible invoice of the subscription."""
        subscription = self.ledger.subscription_by_id(team_id, subscription_id)
        if subscription is None or not subscription.is_payg:
            raise NotFound(f"Subscription {subscription_id!r} not found.")
        failed, cursor = [], None
        while True:
            page, cursor = self.store.list_invoices(team_id, 100, cursor)
            failed += [invoice for invoice in page
                       if invoice.subscription_id == subscription_id and invoice.status in PAST_DUE_STATUSES]
            if cursor is None:
                break
        return [self._attempt_now(invoice, subscription, now) for invoice in reversed(failed)]  # oldest first

    def _attempt_now(self, invoice: Invoice, subscription: Subscription, now: datetime) -> Invoice:
        if invoice.status == UNPAID:  # the close job's first attempt, under the same key
            key = charge_key(invoice.invoice_id, 1)
        else:  # keyed by the attempt it follows: the conditional record keeps one charge per attempt
            key = f"{invoice.invoice_id}#retry-after-{iso(invoice.settled_at)}-{invoice.charge_id or 'none'}"
        charge = self._charge_keyed(invoice, subscription, now, key)
        recorded = self.store.record_attempt(invoice, charge, now, subscription.resource_id)
        if recorded is None:  # another attempt was recorded first: it stands
            return self.invoice(invoice.team_id, invoice.invoice_id)
        return recorded

    def _charge_keyed(self, invoice: Invoice, subscription: Subscription, now: datetime, key: str) -> Charge:
        card = subscription.payment_method
        if card is None or not card.id or subscription.customer_id is None:
            return Charge("", DECLINED, invoice.total, invoice.currency, "payment_method_missing")
        if now >= card_expires_at(card):
            return Charge("", DECLINED, invoice.total, invoice.currency, "expired_card")
        return self.payments.charge(
            idempotency_key=key, amount=invoice.total, currency=invoice.currency,
            customer_id=subscription.customer_id, payment_method=card,
            description=f"Invoice {invoice.number or invoice.invoice_id} ({invoice.team_name})")
