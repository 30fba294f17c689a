"""Payments the customer must confirm (SCA, 3-D Secure; contract section 6): `POST .../pay` on an
invoice whose last failed attempt needs authentication, and recording a PaymentIntent that the
processor completed afterwards (the page's confirmation, or the processor's event).

1. pay, action required: an on-session attempt (a PaymentIntent confirmed with the customer
   present). One that succeeds pays; one that waits for the customer is recorded as a failed
   attempt (`authentication_required`, as every attempt is recorded) and its client secret is
   answered as `next_action`, for Stripe.js `confirmCardPayment` on the page.
2. pay again while that PaymentIntent still waits: the same `next_action`, nothing new charged.
3. once the customer has confirmed, the PaymentIntent succeeded: it is recorded as the next
   attempt (paid, `charge_id` = that PaymentIntent, one receipt), from a later `pay`, from the
   processor's `payment_intent.succeeded` event, or from the next scheduled attempt or card update
   (Billing asks first, rather than charge again), whichever comes first; the attempt claim makes
   the others find the invoice paid.
Only PaymentIntents recorded on the invoice's own attempts settle it: an event or a `pay` can never
mark an invoice paid with a PaymentIntent of another invoice, team or customer.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from usage_ledger.domain.billing import PAID, Invoice, ProcessorIntent
from usage_ledger.domain.errors import Conflict, Contended
from usage_ledger.service.billing import Billing
from usage_ledger.service.ports import PaymentGateway

logger = Logger(child=True)
CONFIRM_PAYMENT = "confirm_payment"


class PaymentConfirmations:
    def __init__(self, billing: Billing, payments: PaymentGateway) -> None:
        self.billing, self.payments = billing, payments

    def pay(self, team_id: str, invoice_id: str, now: datetime) -> dict[str, Any]:
        """`POST .../invoices/{id}/pay`: the invoice after one attempt now, with `next_action` when
        the customer must confirm the payment on the page."""
        invoice = self.billing.invoice(team_id, invoice_id)
        if invoice.status == PAID:
            raise Conflict(f"Invoice {invoice_id!r} is already paid.")
        if not invoice.action_required:
            return _answer(self.billing.pay_now(team_id, invoice_id, now, read=invoice))
        waiting = self.billing.awaiting_intent(invoice)
        if waiting is not None and waiting.charge.succeeded:  # confirmed since: record it, charge nothing new
            return _answer(self.billing.pay_now(team_id, invoice_id, now, outcome=waiting.charge, read=invoice))
        if waiting is not None and waiting.awaiting_customer and waiting.metadata.get("on_session") == "true":
            return _answer(invoice, self._next_action(waiting))  # the page has not confirmed it yet
        attempted = self.billing.pay_now(team_id, invoice_id, now, on_session=True, read=invoice)
        waiting = self.billing.awaiting_intent(attempted) if attempted.action_required else None
        return _answer(attempted, self._next_action(waiting) if waiting and waiting.awaiting_customer else None)

    def settle_intent(self, intent_id: str, now: datetime) -> Invoice | None:
        """The processor says a PaymentIntent succeeded: pay its invoice with it, if the processor
        confirms it succeeded, it names one of our invoices (the metadata we set on it) and it is one
        of that invoice's own attempts, and the invoice is not paid yet. The invoice (None: not ours,
        or nothing to do). Contended while another attempt on it is under way (try again later)."""
        intent = self.payments.payment_intent(intent_id)  # the processor's word, not the event's copy
        if intent is None or not intent.charge.succeeded:
            return None
        team_id, invoice_id = intent.metadata.get("team_id"), intent.metadata.get("invoice_id")
        invoice = self.billing.store.get_invoice(team_id, invoice_id) if team_id and invoice_id else None
        if invoice is None or not _attempted_with(invoice, intent_id):
            return None  # a PaymentIntent made elsewhere on the account, or for another invoice
        if invoice.status == PAID:
            if invoice.charge_id and invoice.charge_id != intent_id:
                # paid by another PaymentIntent first (a card update while the customer confirmed this
                # one): the customer paid twice, and one of them is to be refunded
                logger.error("an invoice was paid twice", extra={"invoice_id": invoice_id, "team_id": team_id,
                                                                 "paid_by": invoice.charge_id, "also": intent_id})
            return None
        settled = self.settle(invoice, intent, now)
        if settled is None:
            stored = self.billing.store.get_invoice(invoice.team_id, invoice.invoice_id)
            if stored is not None and stored.status != PAID:
                raise Contended(f"invoice {invoice_id}: an attempt is under way; the event is retried")
        return settled

    def settle(self, invoice: Invoice, intent: ProcessorIntent, now: datetime) -> Invoice | None:
        """Record the succeeded PaymentIntent as the invoice's next attempt (paid, with its receipt);
        None when another run holds the attempt or the invoice is paid already."""
        try:
            return self.billing.pay_now(invoice.team_id, invoice.invoice_id, now, outcome=intent.charge)
        except Conflict:
            return None

    def _next_action(self, intent: ProcessorIntent) -> dict[str, str]:
        return {"type": CONFIRM_PAYMENT, "client_secret": intent.client_secret or "",
                "publishable_key": self.payments.publishable_key}


def _attempted_with(invoice: Invoice, intent_id: str) -> bool:
    return any(attempt.charge_id == intent_id for attempt in invoice.attempts)


def _answer(invoice: Invoice, next_action: dict[str, str] | None = None) -> dict[str, Any]:
    """The invoice as GET shows it, plus `next_action` only when the customer has one to take."""
    return {**invoice.view(), "next_action": next_action} if next_action else invoice.view()
