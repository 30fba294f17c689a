"""An invoice as a business sends it: one document of display strings that the HTML page, the
emails' HTML and text parts and the PDF all render, and which email the invoice's state calls for.

Dates are in the purchaser's zone and in words; money is exact (integer minor units formatted by
the currency's exponent); the line says what a charged unit is and what partial usage rolled over.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from usage_ledger.domain.billing import PAID, PAYMENT_FAILED, UNCOLLECTIBLE, UNPAID, VOID, Attempt, Invoice
from usage_ledger.domain.credit_note import CreditNote
from usage_ledger.domain.links import invoice_link, payment_method_link
from usage_ledger.domain.money import format_minor_units
from usage_ledger.domain.wording import date_in_words, instant_in_words, local_date_in_words, quantity_in_words

# the emails, by template name (templates/<kind>.html and .txt)
INVOICE_EMAIL, RECEIPT_EMAIL, PAYMENT_FAILED_EMAIL, UNCOLLECTIBLE_EMAIL = (
    "invoice", "receipt", "payment_failed", "uncollectible")
SUBJECTS = {
    INVOICE_EMAIL: "Invoice {ref} for {team}: {total}",
    RECEIPT_EMAIL: "Receipt for invoice {ref} for {team}: {total} paid",
    PAYMENT_FAILED_EMAIL: "Payment failed for invoice {ref} for {team} ({total}): please {action}",
    UNCOLLECTIBLE_EMAIL: ("Payment failed for invoice {ref} for {team} ({total}): no more attempts will be made, "
                          "please {action}"),
}
STATUS_LABELS = {UNPAID: "Open", PAID: "Paid", PAYMENT_FAILED: "Payment failed", UNCOLLECTIBLE: "Uncollectible",
                 VOID: "Void"}
CREDIT_NOTE_EMAIL = "credit_note"
CREDIT_NOTE_SUBJECT = "Credit note {ref} for {team}: {amount} credited on invoice {invoice}"
REASON_LABELS = {"duplicate": "Duplicate charge", "fraudulent": "Fraudulent charge", "order_change": "Order change",
                 "product_unsatisfactory": "Product unsatisfactory", "other": "Other"}
DEFAULT_ISSUER_NAME = "Usage Ledger Example Ltd."
DEFAULT_ISSUER_ADDRESS = "1 Example Street, Springfield 00000, United States"


@dataclass(frozen=True)
class Issuer:
    """Who sends the invoices (template parameters IssuerName and IssuerAddress)."""

    name: str = DEFAULT_ISSUER_NAME
    address: str = DEFAULT_ISSUER_ADDRESS  # commas separate its lines

    @property
    def address_lines(self) -> list[str]:
        return [line.strip() for line in self.address.split(",") if line.strip()]


def failed_attempts(invoice: Invoice) -> int:
    return sum(not attempt.succeeded for attempt in attempts_of(invoice))


def email_kind(invoice: Invoice) -> str:
    """Issued (and paid at the first attempt, or not yet charged): the invoice; a failed attempt
    with a retry scheduled: payment failed; the last failure: uncollectible; paid after failures: a receipt."""
    if invoice.status == PAYMENT_FAILED:
        return PAYMENT_FAILED_EMAIL
    if invoice.status == UNCOLLECTIBLE:
        return UNCOLLECTIBLE_EMAIL
    if invoice.status == PAID and failed_attempts(invoice):
        return RECEIPT_EMAIL
    return INVOICE_EMAIL


def attempts_of(invoice: Invoice) -> tuple[Attempt, ...]:
    """The charge attempts; an invoice settled before attempts were kept shows its one charge."""
    if invoice.attempts:
        return invoice.attempts
    if invoice.settled_at is not None and invoice.status != UNPAID:
        return (Attempt(number=1, at=invoice.settled_at, succeeded=invoice.status == PAID,
                        charge_id=invoice.charge_id, decline_code=invoice.decline_code),)
    return ()


def _outcome(attempt: Attempt) -> str:
    if attempt.succeeded:
        return "Paid"
    return f"Declined ({attempt.decline_code.replace('_', ' ')})" if attempt.decline_code else "Declined"


def reference_of(invoice: Invoice) -> str:
    """How emails and files name an invoice: its number, or its id before it has one."""
    return str(invoice.number) if invoice.number is not None else invoice.invoice_id


def pdf_filename(invoice: Invoice) -> str:
    """invoice-<reference>.pdf with [A-Za-z0-9._-] only: safe in a Content-Disposition header as it is."""
    return _safe_filename("invoice", reference_of(invoice))


def _refund_label(status: str) -> str:
    return "Refunded" if status == "succeeded" else f"Refund {status.replace('_', ' ')}"


def _safe_filename(prefix: str, reference: str) -> str:
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9._-]+', '-', reference).strip('-.') or 'document'}.pdf"


def charged_amount(invoice: Invoice) -> int:
    """What an attempt asks (unpaid: amount_due) or asked (paid: the total less credit notes issued
    while it was unpaid, the ones without a refund); the emails about a payment name this."""
    if invoice.status != PAID:
        return invoice.amount_due
    return invoice.total - sum(note.amount for note in invoice.credit_notes if note.refund is None)


def invoice_document(invoice: Invoice, issuer: Issuer, portal_url: str) -> dict[str, Any]:
    """Everything an invoice shows, as display strings (jinja2 escapes them in HTML)."""
    zone = invoice.timezone or "UTC"
    def money(amount: int) -> str:
        return format_minor_units(amount, invoice.currency)

    # a paid invoice names the card that paid it, not the one it was issued on (which may have declined)
    paid_with = invoice.paid_with if invoice.status == PAID else None
    card = paid_with or invoice.payment_method
    attempts = attempts_of(invoice)
    paid_at = invoice.paid_at or (invoice.settled_at if invoice.status == PAID else None)
    reference = reference_of(invoice)
    rolled = invoice.rolled_over_usage
    return {
        "title": f"Invoice {invoice.number}" if invoice.number is not None else "Invoice",
        "number": invoice.number,
        "invoice_name": f"invoice {reference}",
        "invoice_id": invoice.invoice_id,
        "issuer_name": issuer.name,
        "issuer_address": issuer.address_lines,
        "team_name": invoice.team_name,
        "purchaser_email": invoice.purchaser_email or "",
        "zone": zone,
        "issued_on": local_date_in_words(invoice.issued_at, zone),
        "period_start": date_in_words(invoice.period_start),
        "period_end": date_in_words(invoice.period_end),
        "status": invoice.status,
        "status_label": STATUS_LABELS.get(invoice.status, invoice.status.replace("_", " ").capitalize()),
        "lines": [{"description": invoice.resource_name, "units": f"{line.charged_units:,}",
                   "units_label": quantity_in_words(line.charged_units, "unit"),
                   "unit_price": money(line.unit_amount), "amount": money(line.amount)} for line in invoice.lines],
        "unit_explanation": f"1 unit = {quantity_in_words(invoice.charge_unit_size, invoice.unit)}",
        "rollover": (f"{quantity_in_words(rolled, invoice.unit)} of partial usage "
                     f"{'carries' if rolled == 1 else 'carry'} over to the next cycle" if rolled > 0 else None),
        "total": money(invoice.total),
        "credited": money(invoice.credited) if invoice.credited else None,
        "amount_due": money(invoice.amount_due),
        "credit_notes": [{"number": note.number, "amount": money(note.amount),
                          "reason": REASON_LABELS.get(note.reason, note.reason),
                          "issued_on": local_date_in_words(note.issued_at, zone),
                          "refund": _refund_label(note.refund.status) if note.refund else None}
                         for note in invoice.credit_notes],
        "card": f"{card.brand.title()} ending in {card.last4}",
        "card_label": "Paid with" if paid_with is not None else "Payment method",
        "action_required": invoice.action_required,
        "attempts": [{"number": attempt.number, "when": instant_in_words(attempt.at, zone),
                      "outcome": _outcome(attempt)} for attempt in attempts],
        "failed_attempts": sum(not attempt.succeeded for attempt in attempts),
        "next_attempt": (instant_in_words(invoice.next_payment_attempt, zone)
                         if invoice.next_payment_attempt else None),
        "next_attempt_day": (local_date_in_words(invoice.next_payment_attempt, zone)
                             if invoice.next_payment_attempt else None),
        "paid_on": local_date_in_words(paid_at, zone) if paid_at else None,
        "view_url": invoice_link(portal_url, invoice.team_id, invoice.invoice_id),
        "update_card_url": payment_method_link(portal_url, invoice.team_id, invoice.subscription_id),
        "charged": money(charged_amount(invoice)),
        "subject": {"ref": reference, "team": invoice.team_name, "total": money(charged_amount(invoice)),
                    "action": "confirm the payment" if invoice.action_required else "update your card"},
        "pdf_filename": pdf_filename(invoice),
        "email": False,
    }


def credit_note_filename(note: CreditNote) -> str:
    """credit-note-<number>.pdf, [A-Za-z0-9._-] only (safe in a Content-Disposition header as it is)."""
    return _safe_filename("credit-note", str(note.number) if note.number is not None else note.credit_note_id)


def credit_note_document(note: CreditNote, issuer: Issuer, portal_url: str) -> dict[str, Any]:
    """Everything a credit note shows, in the invoice's layout (title, parties, details), as display strings."""
    zone = note.timezone or "UTC"
    def money(amount: int) -> str:
        return format_minor_units(amount, note.currency)

    card = note.payment_method
    invoice_ref = str(note.invoice_number) if note.invoice_number is not None else note.invoice_id
    if note.refund is not None:
        settlement = f"Refunded to {card.brand.title()} ending in {card.last4} ({note.refund.status})"
    elif note.invoice_status == PAID:
        settlement = f"Refund to {card.brand.title()} ending in {card.last4} pending"
    else:
        settlement = "Deducted from the amount due on the invoice (nothing was charged for it)"
    return {
        "document": "credit_note",
        "party_label": "Credited to",
        "title": f"Credit note {note.number}",
        "invoice_id": note.credit_note_id,  # the layout's reference line
        "issuer_name": issuer.name,
        "issuer_address": issuer.address_lines,
        "team_name": note.team_name,
        "purchaser_email": note.purchaser_email or "",
        "zone": zone,
        "issued_on": local_date_in_words(note.issued_at, zone),
        "details": [("Issued", local_date_in_words(note.issued_at, zone)),
                    ("Corrects", f"Invoice {invoice_ref} ({note.invoice_id})"),
                    ("Billing period", f"{date_in_words(note.period_start)} to {date_in_words(note.period_end)}"),
                    ("Invoice total", money(note.invoice_total)),
                    ("Reason", REASON_LABELS.get(note.reason, note.reason)),
                    *([("Memo", note.memo)] if note.memo else []),
                    ("Settlement", settlement)],
        "amount": money(note.amount),
        "view_url": invoice_link(portal_url, note.team_id, note.invoice_id),
        "subject": {"ref": str(note.number), "team": note.team_name, "amount": money(note.amount),
                    "invoice": invoice_ref},
        "pdf_filename": credit_note_filename(note),
        "email": False,
    }
