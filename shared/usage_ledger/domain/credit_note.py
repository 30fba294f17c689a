"""Credit notes (contract section 7): what correcting an invoice does to it, and the note's own record.

Rules, stated before the code that keeps them:
- what the credit notes of one invoice add up to never exceeds its total;
- on a paid invoice the amount is refunded to the PaymentIntent that paid it; on an unpaid one the
  amount due drops, and at zero the invoice is void (no attempt follows, not past_due);
- numbers: the team's own sequence 1, 2, 3, ... (taken in the same write as the credit).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from usage_ledger.domain.billing import (
    PAID,
    PAYMENT_FAILED,
    UNCOLLECTIBLE,
    UNPAID,
    VOID,
    CreditNoteSummary,
    Invoice,
    Refund,
)
from usage_ledger.domain.calendar import iso
from usage_ledger.domain.errors import Conflict, ValidationFailed
from usage_ledger.domain.model import PaymentMethod

REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory", "other")
CREDITABLE = frozenset({UNPAID, PAID, PAYMENT_FAILED, UNCOLLECTIBLE})  # never a void one


@dataclass(frozen=True)
class CreditNote:
    credit_note_id: str
    team_id: str
    invoice_id: str
    invoice_number: int | None
    number: int | None  # the team's credit-note sequence, taken with the credit
    amount: int
    currency: str
    reason: str
    memo: str | None
    issued_at: datetime
    invoice_status: str  # as credited: PAID means the amount is refunded
    invoice_total: int
    # snapshots for rendering, as on the invoice
    team_name: str
    purchaser_email: str | None
    timezone: str | None
    period_start: str
    period_end: str
    payment_method: PaymentMethod
    payment_intent: str | None = None
    refund: Refund | None = None
    email_status: str | None = None

    @property
    def refund_owed(self) -> bool:
        """Credited on a paid invoice and not yet refunded (the processor was not reached, or its
        answer not recorded): a replay of the request finishes it."""
        return self.invoice_status == PAID and self.refund is None

    def same_request(self, invoice_id: str, amount: int, reason: str, memo: str | None) -> bool:
        return (self.invoice_id, self.amount, self.reason, self.memo) == (invoice_id, amount, reason, memo)

    def summary(self) -> CreditNoteSummary:
        assert self.number is not None
        return CreditNoteSummary(self.credit_note_id, self.number, self.amount, self.reason, self.issued_at,
                                 self.refund)

    def view(self) -> dict[str, Any]:
        return {"credit_note_id": self.credit_note_id, "number": self.number, "invoice_id": self.invoice_id,
                "amount": self.amount, "currency": self.currency, "reason": self.reason, "memo": self.memo,
                "refund": self.refund.view() if self.refund else None, "issued_at": iso(self.issued_at)}


def refund_key(team_id: str, credit_note_id: str) -> str:
    """The idempotency key of a credit note's refund: a retried request never refunds twice."""
    return f"{team_id}/{credit_note_id}#refund"


def credit_note_for(invoice: Invoice, credit_note_id: str, amount: int, reason: str, memo: str | None,
                    now: datetime) -> CreditNote:
    """The credit note `amount` of `invoice` as it stands; ValidationFailed on `amount` past what is
    left to credit (the store's conditional write keeps that true under races); Conflict for a paid
    invoice with no PaymentIntent to refund."""
    left = invoice.total - invoice.credited
    if invoice.status not in CREDITABLE or amount > left:
        raise ValidationFailed.single(
            "amount", f"must not exceed what is left to credit on invoice {invoice.invoice_id!r}: {left} "
                      f"({invoice.total} total, {invoice.credited} credited)" if invoice.status in CREDITABLE
            else f"invoice {invoice.invoice_id!r} is {invoice.status}: nothing is left to credit")
    if invoice.status == PAID and not invoice.charge_id:  # refused before anything is credited
        raise Conflict(f"Invoice {invoice.invoice_id!r} was paid without a PaymentIntent to refund; refund it at "
                       "the processor instead.")
    return CreditNote(
        credit_note_id=credit_note_id, team_id=invoice.team_id, invoice_id=invoice.invoice_id,
        invoice_number=invoice.number, number=None, amount=amount, currency=invoice.currency, reason=reason,
        memo=memo, issued_at=now, invoice_status=invoice.status, invoice_total=invoice.total,
        team_name=invoice.team_name, purchaser_email=invoice.purchaser_email, timezone=invoice.timezone,
        period_start=invoice.period_start, period_end=invoice.period_end, payment_method=invoice.payment_method,
        payment_intent=invoice.charge_id if invoice.status == PAID else None)


def credited(invoice: Invoice, note: CreditNote) -> Invoice:
    """The invoice with the numbered credit note: credited more; an unpaid one whose amount due
    reaches zero is void, with no attempt left scheduled."""
    after = replace(invoice, credited=invoice.credited + note.amount,
                    credit_notes=(*invoice.credit_notes, note.summary()))
    if invoice.status != PAID and after.credited >= invoice.total:
        return replace(after, status=VOID, next_payment_attempt=None)
    return after
