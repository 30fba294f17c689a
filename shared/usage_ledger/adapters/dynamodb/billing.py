"""Billing cycles and invoices in the ledger table: the due-cycle index, the close job's leases
and claims (every step a conditional write, so runs that crash or overlap never double-bill)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from usage_ledger.adapters.dynamodb import keys
from usage_ledger.adapters.dynamodb.errors import (
    CONDITION_FAILED,
    cancellation_codes,
    is_condition_failure,
    lost_a_race,
)
from usage_ledger.adapters.dynamodb.leases import lease_free, take
from usage_ledger.adapters.dynamodb.ledger import card_attribute, card_of
from usage_ledger.adapters.dynamodb.models import (
    AttemptAttribute,
    CreditNoteSummaryAttribute,
    CycleItem,
    IndexedKey,
    InvoiceCounterItem,
    InvoiceItem,
    InvoiceLineAttribute,
    LedgerItem,
    RefundAttribute,
    SubscriptionItem,
    connection,
)
from usage_ledger.adapters.dynamodb.paging import decode_cursor, encode_cursor, newest_first
from usage_ledger.domain.billing import (
    CLOSED,
    CLOSING,
    MAX_INVOICE_ID,
    NO_RECIPIENT,
    OPEN,
    PAST_DUE_STATUSES,
    SENDING,
    SENT,
    Attempt,
    CreditNoteSummary,
    CycleRef,
    Invoice,
    InvoiceLine,
    InvoiceRef,
    PaygCycle,
    Refund,
)
from usage_ledger.domain.errors import Contended

MAX_RACES = 25  # re-reads of a team's invoice counter before the run gives up (the cycle stays due)


def _cycle_key(ref: CycleRef) -> CycleItem:
    return CycleItem(keys.team_pk(ref.team_id), keys.cycle_sk(ref.resource_id, ref.subscription_id, ref.index))


def cycle_of(item: CycleItem) -> PaygCycle:
    return PaygCycle(team_id=item.team_id, resource_id=item.resource_id, subscription_id=item.subscription_id,
                     index=int(item.cycle_index), start_date=item.cycle_start, end_date=item.cycle_end,
                     ends_at=item.ends_at, charged_units=int(item.charged_units or 0), status=item.status)


def invoice_of(item: InvoiceItem) -> Invoice:
    card = card_of(item.payment_method)
    assert card is not None
    return Invoice(
        invoice_id=item.invoice_id, team_id=item.team_id, subscription_id=item.subscription_id,
        resource_id=item.resource_id, cycle_index=int(item.cycle_index), period_start=item.period_start,
        period_end=item.period_end, timezone=item.timezone,
        lines=tuple(InvoiceLine(line.resource_id, int(line.charged_units), int(line.unit_amount), int(line.amount))
                    for line in item.lines),
        total=int(item.total), currency=item.currency, status=item.status, issued_at=item.issued_at,
        team_name=item.team_name, resource_name=item.resource_name, unit=item.unit,
        charge_unit_size=Decimal(1) if item.charge_unit_size is None else item.charge_unit_size,
        rolled_over_usage=item.rolled_over_usage or Decimal(0),
        purchaser_user_id=item.purchaser_user_id, purchaser_email=item.purchaser_email, payment_method=card,
        number=int(item.number) if item.number is not None else None,
        attempt_count=int(item.attempt_count or 0),
        attempts=tuple(Attempt(int(a.number), a.at, bool(a.succeeded), a.charge_id, a.decline_code)
                       for a in item.attempts or ()),
        next_payment_attempt=item.next_payment_attempt, paid_at=item.paid_at,
        charge_id=item.charge_id, settled_at=item.settled_at, decline_code=item.decline_code,
        email_status=item.emailed, email_attempt=int(item.email_attempt) if item.email_attempt is not None else None,
        paid_with=card_of(item.paid_with),
        credited=int(item.credited or 0),
        credit_notes=tuple(CreditNoteSummary(note.credit_note_id, int(note.number), int(note.amount), note.reason,
                                             note.issued_at, refund_of(note.refund))
                           for note in item.credit_notes or ()),
    )


def refund_of(attribute: RefundAttribute | None) -> Refund | None:
    return Refund(attribute.id, int(attribute.amount), attribute.status) if attribute is not None else None


def refund_attribute(refund: Refund) -> RefundAttribute:
    return RefundAttribute(id=refund.id, amount=refund.amount, status=refund.status)


def summary_attribute(note: CreditNoteSummary) -> CreditNoteSummaryAttribute:
    return CreditNoteSummaryAttribute(credit_note_id=note.credit_note_id, number=note.number, amount=note.amount,
                                      reason=note.reason, issued_at=note.issued_at,
                                      refund=refund_attribute(note.refund) if note.refund else None)


def invoice_item(invoice: Invoice) -> InvoiceItem:
    return InvoiceItem(
        keys.invoice_pk(invoice.team_id), invoice.invoice_id, invoice_id=invoice.invoice_id,
        team_id=invoice.team_id, subscription_id=invoice.subscription_id, resource_id=invoice.resource_id,
        cycle_index=invoice.cycle_index, period_start=invoice.period_start, period_end=invoice.period_end,
        timezone=invoice.timezone,
        lines=[InvoiceLineAttribute(resource_id=line.resource_id, charged_units=line.charged_units,
                                    unit_amount=line.unit_amount, amount=line.amount) for line in invoice.lines],
        total=invoice.total, currency=invoice.currency, status=invoice.status, issued_at=invoice.issued_at,
        team_name=invoice.team_name, resource_name=invoice.resource_name, unit=invoice.unit,
        charge_unit_size=invoice.charge_unit_size, rolled_over_usage=invoice.rolled_over_usage,
        purchaser_user_id=invoice.purchaser_user_id, purchaser_email=invoice.purchaser_email,
        payment_method=card_attribute(invoice.payment_method), number=invoice.number,
        attempt_count=invoice.attempt_count, attempts=_attempt_attributes(invoice),
        next_payment_attempt=invoice.next_payment_attempt, paid_at=invoice.paid_at,
        paid_with=card_attribute(invoice.paid_with) if invoice.paid_with is not None else None,
        credited=invoice.credited or None,
        credit_notes=[summary_attribute(note) for note in invoice.credit_notes] or None,
    )


def _attempt_attributes(invoice: Invoice) -> list[AttemptAttribute]:
    return [AttemptAttribute(number=a.number, at=a.at, succeeded=a.succeeded, charge_id=a.charge_id,
                             decline_code=a.decline_code) for a in invoice.attempts]


def _index_actions(invoice: Invoice) -> list[Any]:
    """The due-payments index entry of the invoice as it will stand: set to when its next work is
    due, or removed when none is left (written in the same request as what changed it)."""
    due = invoice.work_due_at()
    if due is None:
        return [InvoiceItem.GSI1PK.remove(), InvoiceItem.GSI1SK.remove()]
    return [InvoiceItem.GSI1PK.set(keys.PAYMENTS_DUE), InvoiceItem.GSI1SK.set(_instant(due))]


def _is_invoice_id(value: str) -> bool:
    return value.startswith(keys.INVOICE_PREFIX) and len(value) <= MAX_INVOICE_ID


class BillingStore:
    def __init__(self) -> None:
        # the cycles this container claimed, as the claim left them (their units are final): the
        # close moves them out of RES# without reading them again
        self._claimed: dict[tuple[CycleRef, str], CycleItem] = {}

    # -------------------------------------------------------------- cycles

    def due_cycles(self, due_before: datetime) -> Iterator[CycleRef]:
        """Open or closing cycles whose end is at or before `due_before` (GSI1, every page)."""
        for key in IndexedKey.gsi1.query(keys.OPEN_CYCLES, _instant(due_before) >= IndexedKey.GSI1SK):
            yield CycleRef(*keys.cycle_ref_of(key.PK, key.SK))

    def claim_cycle(self, ref: CycleRef, token: str, lease_until: datetime, now: datetime) -> PaygCycle | None:
        """open -> closing under this run's lease (or re-take a lease that ran out); the cycle as
        it now stands, or None while another run holds it."""
        item = _cycle_key(ref)
        takeable = (CycleItem.status == OPEN) | ((CycleItem.status == CLOSING) & lease_free(CycleItem.lease_until, now))
        updated = _update(item, [CycleItem.status.set(CLOSING), CycleItem.lease_until.set(lease_until),
                                 CycleItem.lease_token.set(token)], CycleItem.SK.exists() & takeable)
        if not updated:
            return None
        self._claimed[(ref, token)] = item
        return cycle_of(item)

    def release_cycle(self, ref: CycleRef, token: str) -> None:
        """Give up this run's lease so the next run retries the cycle at once (it stays closing)."""
        self._claimed.pop((ref, token), None)
        _update(_cycle_key(ref), [CycleItem.lease_until.remove(), CycleItem.lease_token.remove()],
                CycleItem.lease_token == token)

    def close_cycle(self, ref: CycleRef, token: str, invoice_id: str | None) -> bool:
        """closing -> closed, out of the due-cycle index and out of the team's `RES#` range: one
        transaction deletes the cycle under this run's lease and puts it, closed and with its
        invoice id, under `TEAM#<team>#CYCLE` (keys.closed_cycle_sk); False when the lease was lost."""
        item = self._claimed.pop((ref, token), None)
        if item is None:  # claimed elsewhere: read it (the transaction still checks the lease)
            try:
                item = CycleItem.get(keys.team_pk(ref.team_id), keys.cycle_sk(ref.resource_id, ref.subscription_id,
                                                                              ref.index), consistent_read=True)
            except CycleItem.DoesNotExist:
                return False
        closed = CycleItem(keys.closed_cycles_pk(ref.team_id),
                           keys.closed_cycle_sk(ref.resource_id, ref.subscription_id, ref.index),
                           team_id=item.team_id, resource_id=item.resource_id, subscription_id=item.subscription_id,
                           cycle_index=item.cycle_index, cycle_start=item.cycle_start, cycle_end=item.cycle_end,
                           ends_at=item.ends_at, status=CLOSED, charged_units=item.charged_units,
                           invoice_id=invoice_id or item.invoice_id)
        subscription = SubscriptionItem(keys.team_pk(ref.team_id),
                                        keys.subscription_sk(ref.resource_id, ref.subscription_id))
        later_closed = SubscriptionItem.closed_through.exists() & (SubscriptionItem.closed_through >= ref.index)
        for watermark in (True, False):  # without it only when a later cycle's close already set it higher
            try:
                with TransactWrite(connection=connection()) as transaction:
                    transaction.delete(_cycle_key(ref), condition=CycleItem.lease_token == token)
                    transaction.save(closed)
                    if watermark:  # in the same write: ingest never sees the cycle gone but not closed
                        transaction.update(subscription, actions=[SubscriptionItem.closed_through.set(ref.index)],
                                           condition=SubscriptionItem.SK.exists() & ~later_closed)
                return True
            except TransactWriteError as error:
                codes = cancellation_codes(error)
                if codes[:1] == [CONDITION_FAILED]:  # the lease was lost
                    return False
                if not (watermark and codes[2:3] == [CONDITION_FAILED]):
                    raise
        return False

    # -------------------------------------------------------------- invoices

    def issue(self, invoice: Invoice) -> tuple[Invoice, bool]:
        """Put the invoice unless it exists, numbered: (it, True), or (the one stored before, False).

        The number comes from the team's counter item, advanced in the same transaction as the
        put and conditioned on the value read: numbers are gapless and never repeat, however many
        runs race (the loser re-reads and tries the next number, or finds the invoice put)."""
        pk = keys.invoice_pk(invoice.team_id)
        for _ in range(MAX_RACES):
            stored = self.get_invoice(invoice.team_id, invoice.invoice_id)
            if stored is not None:
                return stored, False
            try:
                counter = InvoiceCounterItem.get(pk, keys.INVOICE_COUNTER_SK, consistent_read=True)
                last = int(counter.last_number)
            except InvoiceCounterItem.DoesNotExist:
                last = 0
            numbered = replace(invoice, number=last + 1)
            item = invoice_item(numbered)
            due = numbered.work_due_at()
            if due is not None:
                item.GSI1PK, item.GSI1SK = keys.PAYMENTS_DUE, _instant(due)
            try:
                with TransactWrite(connection=connection()) as transaction:
                    transaction.save(item, condition=InvoiceItem.SK.does_not_exist())
                    if last == 0:
                        transaction.save(InvoiceCounterItem(pk, keys.INVOICE_COUNTER_SK, last_number=1),
                                         condition=InvoiceCounterItem.SK.does_not_exist())
                    else:
                        transaction.update(InvoiceCounterItem(pk, keys.INVOICE_COUNTER_SK),
                                           actions=[InvoiceCounterItem.last_number.set(last + 1)],
                                           condition=InvoiceCounterItem.last_number == last)
                return numbered, True
            except TransactWriteError as error:
                if not lost_a_race(cancellation_codes(error)):
                    raise
        raise Contended(f"invoice {invoice.invoice_id}: the team's invoice number kept moving")

    def get_invoice(self, team_id: str, invoice_id: str) -> Invoice | None:
        if not _is_invoice_id(invoice_id):
            return None
        try:
            item = LedgerItem.get(keys.invoice_pk(team_id), invoice_id, consistent_read=True)
        except LedgerItem.DoesNotExist:
            return None
        return invoice_of(item) if isinstance(item, InvoiceItem) else None

    def due_payments(self, now: datetime) -> Iterator[InvoiceRef]:
        """Invoices whose next attempt, or pending email, is due at `now` (GSI1, every page)."""
        for key in IndexedKey.gsi1.query(keys.PAYMENTS_DUE, _instant(now) >= IndexedKey.GSI1SK):
            yield InvoiceRef(keys.team_of_invoice_pk(key.PK), key.SK)

    def claim_attempt(self, invoice: Invoice, token: str, lease_until: datetime, now: datetime) -> tuple[bool, bool]:
        """Take attempt `invoice.attempt_count + 1` under this run's lease, unless it was recorded or
        another run holds it: (taken, resumed). `resumed`: a run took this attempt before (it died, or
        met an outage) and may have charged, so the caller asks the processor before charging."""
        number = invoice.attempt_count + 1
        item = invoice_item(invoice)
        # no credit note since the invoice was read: the attempt charges the amount due it read
        condition = (InvoiceItem.SK.exists() & _attempts_made(invoice.attempt_count) & credited_is(invoice.credited)
                     & (InvoiceItem.claim_token.does_not_exist() | lease_free(InvoiceItem.claim_until, now)))
        actions = [InvoiceItem.claim_attempt.set(number), InvoiceItem.claim_token.set(token),
                   InvoiceItem.claim_until.set(lease_until)]
        before = take(item, actions, condition)
        if before is None:
            return False, False
        attempt = before.get("claim_attempt", {}).get("N")
        return True, attempt is not None and int(attempt) == number

    def release_attempt(self, invoice: Invoice, token: str) -> None:
        """The processor was unreachable: give the attempt back at once (nothing recorded). The
        claimed number stays, so the next taker asks the processor before charging."""
        _update(invoice_item(invoice), [InvoiceItem.claim_token.remove(), InvoiceItem.claim_until.remove()],
                InvoiceItem.claim_token == token)

    def record_attempt(self, recorded: Invoice, token: str, lease_until: datetime) -> Invoice | None:
        """Write the attempt's outcome under this run's claim, taking the attempt's email claim in
        the same write, and in the same transaction add the invoice to (or drop it from) its
        subscription's `past_due` set. None when the claim was lost to another run."""
        number = recorded.attempt_count
        assert recorded.settled_at is not None  # Invoice.after_attempt sets it
        emailing = replace(recorded, email_status=SENDING, email_attempt=number)
        item = invoice_item(recorded)
        actions = [
            InvoiceItem.status.set(recorded.status), InvoiceItem.attempt_count.set(number),
            InvoiceItem.attempts.set(_attempt_attributes(recorded)), InvoiceItem.settled_at.set(recorded.settled_at),
            InvoiceItem.claim_attempt.remove(), InvoiceItem.claim_token.remove(), InvoiceItem.claim_until.remove(),
            InvoiceItem.email_attempt.set(number), InvoiceItem.emailed.set(SENDING),
            InvoiceItem.email_lease_until.set(lease_until), InvoiceItem.email_token.set(token),
            *_index_actions(emailing),
        ]
        for name, value in (("next_payment_attempt", recorded.next_payment_attempt), ("paid_at", recorded.paid_at),
                            ("charge_id", recorded.charge_id or None), ("decline_code", recorded.decline_code)):
            attribute = getattr(InvoiceItem, name)
            actions.append(attribute.set(value) if value is not None else attribute.remove())
        actions.append(InvoiceItem.paid_with.set(card_attribute(recorded.paid_with)) if recorded.paid_with is not None
                       else InvoiceItem.paid_with.remove())
        subscription = SubscriptionItem(keys.team_pk(recorded.team_id),
                                        keys.subscription_sk(recorded.resource_id, recorded.subscription_id))
        past_due = {recorded.invoice_id}
        subscription_action = (SubscriptionItem.past_due.add(past_due) if recorded.status in PAST_DUE_STATUSES
                               else SubscriptionItem.past_due.delete(past_due))
        condition = (InvoiceItem.claim_token == token) & _attempts_made(number - 1)
        for _ in range(MAX_RACES):
            try:
                with TransactWrite(connection=connection()) as transaction:
                    transaction.update(item, actions=actions, condition=condition)
                    transaction.update(subscription, actions=[subscription_action],
                                       condition=SubscriptionItem.SK.exists())
                return emailing
            except TransactWriteError as error:
                codes = cancellation_codes(error)
                if codes and codes[0] == CONDITION_FAILED:
                    return None  # our claim ran out and another run took the attempt
                if not lost_a_race(codes):
                    raise
        raise Contended(f"invoice {recorded.invoice_id}: recording attempt {number} kept conflicting")

    def claim_email(self, invoice: Invoice, token: str, lease_until: datetime, now: datetime) -> bool:
        """Take the right to send the latest attempt's email; False when it was sent or another run
        holds it."""
        number = invoice.attempt_count
        return _update(invoice_item(invoice), [InvoiceItem.email_attempt.set(number), InvoiceItem.emailed.set(SENDING),
                                               InvoiceItem.email_lease_until.set(lease_until),
                                               InvoiceItem.email_token.set(token)],
                       (InvoiceItem.attempt_count == number)
                       & (InvoiceItem.email_attempt.does_not_exist() | (InvoiceItem.email_attempt < number)
                          | ((InvoiceItem.email_attempt == number) & (InvoiceItem.emailed == SENDING)
                             & lease_free(InvoiceItem.email_lease_until, now))))

    def email_sent(self, invoice: Invoice, token: str, message_id: str, at: datetime) -> None:
        done = replace(invoice, email_status=SENT, email_attempt=invoice.attempt_count)
        _update(invoice_item(invoice), [InvoiceItem.emailed.set(SENT), InvoiceItem.email_message_id.set(message_id),
                                        InvoiceItem.emailed_at.set(at), InvoiceItem.email_lease_until.remove(),
                                        *_index_actions(done)],
                (InvoiceItem.email_token == token) & (InvoiceItem.email_attempt == invoice.attempt_count))

    def email_has_no_recipient(self, invoice: Invoice, token: str) -> None:
        done = replace(invoice, email_status=NO_RECIPIENT, email_attempt=invoice.attempt_count)
        _update(invoice_item(invoice), [InvoiceItem.emailed.set(NO_RECIPIENT), InvoiceItem.email_lease_until.remove(),
                                        *_index_actions(done)],
                (InvoiceItem.email_token == token) & (InvoiceItem.email_attempt == invoice.attempt_count))

    def release_email(self, invoice: Invoice, token: str) -> None:
        """Our send failed: the next run takes the email again at once (the invoice stays due)."""
        _update(invoice_item(invoice), [InvoiceItem.email_lease_until.remove(), InvoiceItem.email_token.remove()],
                InvoiceItem.email_token == token)

    def list_invoices(self, team_id: str, limit: int, cursor: str | None) -> tuple[list[Invoice], str | None]:
        """Newest first (ids sort by period end)."""
        after = decode_cursor(cursor, team_id, _is_invoice_id) if cursor else None
        items, more = newest_first(LedgerItem, keys.invoice_pk(team_id), lambda invoice_id: invoice_id,
                                   limit=limit, after=after, condition=LedgerItem.SK.startswith(keys.INVOICE_PREFIX))
        invoices = [invoice_of(item) for item in items if isinstance(item, InvoiceItem)]
        return invoices, encode_cursor(team_id, invoices[-1].invoice_id) if more and invoices else None


def _attempts_made(count: int) -> Any:
    """A condition: the invoice has recorded `count` attempts (an invoice from before attempts were
    counted has none)."""
    if count == 0:
        return InvoiceItem.attempt_count.does_not_exist() | (InvoiceItem.attempt_count == 0)
    return InvoiceItem.attempt_count == count


def credited_is(amount: int) -> Any:
    """A condition: the invoice's credit notes add up to `amount` (none: the attribute is absent)."""
    if amount == 0:
        return InvoiceItem.credited.does_not_exist() | (InvoiceItem.credited == 0)
    return InvoiceItem.credited == amount


def _instant(value: datetime) -> str:
    return CycleItem.ends_at.serialize(value)


def _update(item: LedgerItem, actions: list[Any], condition: Any) -> bool:
    """A conditional UpdateItem that refreshes `item` with the stored result; False when the
    condition failed."""
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as error:
        if is_condition_failure(error):
            return False
        raise
    return True
