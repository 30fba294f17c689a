"""Pay-as-You-Go billing's nouns: a cycle's life (open -> closing -> closed), its invoice and a charge."""
from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from usage_ledger.domain.calendar import iso
from usage_ledger.domain.ids import stable_hash
from usage_ledger.domain.model import Member, PaymentMethod, Resource, Subscription, Team

# cycle statuses: ingest adds units only to an open cycle; closing holds a run's lease
OPEN, CLOSING, CLOSED = "open", "closing", "closed"
# invoice statuses (contract section 6): issued and not yet charged, paid, an attempt failed and a
# retry is scheduled, the last scheduled retry failed, credited in full while unpaid (section 7)
UNPAID, PAID, PAYMENT_FAILED, UNCOLLECTIBLE = "open", "paid", "payment_failed", "uncollectible"
VOID = "void"
PAST_DUE_STATUSES = frozenset({PAYMENT_FAILED, UNCOLLECTIBLE})
# after a failed first attempt, retries fall due this many days after it; the last failing ends dunning
RETRY_AFTER_DAYS = (1, 3, 5, 7)
# where an invoice's email stands: being sent under a run's lease, sent, or no one to send it to
SENDING, SENT, NO_RECIPIENT = "sending", "sent", "no_recipient"
MAX_INVOICE_ID = 128  # far above the ids we issue, far below DynamoDB's key limit
# the decline code of a charge the processor cannot complete without the customer present (SCA)
AUTHENTICATION_REQUIRED = "authentication_required"


@dataclass(frozen=True)
class CycleRef:
    """Names one billing cycle (what the due-cycle index yields)."""

    team_id: str
    resource_id: str
    subscription_id: str
    index: int


@dataclass(frozen=True)
class PaygCycle:
    """One billing cycle of a payg subscription as stored: its local dates and the units it took."""

    team_id: str
    resource_id: str
    subscription_id: str
    index: int
    start_date: str
    end_date: str
    ends_at: datetime
    charged_units: int
    status: str = OPEN


@dataclass(frozen=True)
class InvoiceLine:
    resource_id: str
    charged_units: int
    unit_amount: int
    amount: int


@dataclass(frozen=True)
class Attempt:
    """One charge attempt of an invoice, as the processor answered it."""

    number: int  # 1 for the charge at issue, 2.. for retries and "pay now"
    at: datetime
    succeeded: bool
    charge_id: str | None = None  # the PaymentIntent
    decline_code: str | None = None


@dataclass(frozen=True)
class Refund:
    """A processor Refund as it reported it."""

    id: str
    amount: int
    status: str

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "amount": self.amount, "status": self.status}


@dataclass(frozen=True)
class CreditNoteSummary:
    """What an invoice keeps of each of its credit notes (the credit note itself: domain.credit_note)."""

    credit_note_id: str
    number: int
    amount: int
    reason: str
    issued_at: datetime
    refund: Refund | None = None

    def view(self) -> dict[str, Any]:
        return {"credit_note_id": self.credit_note_id, "number": self.number, "amount": self.amount,
                "reason": self.reason, "refund": self.refund.view() if self.refund else None,
                "issued_at": iso(self.issued_at)}


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    team_id: str
    subscription_id: str
    resource_id: str
    cycle_index: int
    period_start: str
    period_end: str
    timezone: str | None
    lines: tuple[InvoiceLine, ...]
    total: int
    currency: str
    status: str
    issued_at: datetime
    # snapshots for rendering: an invoice shows who and what was billed when it was issued
    team_name: str
    resource_name: str
    unit: str
    purchaser_user_id: str | None
    purchaser_email: str | None
    payment_method: PaymentMethod
    number: int | None = None  # the team's gapless sequence, taken with the invoice
    charge_unit_size: Decimal = Decimal(1)  # base units in one charged unit, as when issued
    rolled_over_usage: Decimal = Decimal(0)  # base units of a partial unit carried into the next cycle
    attempt_count: int = 0
    attempts: tuple[Attempt, ...] = ()
    next_payment_attempt: datetime | None = None
    paid_at: datetime | None = None
    charge_id: str | None = None
    settled_at: datetime | None = None
    decline_code: str | None = None
    email_status: str | None = None  # of the email of attempt `email_attempt`
    email_attempt: int | None = None  # the attempt whose email was last claimed (one email per attempt)
    paid_with: PaymentMethod | None = None  # the card of the attempt that paid it

    @property
    def action_required(self) -> bool:
        """Unpaid, and its last failed attempt needs the customer to authenticate (contract section 6)."""
        if self.status not in (UNPAID, PAYMENT_FAILED, UNCOLLECTIBLE):
            return False
        failed = next((attempt for attempt in reversed(self.attempts) if not attempt.succeeded), None)
        return failed is not None and failed.decline_code == AUTHENTICATION_REQUIRED
    credit_notes: tuple[CreditNoteSummary, ...] = ()  # in the order issued
    credited: int = 0  # what its credit notes add up to (never past the total)

    @property
    def amount_due(self) -> int:
        """What an attempt charges: the total less credit notes while unpaid; nothing once paid or void."""
        return 0 if self.status in (PAID, VOID) else self.total - self.credited

    @property
    def emailed(self) -> bool:
        """Whether the email of the latest attempt went out (or had no one to go to)."""
        return self.email_attempt == self.attempt_count and self.email_status in (SENT, NO_RECIPIENT)

    @property
    def email_pending(self) -> bool:
        """An attempt was recorded (or the invoice was paid at issue: a total of 0, which is emailed
        as the invoice with no attempt) and its email has not gone out yet."""
        return (self.attempt_count > 0 or (self.status == PAID and self.total == 0)) and not self.emailed

    @property
    def first_failure(self) -> datetime | None:
        return next((attempt.at for attempt in self.attempts if not attempt.succeeded), None)

    def payment_due(self, now: datetime) -> bool:
        """Whether the schedule wants an attempt at `now`: an open invoice at once, a failed one at
        its next_payment_attempt; never a paid, uncollectible or void one."""
        if self.status == UNPAID:
            return True
        return self.status == PAYMENT_FAILED and self.next_payment_attempt is not None \
            and self.next_payment_attempt <= now

    def work_due_at(self) -> datetime | None:
        """When the close job next has something to do for this invoice (the due-payments index's
        sort key): its pending email at once, else its next attempt; None when nothing is left."""
        if self.email_pending:
            return self.attempts[-1].at if self.attempts else self.issued_at
        if self.status == UNPAID:
            return self.issued_at
        return self.next_payment_attempt if self.status == PAYMENT_FAILED else None

    def after_attempt(self, charge: Charge, at: datetime, *, scheduled: bool) -> Invoice:
        """The invoice once attempt `attempt_count + 1` answered `charge` (contract section 6).

        Success: paid. A failure of a scheduled attempt (the close job's, or the first of an open
        invoice): payment_failed with the next retry due 1, 3, 5 or 7 days after the FIRST failure,
        the first of those still ahead of `at`; none left: uncollectible. A failure outside the
        schedule ("pay now", a card update) leaves the status and the schedule as they were."""
        number = self.attempt_count + 1
        attempt = Attempt(number, at, charge.succeeded, charge.charge_id or None, charge.decline_code)
        recorded = replace(self, attempt_count=number, attempts=(*self.attempts, attempt),
                           charge_id=charge.charge_id or self.charge_id, settled_at=at,
                           decline_code=None if charge.succeeded else charge.decline_code)
        if charge.succeeded:
            return replace(recorded, status=PAID, paid_at=at, next_payment_attempt=None,
                           paid_with=charge.payment_method)
        if not scheduled and self.status in PAST_DUE_STATUSES:
            return recorded
        first_failure = self.first_failure or at
        ahead = [first_failure + timedelta(days=days) for days in RETRY_AFTER_DAYS
                 if first_failure + timedelta(days=days) > at]
        if ahead:
            return replace(recorded, status=PAYMENT_FAILED, next_payment_attempt=ahead[0])
        return replace(recorded, status=UNCOLLECTIBLE, next_payment_attempt=None)

    def view(self) -> dict[str, Any]:
        """The invoice as the API shows it (contract section 3)."""
        return {
            "invoice_id": self.invoice_id,
            "number": self.number,
            "subscription_id": self.subscription_id,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "lines": [{"resource_id": line.resource_id, "charged_units": line.charged_units,
                       "unit_amount": line.unit_amount, "amount": line.amount} for line in self.lines],
            "total": self.total,
            "currency": self.currency,
            "status": self.status,
            "attempt_count": self.attempt_count,
            "next_payment_attempt": iso(self.next_payment_attempt),
            "paid_at": iso(self.paid_at),
            "issued_at": iso(self.issued_at),
            "paid_with": ({"id": self.paid_with.id, "brand": self.paid_with.brand, "last4": self.paid_with.last4}
                          if self.paid_with is not None and self.status == PAID else None),
            "action_required": self.action_required,
            "amount_due": self.amount_due,
            "credited": self.credited,
            "credit_notes": [note.view() for note in self.credit_notes],
        }



@dataclass(frozen=True)
class InvoiceRef:
    """Names one invoice (what the due-payments index yields)."""

    team_id: str
    invoice_id: str


def invoice_id_for(team_id: str, subscription_id: str, cycle_index: int, period_end: str) -> str:
    """Deterministic, and sorts by period within the team: in_<YYYYMMDD of period_end>_<hash>."""
    digest = stable_hash(team_id, subscription_id, str(cycle_index), length=16)
    return f"in_{period_end.replace('-', '')}_{digest}"


def charge_key(invoice_id: str, attempt: int = 1) -> str:
    """The idempotency key of one charge attempt of an invoice: a retried request charges at most once."""
    return f"{invoice_id}#attempt-{attempt}"


def issue_invoice(cycle: PaygCycle, subscription: Subscription, team: Team | None, purchaser: Member | None,
                  resource: Resource | None, now: datetime, rolled_over_usage: Decimal = Decimal(0)) -> Invoice:
    """The one invoice of a cycle that took charged units; `rolled_over_usage` is the partial usage
    (base units) pending when it is issued, carried into the next cycle."""
    assert subscription.unit_amount is not None and subscription.currency is not None
    assert subscription.payment_method is not None
    amount = cycle.charged_units * subscription.unit_amount
    # nothing to collect (a unit_amount of 0): issued paid, and the processor is never called
    settled = {"status": PAID, "paid_at": now} if amount == 0 else {"status": UNPAID}
    return Invoice(
        invoice_id=invoice_id_for(cycle.team_id, cycle.subscription_id, cycle.index, cycle.end_date),
        team_id=cycle.team_id, subscription_id=cycle.subscription_id, resource_id=cycle.resource_id,
        cycle_index=cycle.index, period_start=cycle.start_date, period_end=cycle.end_date,
        timezone=subscription.timezone,
        lines=(InvoiceLine(cycle.resource_id, cycle.charged_units, subscription.unit_amount, amount),),
        total=amount, currency=subscription.currency, issued_at=now, **settled,
        team_name=team.name if team else cycle.team_id,
        resource_name=resource.display_name if resource else cycle.resource_id,
        unit=resource.unit if resource else "unit",
        purchaser_user_id=subscription.purchaser_user_id,
        purchaser_email=purchaser.email if purchaser else None,
        payment_method=subscription.payment_method,
        charge_unit_size=resource.charge_unit_size if resource else Decimal(1), rolled_over_usage=rolled_over_usage,
    )


SUCCEEDED, DECLINED = "succeeded", "declined"


@dataclass(frozen=True)
class Charge:
    """The outcome of one charge attempt, the same for every retry with its idempotency key."""

    charge_id: str
    status: str  # "succeeded" or "declined"
    amount: int
    currency: str
    decline_code: str | None = None
    payment_method: PaymentMethod | None = None  # the card charged, as the processor describes it

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED


@dataclass(frozen=True)
class ProcessorIntent:
    """A PaymentIntent as the processor has it: its outcome as a charge, and for one that waits for
    the customer (3-D Secure) the client secret that Stripe.js confirms it with."""

    charge: Charge
    client_secret: str | None = None
    awaiting_customer: bool = False  # requires_action: the customer must authenticate
    metadata: dict[str, str] = field(default_factory=dict)  # what we set: team_id, invoice_id, on_session
    customer_id: str | None = None
    status: str | None = None


def card_expires_at(payment_method: PaymentMethod) -> datetime:
    """A card is valid through the last day of its expiry month (UTC); this is the first instant after."""
    last_day = _calendar.monthrange(payment_method.exp_year, payment_method.exp_month)[1]
    end = datetime(payment_method.exp_year, payment_method.exp_month, last_day, tzinfo=UTC)
    return end + timedelta(days=1)
