"""The dunning schedule as a rule (contract section 6): Invoice.after_attempt and what is due when."""
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from usage_ledger.domain.billing import (
    DECLINED,
    PAID,
    PAYMENT_FAILED,
    SENT,
    UNCOLLECTIBLE,
    UNPAID,
    Charge,
    Invoice,
    InvoiceLine,
)
from usage_ledger.domain.model import PaymentMethod

T0 = datetime(2026, 2, 15, 1, tzinfo=UTC)
DECLINE = Charge("pi_x", DECLINED, 500, "usd", "card_declined")
SUCCESS = Charge("pi_y", "succeeded", 500, "usd")


def invoice() -> Invoice:
    return Invoice("in_20260214_x", "team-a", "payg-1", "minutes", 0, "2026-01-15", "2026-02-14", "UTC",
                   (InvoiceLine("minutes", 2, 250, 500),), 500, "usd", UNPAID, T0, "Team A", "Minutes", "minute",
                   "alice", "alice@example.com", PaymentMethod("pm_1", "visa", "4242", 12, 2030))


def sent(state: Invoice) -> Invoice:
    return replace(state, email_status=SENT, email_attempt=state.attempt_count)


def test_failures_on_the_schedule_end_uncollectible_after_the_day_7_retry():
    state = invoice()
    assert state.payment_due(T0) and state.work_due_at() == T0
    expected = [(PAYMENT_FAILED, 1), (PAYMENT_FAILED, 3), (PAYMENT_FAILED, 5), (PAYMENT_FAILED, 7),
                (UNCOLLECTIBLE, None)]
    for at_day, (status, next_day) in zip((0, 1, 3, 5, 7), expected, strict=True):
        at = T0 + timedelta(days=at_day)
        assert state.payment_due(at)
        state = sent(state.after_attempt(DECLINE, at, scheduled=True))
        assert state.status == status
        assert state.next_payment_attempt == (T0 + timedelta(days=next_day) if next_day else None)
        if next_day:
            assert not state.payment_due(T0 + timedelta(days=next_day) - timedelta(seconds=1))
            assert state.work_due_at() == T0 + timedelta(days=next_day)
    assert state.attempt_count == 5 and [a.number for a in state.attempts] == [1, 2, 3, 4, 5]
    assert not state.payment_due(T0 + timedelta(days=100)) and state.work_due_at() is None


def test_an_unsent_email_makes_the_invoice_due_at_once():
    failed = invoice().after_attempt(DECLINE, T0, scheduled=True)
    assert failed.email_pending and failed.work_due_at() == T0
    assert sent(failed).work_due_at() == T0 + timedelta(days=1)


def test_a_late_run_keeps_the_schedule_of_the_first_failure():
    first = invoice().after_attempt(DECLINE, T0, scheduled=True)
    late = first.after_attempt(DECLINE, T0 + timedelta(days=4), scheduled=True)
    assert late.next_payment_attempt == T0 + timedelta(days=5)
    last = late.after_attempt(DECLINE, T0 + timedelta(days=10), scheduled=True)
    assert last.status == UNCOLLECTIBLE


def test_an_attempt_outside_the_schedule_moves_it_only_when_it_pays():
    failed = invoice().after_attempt(DECLINE, T0, scheduled=True)
    again = failed.after_attempt(DECLINE, T0 + timedelta(hours=3), scheduled=False)
    assert (again.status, again.next_payment_attempt, again.attempt_count) == (
        PAYMENT_FAILED, T0 + timedelta(days=1), 2)
    paid = again.after_attempt(SUCCESS, T0 + timedelta(hours=4), scheduled=False)
    assert (paid.status, paid.paid_at, paid.next_payment_attempt) == (PAID, T0 + timedelta(hours=4), None)
    assert paid.attempts[-1].succeeded and paid.decline_code is None


def test_an_open_invoice_failing_outside_the_schedule_starts_it():
    failed = invoice().after_attempt(DECLINE, T0, scheduled=False)
    assert (failed.status, failed.next_payment_attempt) == (PAYMENT_FAILED, T0 + timedelta(days=1))
