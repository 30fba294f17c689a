"""Credit notes in the invoice partition: one transaction puts the note, credits its invoice
(conditional on the invoice as read, so racing notes never credit past the total) and takes the
team's next credit-note number; then the refund and the email, each under a claim of its own."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from usage_ledger.adapters.dynamodb import keys
from usage_ledger.adapters.dynamodb.billing import (
    _index_actions,
    _update,
    credited_is,
    refund_attribute,
    refund_of,
    summary_attribute,
)
from usage_ledger.adapters.dynamodb.errors import (
    CONDITION_FAILED,
    cancellation_codes,
    lost_a_race,
)
from usage_ledger.adapters.dynamodb.leases import lease_free, take
from usage_ledger.adapters.dynamodb.ledger import card_attribute, card_of
from usage_ledger.adapters.dynamodb.models import (
    CreditNoteItem,
    InvoiceCounterItem,
    InvoiceItem,
    LedgerItem,
    SubscriptionItem,
    connection,
)
from usage_ledger.domain.billing import NO_RECIPIENT, SENDING, SENT, VOID, Invoice, Refund
from usage_ledger.domain.credit_note import CreditNote
from usage_ledger.service.ports import Added


def credit_note_of(item: CreditNoteItem) -> CreditNote:
    card = card_of(item.payment_method)
    assert card is not None
    return CreditNote(
        credit_note_id=item.credit_note_id, team_id=item.team_id, invoice_id=item.invoice_id,
        invoice_number=int(item.invoice_number) if item.invoice_number is not None else None,
        number=int(item.number), amount=int(item.amount), currency=item.currency, reason=item.reason,
        memo=item.memo, issued_at=item.issued_at, invoice_status=item.invoice_status,
        invoice_total=int(item.invoice_total), team_name=item.team_name, purchaser_email=item.purchaser_email,
        timezone=item.timezone, period_start=item.period_start, period_end=item.period_end, payment_method=card,
        payment_intent=item.payment_intent, refund=refund_of(item.refund), email_status=item.emailed)


def _key(team_id: str, credit_note_id: str) -> CreditNoteItem:
    return CreditNoteItem(keys.invoice_pk(team_id), keys.credit_note_sk(credit_note_id))


class CreditNoteStore:
    def get(self, team_id: str, credit_note_id: str) -> CreditNote | None:
        try:
            item = LedgerItem.get(keys.invoice_pk(team_id), keys.credit_note_sk(credit_note_id), consistent_read=True)
        except LedgerItem.DoesNotExist:
            return None
        return credit_note_of(item) if isinstance(item, CreditNoteItem) else None

    def add(self, before: Invoice, after: Invoice, note: CreditNote, now: datetime) -> tuple[Added, CreditNote]:
        """One try at the credit: the note put (numbered `note.number`, the counter's next), the
        invoice moved from `before` to `after` only if it still stands as read (status, credited,
        no live attempt claim), the counter advanced from the value read, and a void invoice out of
        its subscription's past_due set, in one transaction."""
        assert note.number is not None
        pk = keys.invoice_pk(note.team_id)
        item = CreditNoteItem(
            pk, keys.credit_note_sk(note.credit_note_id), credit_note_id=note.credit_note_id, team_id=note.team_id,
            invoice_id=note.invoice_id, invoice_number=note.invoice_number, number=note.number, amount=note.amount,
            currency=note.currency, reason=note.reason, memo=note.memo, issued_at=note.issued_at,
            invoice_status=note.invoice_status, invoice_total=note.invoice_total, team_name=note.team_name,
            purchaser_email=note.purchaser_email, timezone=note.timezone, period_start=note.period_start,
            period_end=note.period_end, payment_method=card_attribute(note.payment_method),
            payment_intent=note.payment_intent)
        invoice = InvoiceItem(pk, before.invoice_id)
        actions: list[Action] = [InvoiceItem.credited.set(after.credited),
                   InvoiceItem.credit_notes.set((InvoiceItem.credit_notes | []).append(
                       [summary_attribute(after.credit_notes[-1])]))]
        if after.status == VOID:
            actions += [InvoiceItem.status.set(VOID), InvoiceItem.next_payment_attempt.remove(),
                        *_index_actions(after)]
        condition = (InvoiceItem.SK.exists() & (InvoiceItem.status == before.status) & credited_is(before.credited)
                     & (InvoiceItem.claim_token.does_not_exist() | lease_free(InvoiceItem.claim_until, now)))
        last = note.number - 1
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.save(item, condition=CreditNoteItem.SK.does_not_exist())
                transaction.update(invoice, actions=actions, condition=condition)
                if last == 0:
                    transaction.save(InvoiceCounterItem(pk, keys.CREDIT_NOTE_COUNTER_SK, last_number=1),
                                     condition=InvoiceCounterItem.SK.does_not_exist())
                else:
                    transaction.update(InvoiceCounterItem(pk, keys.CREDIT_NOTE_COUNTER_SK),
                                       actions=[InvoiceCounterItem.last_number.set(note.number)],
                                       condition=InvoiceCounterItem.last_number == last)
                if after.status == VOID:  # no longer makes its subscription past_due
                    transaction.update(
                        SubscriptionItem(keys.team_pk(before.team_id),
                                         keys.subscription_sk(before.resource_id, before.subscription_id)),
                        actions=[SubscriptionItem.past_due.delete({before.invoice_id})],
                        condition=SubscriptionItem.SK.exists())
        except TransactWriteError as error:
            codes = cancellation_codes(error)
            if codes and codes[0] == CONDITION_FAILED:
                return Added.EXISTS, note
            if len(codes) > 1 and codes[1] == CONDITION_FAILED and self._attempt_held(before, now):
                return Added.ATTEMPT_UNDER_WAY, note
            if lost_a_race(codes):
                return Added.RACED, note
            raise
        return Added.CREATED, note

    def _attempt_held(self, invoice: Invoice, now: datetime) -> bool:
        try:
            item = InvoiceItem.get(keys.invoice_pk(invoice.team_id), invoice.invoice_id, consistent_read=True)
        except InvoiceItem.DoesNotExist:
            return False
        return item.claim_token is not None and item.claim_until is not None and item.claim_until >= now

    def next_number(self, team_id: str) -> int:
        try:
            counter = InvoiceCounterItem.get(keys.invoice_pk(team_id), keys.CREDIT_NOTE_COUNTER_SK,
                                             consistent_read=True)
            return int(counter.last_number) + 1
        except InvoiceCounterItem.DoesNotExist:
            return 1

    # -------------------------------------------------------------- the refund

    def claim_refund(self, note: CreditNote, token: str, lease_until: datetime, now: datetime) -> tuple[bool, bool]:
        """Take the right to refund (an owed refund, no live claim): (taken, resumed: a claim was
        taken before, so the processor may have refunded and is asked first)."""
        item = _key(note.team_id, note.credit_note_id)
        condition = (CreditNoteItem.SK.exists() & CreditNoteItem.refund.does_not_exist()
                     & (CreditNoteItem.refund_token.does_not_exist() | lease_free(CreditNoteItem.refund_until, now)))
        actions = [CreditNoteItem.refund_token.set(token), CreditNoteItem.refund_until.set(lease_until),
                   CreditNoteItem.refund_claimed.set(True)]
        before = take(item, actions, condition)
        if before is None:
            return False, False
        return True, "refund_claimed" in before

    def release_refund(self, note: CreditNote, token: str) -> None:
        _update(_key(note.team_id, note.credit_note_id),
                [CreditNoteItem.refund_token.remove(), CreditNoteItem.refund_until.remove()],
                CreditNoteItem.refund_token == token)

    def record_refund(self, note: CreditNote, refund: Refund, token: str) -> bool:
        """The processor's refund on the note and on its invoice's summary, under our claim."""
        assert note.number is not None
        invoice = InvoiceItem(keys.invoice_pk(note.team_id), note.invoice_id)
        stored = InvoiceItem.get(invoice.PK, invoice.SK, consistent_read=True)
        index = next(i for i, summary in enumerate(stored.credit_notes or ())
                     if summary.credit_note_id == note.credit_note_id)
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.update(_key(note.team_id, note.credit_note_id),
                                   actions=[CreditNoteItem.refund.set(refund_attribute(refund)),
                                            CreditNoteItem.refund_token.remove(),
                                            CreditNoteItem.refund_until.remove()],
                                   condition=CreditNoteItem.refund_token == token)
                summary: Any = InvoiceItem.credit_notes[index]  # a map in the list: pynamodb's Path, typed loosely
                transaction.update(invoice, actions=[summary.refund.set(refund_attribute(refund))],
                                   condition=summary.credit_note_id == note.credit_note_id)
        except TransactWriteError as error:
            if CONDITION_FAILED in cancellation_codes(error):
                return False
            raise
        return True

    # -------------------------------------------------------------- the email

    def claim_email(self, note: CreditNote, token: str, lease_until: datetime, now: datetime) -> bool:
        return _update(_key(note.team_id, note.credit_note_id),
                       [CreditNoteItem.emailed.set(SENDING), CreditNoteItem.email_token.set(token),
                        CreditNoteItem.email_lease_until.set(lease_until)],
                       CreditNoteItem.SK.exists() & (CreditNoteItem.emailed.does_not_exist()
                                                     | ((CreditNoteItem.emailed == SENDING)
                                                        & lease_free(CreditNoteItem.email_lease_until, now))))

    def email_done(self, note: CreditNote, token: str, message_id: str | None) -> None:
        actions = [CreditNoteItem.emailed.set(SENT if message_id else NO_RECIPIENT),
                   CreditNoteItem.email_lease_until.remove()]
        if message_id:
            actions.append(CreditNoteItem.email_message_id.set(message_id))
        _update(_key(note.team_id, note.credit_note_id), actions, CreditNoteItem.email_token == token)

    def release_email(self, note: CreditNote, token: str) -> None:
        _update(_key(note.team_id, note.credit_note_id),
                [CreditNoteItem.email_lease_until.remove(), CreditNoteItem.email_token.remove()],
                CreditNoteItem.email_token == token)
