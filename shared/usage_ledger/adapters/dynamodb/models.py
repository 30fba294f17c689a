"""pynamodb models: one class per item type of the ledger table (the `entity` discriminator), the
dedupe table's markers, and a keys-only view of GSI1. Keys come from `keys.py`.

Table names come from the environment; `bind()` points every model at them before first use
(pynamodb reads `Meta.table_name` per request, so a test that deploys a new stack rebinds).
"""
from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    DiscriminatorAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.connection.table import TableConnection
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from usage_ledger.adapters import aws
from usage_ledger.adapters.dynamodb.attributes import ExactDecimalAttribute, InstantAttribute, IntMapAttribute
from usage_ledger.adapters.dynamodb.keys import GSI1

UNBOUND = "unbound"  # a request before bind() fails loudly on this table name


class _Meta:
    table_name = UNBOUND
    max_retry_attempts = 4  # botocore "standard" retries, with backoff, for throttling and 5xx


class SharedClientModel(Model):
    """Every DynamoDB request of a container, pynamodb's included, goes through the one botocore
    client of `adapters.aws` (its retry policy; hooks on it see every call: the bench meter, fault
    injection in tests)."""

    @classmethod
    def _get_connection(cls) -> TableConnection:
        table = super()._get_connection()
        table.connection._client = aws.client("dynamodb")
        return table


def connection() -> Connection:
    """A pynamodb connection on the shared client, for transactions across models."""
    shared = Connection()
    shared._client = aws.client("dynamodb")
    return shared


class LedgerItem(SharedClientModel):
    """Every item of LedgerTable: PK, SK and what kind of item it is."""

    class Meta(_Meta):
        pass

    PK = UnicodeAttribute(hash_key=True)
    SK = UnicodeAttribute(range_key=True)
    entity = DiscriminatorAttribute()


class Gsi1(GlobalSecondaryIndex):
    class Meta:
        index_name = GSI1
        projection = KeysOnlyProjection()

    GSI1PK = UnicodeAttribute(hash_key=True)
    GSI1SK = UnicodeAttribute(range_key=True)


class IndexedKey(SharedClientModel):
    """The keys GSI1 holds (KEYS_ONLY): read without the discriminator's filter, which the index lacks."""

    class Meta(_Meta):
        pass

    PK = UnicodeAttribute(hash_key=True)
    SK = UnicodeAttribute(range_key=True)
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)
    gsi1 = Gsi1()


class ResourceItem(LedgerItem, discriminator="resource"):
    resource_id = UnicodeAttribute()
    kind = UnicodeAttribute()
    display_name = UnicodeAttribute()
    unit = UnicodeAttribute()
    charge_unit_size = ExactDecimalAttribute()
    low_balance_percent = ExactDecimalAttribute()


class TeamItem(LedgerItem, discriminator="team"):
    team_id = UnicodeAttribute()
    name = UnicodeAttribute()
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)


class MemberItem(LedgerItem, discriminator="member"):
    team_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    email = UnicodeAttribute()
    roles = ListAttribute(of=UnicodeAttribute, default=list)
    full_access = BooleanAttribute(default=False)
    GSI1PK = UnicodeAttribute(null=True)  # USER#<user_id>: the user's teams (GET /v1/me)
    GSI1SK = UnicodeAttribute(null=True)


class AppItem(LedgerItem, discriminator="app"):
    team_id = UnicodeAttribute()
    app_id = UnicodeAttribute()
    name = UnicodeAttribute()
    owner_user_id = UnicodeAttribute()


class SubscriptionIdItem(LedgerItem, discriminator="subscription_id"):
    resource_id = UnicodeAttribute()


class CardAttribute(MapAttribute):
    id = UnicodeAttribute(null=True)  # the processor's PaymentMethod (absent on data from before Stripe)
    brand = UnicodeAttribute()
    last4 = UnicodeAttribute()
    exp_month = NumberAttribute()
    exp_year = NumberAttribute()


class SubscriptionItem(LedgerItem, discriminator="subscription"):
    team_id = UnicodeAttribute()
    subscription_id = UnicodeAttribute()
    resource_id = UnicodeAttribute()
    type = UnicodeAttribute()
    quantity = NumberAttribute(null=True)
    starts_at = InstantAttribute()
    ends_at = InstantAttribute(null=True)
    refresh_period = UnicodeAttribute(null=True)
    purchased_at = InstantAttribute(null=True)
    timezone = UnicodeAttribute(null=True)
    unit_amount = NumberAttribute(null=True)
    currency = UnicodeAttribute(null=True)
    purchaser_user_id = UnicodeAttribute(null=True)
    payment_method = CardAttribute(null=True)
    customer_id = UnicodeAttribute(null=True)
    past_due = UnicodeSetAttribute(null=True)  # invoice ids; written with the invoice's status change
    # the highest cycle index a close run closed, written with the close: the cycle leaves RES#, and
    # ingest still learns from its one Query that it is closed (and so is every earlier one)
    closed_through = NumberAttribute(null=True)
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)


class BalanceItem(LedgerItem, discriminator="balance"):
    team_id = UnicodeAttribute()
    resource_id = UnicodeAttribute()
    kind = UnicodeAttribute()
    usage_total = ExactDecimalAttribute()
    pending_usage = ExactDecimalAttribute()
    charged_units = NumberAttribute()
    consumed = IntMapAttribute()  # "<subscription_id>@<period start>" -> units debited
    retired_units = NumberAttribute(default=0)  # debited from periods pruned from `consumed`
    payg_units = NumberAttribute()
    shortfall_units = NumberAttribute()
    daily_units = IntMapAttribute()  # UTC day -> charged units (the projection's window)
    version = VersionAttribute()  # every write is conditional on the version it read
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)


class CycleItem(LedgerItem, discriminator="cycle"):
    team_id = UnicodeAttribute()
    resource_id = UnicodeAttribute()
    subscription_id = UnicodeAttribute()
    cycle_index = NumberAttribute()
    cycle_start = UnicodeAttribute()
    cycle_end = UnicodeAttribute()
    ends_at = InstantAttribute()
    status = UnicodeAttribute()
    charged_units = NumberAttribute(default=0)
    lease_until = InstantAttribute(null=True)
    lease_token = UnicodeAttribute(null=True)
    invoice_id = UnicodeAttribute(null=True)
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)


class InvoiceLineAttribute(MapAttribute):
    resource_id = UnicodeAttribute()
    charged_units = NumberAttribute()
    unit_amount = NumberAttribute()
    amount = NumberAttribute()


class AttemptAttribute(MapAttribute):
    number = NumberAttribute()
    at = InstantAttribute()
    succeeded = BooleanAttribute()
    charge_id = UnicodeAttribute(null=True)
    decline_code = UnicodeAttribute(null=True)


class RefundAttribute(MapAttribute):
    id = UnicodeAttribute()
    amount = NumberAttribute()
    status = UnicodeAttribute()


class CreditNoteSummaryAttribute(MapAttribute):
    credit_note_id = UnicodeAttribute()
    number = NumberAttribute()
    amount = NumberAttribute()
    reason = UnicodeAttribute()
    issued_at = InstantAttribute()
    refund = RefundAttribute(null=True)  # copied from the credit note once the processor refunded


class InvoiceItem(LedgerItem, discriminator="invoice"):
    invoice_id = UnicodeAttribute()
    team_id = UnicodeAttribute()
    subscription_id = UnicodeAttribute()
    resource_id = UnicodeAttribute()
    cycle_index = NumberAttribute()
    period_start = UnicodeAttribute()
    period_end = UnicodeAttribute()
    timezone = UnicodeAttribute(null=True)
    lines = ListAttribute(of=InvoiceLineAttribute)
    total = NumberAttribute()
    currency = UnicodeAttribute()
    status = UnicodeAttribute()
    issued_at = InstantAttribute()
    team_name = UnicodeAttribute()
    resource_name = UnicodeAttribute()
    unit = UnicodeAttribute()
    charge_unit_size = ExactDecimalAttribute(null=True)  # absent on invoices issued before it was kept
    rolled_over_usage = ExactDecimalAttribute(null=True)
    purchaser_user_id = UnicodeAttribute(null=True)
    purchaser_email = UnicodeAttribute(null=True)
    payment_method = CardAttribute()
    charge_id = UnicodeAttribute(null=True)
    settled_at = InstantAttribute(null=True)
    decline_code = UnicodeAttribute(null=True)
    number = NumberAttribute(null=True)  # the team's gapless sequence (InvoiceCounterItem)
    attempt_count = NumberAttribute(default=0)
    attempts = ListAttribute(of=AttemptAttribute, default=list)
    next_payment_attempt = InstantAttribute(null=True)
    paid_at = InstantAttribute(null=True)
    paid_with = CardAttribute(null=True)  # the card of the attempt that paid it
    # the attempt claim: attempt `claim_attempt` is being charged under a run's lease; it stays
    # after a release (an outage), so whoever makes that attempt next asks the processor first
    claim_attempt = NumberAttribute(null=True)
    claim_token = UnicodeAttribute(null=True)
    claim_until = InstantAttribute(null=True)
    # the email claim of attempt `email_attempt`: "sending" under a run's lease, then "sent" or
    # "no_recipient"; the next attempt's email takes it again (one email per attempt)
    email_attempt = NumberAttribute(null=True)
    emailed = UnicodeAttribute(null=True)
    email_lease_until = InstantAttribute(null=True)
    email_token = UnicodeAttribute(null=True)
    email_message_id = UnicodeAttribute(null=True)
    emailed_at = InstantAttribute(null=True)
    # its credit notes (CreditNoteItem), appended with `credited` in the credit note's transaction;
    # a refund is read from the credit note itself
    credited = NumberAttribute(null=True)
    credit_notes = ListAttribute(of=CreditNoteSummaryAttribute, null=True)
    # the due-payments index (keys.PAYMENTS_DUE): when the close job next has work on it
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)


class InvoiceCounterItem(LedgerItem, discriminator="invoice_counter"):
    """The last number a team issued in one sequence (invoices: keys.INVOICE_COUNTER_SK, credit notes:
    keys.CREDIT_NOTE_COUNTER_SK), advanced in the same transaction as each document's put."""

    last_number = NumberAttribute()


class CreditNoteItem(LedgerItem, discriminator="credit_note"):
    """A credit note (keys.credit_note_sk) in its invoice's partition, with the snapshots it renders."""

    credit_note_id = UnicodeAttribute()
    team_id = UnicodeAttribute()
    invoice_id = UnicodeAttribute()
    invoice_number = NumberAttribute(null=True)
    number = NumberAttribute()
    amount = NumberAttribute()
    currency = UnicodeAttribute()
    reason = UnicodeAttribute()
    memo = UnicodeAttribute(null=True)
    issued_at = InstantAttribute()
    invoice_status = UnicodeAttribute()  # as it was credited: paid (a refund is owed) or unpaid
    invoice_total = NumberAttribute()
    team_name = UnicodeAttribute()
    purchaser_email = UnicodeAttribute(null=True)
    timezone = UnicodeAttribute(null=True)
    period_start = UnicodeAttribute()
    period_end = UnicodeAttribute()
    payment_method = CardAttribute()
    payment_intent = UnicodeAttribute(null=True)  # the PaymentIntent refunded (paid invoices)
    refund = RefundAttribute(null=True)
    # the refund claim: taken before the processor is called; a taker after a lost claim asks the
    # processor for a refund of this credit note before refunding
    refund_token = UnicodeAttribute(null=True)
    refund_until = InstantAttribute(null=True)
    refund_claimed = BooleanAttribute(null=True)
    # the email claim: "sending" under a lease, then "sent" or "no_recipient"
    emailed = UnicodeAttribute(null=True)
    email_token = UnicodeAttribute(null=True)
    email_lease_until = InstantAttribute(null=True)
    email_message_id = UnicodeAttribute(null=True)


class AlertItem(LedgerItem, discriminator="alert"):
    team_id = UnicodeAttribute()
    alert_id = UnicodeAttribute()
    name = UnicodeAttribute()
    windows_days = ListAttribute(of=NumberAttribute)
    resource_ids = ListAttribute(of=UnicodeAttribute)
    recipient_user_ids = ListAttribute(of=UnicodeAttribute)
    config_hash = UnicodeAttribute()
    created_by = UnicodeAttribute()
    created_at = InstantAttribute()
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)


class AlertConfigItem(LedgerItem, discriminator="alert_config"):
    """Its key is the configuration's hash: a conditional put refuses a duplicate alert."""

    alert_id = UnicodeAttribute()


class NoticeStateItem(LedgerItem, discriminator="alert_state"):
    """A notice's claim (absent = armed): taken before the send, marked sent after it."""

    armed = BooleanAttribute(default=True)
    sent = BooleanAttribute(default=False)
    claim = UnicodeAttribute(null=True)
    claimed_at = InstantAttribute(null=True)
    lease_until = InstantAttribute(null=True)
    sent_at = InstantAttribute(null=True)
    message_id = UnicodeAttribute(null=True)


class SetAsideItem(LedgerItem, discriminator="set_aside"):
    """Events ingest could not apply (docs/operations.md): listed by one Query of `SETASIDE`, with
    the reason, and `message`: an events-queue message of them under their batch id (a replay)."""

    batch_id = UnicodeAttribute()
    team_id = UnicodeAttribute(null=True)
    resource_id = UnicodeAttribute(null=True)
    events = NumberAttribute()
    reason = UnicodeAttribute()
    message = UnicodeAttribute()
    message_group = UnicodeAttribute(null=True)  # the FIFO group to replay `message` in (None: unkeyable events)
    at = InstantAttribute()


class EventMarker(SharedClientModel):
    """DedupeTable: a (source, id) claimed by the batch that owns it, kept for the data's life."""

    class Meta(_Meta):
        pass

    PK = UnicodeAttribute(hash_key=True)
    batch_id = UnicodeAttribute()
    team_id = UnicodeAttribute()
    expires_at = TTLAttribute()


class ProcessorEventMarker(SharedClientModel):
    """DedupeTable: a processor (Stripe) event acted on; put if absent before acting on it."""

    class Meta(_Meta):
        pass

    PK = UnicodeAttribute(hash_key=True)
    event_type = UnicodeAttribute()
    received_at = UnicodeAttribute()
    expires_at = TTLAttribute()


class AppliedMarker(SharedClientModel):
    """DedupeTable: a (batch, team, resource, chunk) already applied."""

    class Meta(_Meta):
        pass

    PK = UnicodeAttribute(hash_key=True)
    expires_at = TTLAttribute()


def bind(ledger_table: str, dedupe_table: str) -> None:
    """Point the models at the deployed tables (the names come from the environment)."""
    LedgerItem.Meta.table_name = ledger_table
    IndexedKey.Meta.table_name = ledger_table
    EventMarker.Meta.table_name = dedupe_table
    AppliedMarker.Meta.table_name = dedupe_table
    ProcessorEventMarker.Meta.table_name = dedupe_table
