"""Billing cycles and invoices in the ledger table: the due-cycle index, the close job's leases
and claims (every step a conditional write, so runs that crash or overlap never double-bill)."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from usage_ledger.adapters.dynamodb import keys
from usage_ledger.adapters.dynamodb.errors import CONDITION_FAILED, cancellation_codes, is_condition_failure
from usage_ledger.adapters.dynamodb.leases import lease_free
from usage_ledger.adapters.dynamodb.ledger import card_attribute, card_of
from usage_ledger.adapters.dynamodb.models import (
    CycleItem,
    IndexedKey,
    InvoiceItem,
    InvoiceLineAttribute,
    LedgerItem,
    connection,
)
from usage_ledger.adapters.dynamodb.paging import decode_cursor, encode_cursor, newest_first
from usage_ledger.domain.billing import (
    CLOSED,
    CLOSING,
    MAX_INVOICE_ID,
    NO_RECIPIENT,
    OPEN,
    PENDING,
    SENDING,
    SENT,
    Charge,
    CycleRef,
    Invoice,
    InvoiceLine,
    PaygCycle,
)


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
        purchaser_user_id=item.purchaser_user_id, purchaser_email=item.purchaser_email, payment_method=card,
        charge_id=item.charge_id, settled_at=item.settled_at, decline_code=item.decline_code,
        email_status=item.emailed,
    )


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
        purchaser_user_id=invoice.purchaser_user_id, purchaser_email=invoice.purchaser_email,
        payment_method=card_attribute(invoice.payment_method),
    )


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
        for key in IndexedKey.gsi1.query(keys.OPEN_CYCLES, IndexedKey.GSI1SK <= _instant(due_before)):
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
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.delete(_cycle_key(ref), condition=CycleItem.lease_token == token)
                transaction.save(closed)
        except TransactWriteError as error:
            if CONDITION_FAILED in cancellation_codes(error):
                return False
            raise
        return True

    # -------------------------------------------------------------- invoices

    def issue(self, invoice: Invoice) -> tuple[Invoice, bool]:
        """Put the invoice unless it exists: (it, True), or (the one stored before, False)."""
        try:
            invoice_item(invoice).save(condition=InvoiceItem.SK.does_not_exist())
            return invoice, True
        except PutError as error:
            if not is_condition_failure(error):
                raise
        stored = self.get_invoice(invoice.team_id, invoice.invoice_id)
        assert stored is not None
        return stored, False

    def get_invoice(self, team_id: str, invoice_id: str) -> Invoice | None:
        if not _is_invoice_id(invoice_id):
            return None
        try:
            item = LedgerItem.get(keys.invoice_pk(team_id), invoice_id, consistent_read=True)
        except LedgerItem.DoesNotExist:
            return None
        return invoice_of(item) if isinstance(item, InvoiceItem) else None

    def settle(self, invoice: Invoice, charge: Charge, at: datetime, token: str,
               lease_until: datetime) -> Invoice | None:
        """pending -> paid | payment_failed, and in the same write the email claim for this run (a
        pending invoice was never emailed). None when another run settled it first."""
        item = invoice_item(invoice)
        actions = [InvoiceItem.status.set(invoice.settled(charge, at).status),
                   InvoiceItem.charge_id.set(charge.charge_id), InvoiceItem.settled_at.set(at), InvoiceItem.emailed.set(SENDING),
                   InvoiceItem.email_lease_until.set(lease_until), InvoiceItem.email_token.set(token)]
        if charge.decline_code:
            actions.append(InvoiceItem.decline_code.set(charge.decline_code))
        if not _update(item, actions, InvoiceItem.status == PENDING):
            return None
        return invoice_of(item)

    def claim_email(self, invoice: Invoice, token: str, lease_until: datetime, now: datetime) -> bool:
        """Take the right to send the invoice's email; False when it was sent or another run holds it."""
        return _update(invoice_item(invoice), [InvoiceItem.emailed.set(SENDING),
                                               InvoiceItem.email_lease_until.set(lease_until),
                                               InvoiceItem.email_token.set(token)],
                       InvoiceItem.emailed.does_not_exist()
                       | ((InvoiceItem.emailed == SENDING) & lease_free(InvoiceItem.email_lease_until, now)))

    def email_sent(self, invoice: Invoice, token: str, message_id: str, at: datetime) -> None:
        _update(invoice_item(invoice), [InvoiceItem.emailed.set(SENT), InvoiceItem.email_message_id.set(message_id),
                                        InvoiceItem.emailed_at.set(at), InvoiceItem.email_lease_until.remove()],
                InvoiceItem.email_token == token)

    def email_has_no_recipient(self, invoice: Invoice, token: str) -> None:
        _update(invoice_item(invoice), [InvoiceItem.emailed.set(NO_RECIPIENT)], InvoiceItem.email_token == token)

    def release_email(self, invoice: Invoice, token: str) -> None:
        """Our send failed: the next run takes the email again at once."""
        _update(invoice_item(invoice), [InvoiceItem.emailed.remove(), InvoiceItem.email_lease_until.remove(),
                                        InvoiceItem.email_token.remove()], InvoiceItem.email_token == token)

    def list_invoices(self, team_id: str, limit: int, cursor: str | None) -> tuple[list[Invoice], str | None]:
        """Newest first (ids sort by period end)."""
        after = decode_cursor(cursor, team_id, _is_invoice_id) if cursor else None
        items, more = newest_first(LedgerItem, keys.invoice_pk(team_id), lambda invoice_id: invoice_id,
                                   limit=limit, after=after)
        invoices = [invoice_of(item) for item in items if isinstance(item, InvoiceItem)]
        return invoices, encode_cursor(team_id, invoices[-1].invoice_id) if more and invoices else None


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
