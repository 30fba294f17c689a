"""The credit-note rules of usage_ledger.domain.credit_note (contract section 7), pure: what a credit
does to an invoice's amount due and status, and what may not be credited."""
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_invoice_documents import invoice
from usage_ledger.domain.billing import PAID, PAYMENT_FAILED, UNCOLLECTIBLE, UNPAID, VOID, Refund
from usage_ledger.domain.credit_note import credit_note_for, credited
from usage_ledger.domain.errors import Conflict, ValidationFailed

NOW = datetime(2026, 4, 2, tzinfo=UTC)


def credit(target, amount, number, reason="other"):
    note = replace(credit_note_for(target, f"cn-{number}", amount, reason, None, NOW), number=number)
    return credited(target, note), note


@pytest.mark.parametrize("status", [UNPAID, PAYMENT_FAILED, UNCOLLECTIBLE])
def test_an_unpaid_invoice_asks_less_and_is_void_at_zero(status):
    unpaid = invoice(status=status, paid_at=None, next_payment_attempt=NOW + timedelta(days=1), email_status="sent",
                     email_attempt=1)  # its attempt's email went out: nothing else is due
    assert unpaid.amount_due == 2750
    partly, note = credit(unpaid, 750, 1)
    assert (partly.status, partly.credited, partly.amount_due) == (status, 750, 2000)
    assert note.payment_intent is None and not note.refund_owed  # nothing to refund on an unpaid invoice
    whole, _ = credit(partly, 2000, 2)
    assert (whole.status, whole.amount_due, whole.next_payment_attempt) == (VOID, 0, None)
    assert not whole.payment_due(NOW + timedelta(days=30)) and whole.work_due_at() is None
    assert [n.number for n in whole.credit_notes] == [1, 2]


def test_a_paid_invoice_stays_paid_and_owes_a_refund_of_its_paying_intent():
    paid = invoice(charge_id="pi_paid")
    after, note = credit(paid, 2750, 1, "duplicate")
    assert (after.status, after.credited, after.amount_due) == (PAID, 2750, 0)
    assert note.refund_owed and note.payment_intent == "pi_paid"
    assert not replace(note, refund=Refund("re_1", 2750, "succeeded")).refund_owed


@given(amounts=st.lists(st.integers(1, 3000), max_size=8))
def test_credit_notes_never_add_up_past_the_total(amounts):
    target = invoice(status=PAYMENT_FAILED, paid_at=None)
    for number, amount in enumerate(amounts, start=1):
        try:
            target, _ = credit(target, amount, number)
        except ValidationFailed as error:
            assert [e.path for e in error.errors] == ["amount"]
            assert amount > target.total - target.credited or target.status == VOID
    assert 0 <= target.credited <= target.total
    assert target.amount_due == (0 if target.status == VOID else target.total - target.credited)
    assert (target.status == VOID) == (target.credited == target.total)


def test_a_void_invoice_takes_no_credit_note():
    void, _ = credit(invoice(status=UNPAID, paid_at=None), 2750, 1)
    with pytest.raises(ValidationFailed):
        credit(void, 1, 2)


def test_a_paid_invoice_without_a_paying_intent_is_refused_before_anything_is_credited():
    with pytest.raises(Conflict):
        credit(invoice(charge_id=None), 100, 1)
