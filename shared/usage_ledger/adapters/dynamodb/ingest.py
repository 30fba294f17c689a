"""The ingest commit: claim each (source, id) once, then write one debit per (batch, team, resource).

1. claim: one EventMarker per (source, id), put with `attribute_not_exists(PK) OR batch_id = :this`
   (100 per transaction). The owner is the batch id that POST /v1/events wrote into the message
   (stable across redeliveries and DLQ redrives); a marker owned by another batch is a duplicate.
   A Lambda batch's claims are in flight together (`claim_all`): they write different items, so
   a batch waits for one claim round trip instead of one per message (docs/scale.md).
2. commit: one transaction of an AppliedMarker for (batch, team, resource), the balance
   (conditional on the version it was read at), the payg cycles (conditional on being open, or for
   a new one on not having been closed and moved out already) and the usage aggregates;
   aggregates that do not fit follow in chunks, each under its own marker.
A crash between any two writes and a redelivery replay both steps: the claim is re-taken by the
same batch, and an AppliedMarker that exists means "already done".
3. set aside: events that could not be applied (a SetAsideItem per batch, team and resource),
   holding a message of them under their batch id: sent to the events queue again, it re-takes
   their claims and applies what is missing.
"""
from __future__ import annotations

import contextvars
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from usage_ledger import retry
from usage_ledger.adapters import aws
from usage_ledger.adapters.dynamodb import errors, keys
from usage_ledger.adapters.dynamodb.errors import CONDITION_FAILED, cancellation_codes, lost_a_race
from usage_ledger.adapters.dynamodb.models import (
    AppliedMarker,
    BalanceItem,
    CycleItem,
    EventMarker,
    SetAsideItem,
    connection,
)
from usage_ledger.adapters.dynamodb.usage import UsageStore
from usage_ledger.adapters.queue import encode_message, message_group
from usage_ledger.domain.billing import OPEN
from usage_ledger.domain.calendar import cycle_by_index, iso
from usage_ledger.domain.errors import Contended, LedgerError
from usage_ledger.domain.ledger import Debit, ResourceLedger
from usage_ledger.domain.model import Resource, UsageEvent
from usage_ledger.service.ports import CannotFold, Commit

logger = Logger(child=True)

DEDUPE_RETENTION = timedelta(days=25 * 31)  # each (source, id) counts once for 24 months
# as long as the claims: a batch re-takes its own claims whenever it comes back (a DLQ redrive,
# restarting the message's retention there; a set-aside replay, at any time), and only its
# applied markers then stop it from counting twice
APPLIED_RETENTION = DEDUPE_RETENTION
MAX_TRANSACTION_ITEMS = 100  # DynamoDB's limit
# aggregate items that ride in the balance transaction; the rest go in their own transactions
FIRST_CHUNK_AGGREGATES = 60
CLAIM_ATTEMPTS = 8
# claims in flight at once: a FIFO Lambda batch holds at most 10 messages (a standard queue's
# batch waits for more than one round trip only past 10 messages)
CLAIM_CONCURRENCY = 10
_claimers: ThreadPoolExecutor | None = None  # one pool per container, built on first use


def _claim_pool() -> ThreadPoolExecutor:
    global _claimers
    if _claimers is None:
        _claimers = ThreadPoolExecutor(max_workers=CLAIM_CONCURRENCY, thread_name_prefix="claim")
    return _claimers


class _Transaction(TransactWrite):
    """pynamodb's TransactWrite that also takes low-level updates (the usage aggregates)."""

    def update_raw(self, update: dict[str, Any]) -> None:
        self._update_items.append(update)

    def commit(self) -> None:
        self._commit()


def _claim_put(table: str, pk: str, batch_id: str, team_id: str, expires: str) -> dict[str, Any]:
    """One EventMarker put, conditional on the marker being new or this batch's, as a low-level
    transaction item: built as plain data, since pynamodb's model and condition objects cost
    ~0.14 CPU-seconds per 1,000 claims, most of a hot group's CPU (docs/scale.md)."""
    return {"Put": {
        "TableName": table,
        "Item": {"PK": {"S": pk}, "batch_id": {"S": batch_id}, "team_id": {"S": team_id}, "expires_at": {"N": expires}},
        "ConditionExpression": "attribute_not_exists(PK) OR batch_id = :batch",
        "ExpressionAttributeValues": {":batch": {"S": batch_id}},
    }}


class IngestStore:
    def __init__(self, usage: UsageStore) -> None:
        self.usage = usage

    def claim_all(self, claims: Sequence[tuple[str, list[UsageEvent]]],
                  now: datetime) -> list[list[UsageEvent] | Exception]:
        """`claim` for each (batch id, events), all in flight together; per claim, in order, the
        events its batch owns or the error that stopped it. Two claims of one (source, id) race
        on its marker: one owns it, the other finds a duplicate (or a conflict, and retries)."""
        if len(claims) == 1:
            return [self._claim_or_error(*claims[0], now)]
        pool = _claim_pool()
        futures = [pool.submit(contextvars.copy_context().run, self._claim_or_error, batch_id, events, now)
                   for batch_id, events in claims]
        return [future.result() for future in futures]

    def _claim_or_error(self, batch_id: str, events: list[UsageEvent], now: datetime) -> list[UsageEvent] | Exception:
        try:
            return self.claim(batch_id, events, now)
        except Exception as error:  # noqa: BLE001 - the caller fails this message, not the batch
            return error

    def claim(self, batch_id: str, events: list[UsageEvent], now: datetime) -> list[UsageEvent]:
        """Take ownership of each (source, id) for this batch; return the events it owns."""
        first_by_key: dict[str, UsageEvent] = {}
        for event in events:
            first_by_key.setdefault(keys.event_marker_pk(event.source, event.id), event)
        table, expires = EventMarker.Meta.table_name, EventMarker.expires_at.serialize(now + DEDUPE_RETENTION)
        owned: list[UsageEvent] = []
        pks = list(first_by_key)
        for start in range(0, len(pks), MAX_TRANSACTION_ITEMS):
            chunk = pks[start:start + MAX_TRANSACTION_ITEMS]
            for _ in retry.attempts(CLAIM_ATTEMPTS):
                if not chunk:
                    break
                try:
                    aws.client("dynamodb").transact_write_items(TransactItems=[
                        _claim_put(table, pk, batch_id, first_by_key[pk].team_id, expires) for pk in chunk])
                    owned.extend(first_by_key[pk] for pk in chunk)
                    break
                except ClientError as error:
                    codes = cancellation_codes(error)
                    if not lost_a_race(codes):  # not a duplicate, a conflict or throttling: the data's
                        raise
                    # one reason per item when DynamoDB gives them; none at all otherwise
                    duplicates = {pk for pk, code in zip(chunk, codes, strict=False) if code == CONDITION_FAILED}
                    if duplicates:
                        logger.info("duplicate events dropped", extra={"count": len(duplicates)})
                    # without duplicates it was a conflicting transaction: back off and try again
                    chunk = [pk for pk in chunk if pk not in duplicates]
            else:
                raise Contended("could not claim events; will retry")
        return owned

    def commit(self, batch_id: str, team_id: str, resource: Resource, ledger: ResourceLedger, debit: Debit,
               events: list[UsageEvent], now: datetime, *, also: Sequence[str] = ()) -> Commit:
        """The debit, its cycles and the first usage aggregates, in one transaction. `also`: more
        batches folded into this debit (one marker each); a fold must fit whole, with no chunks after."""
        resource_id = resource.resource_id
        state = debit.state
        balance = BalanceItem(
            keys.team_pk(team_id), keys.balance_sk(resource_id), team_id=team_id, resource_id=resource_id,
            kind=resource.kind, usage_total=state.usage_total, pending_usage=state.pending_usage,
            charged_units=state.charged_units, consumed=state.consumed, retired_units=state.retired_units,
            payg_units=state.payg_units,
            shortfall_units=state.shortfall_units, daily_units=state.daily_units,
        )
        if ledger.has_balance:  # the version read: the write is conditional on it (else: on no item)
            balance.version = ledger.state.version
        if resource.kind == "api":  # the scheduled alert run finds api balances through GSI1
            balance.GSI1PK = keys.API_RESOURCES_INDEX
            balance.GSI1SK = keys.api_resource_gsi1sk(team_id, resource_id)
        subscriptions = {s.subscription_id: s for s in ledger.subscriptions}
        aggregates = self.usage.aggregate_updates(team_id, resource_id, events)
        markers = [batch_id, *also]
        cycles = 2 * len(debit.payg_by_cycle)  # each open cycle's update and its "not closed" check
        if also and (len(aggregates) > FIRST_CHUNK_AGGREGATES
                     or len(markers) + 1 + cycles + len(aggregates) > MAX_TRANSACTION_ITEMS):
            raise CannotFold(f"{len(markers)} batches' debit does not fit one transaction")
        aggregates = aggregates[:FIRST_CHUNK_AGGREGATES]
        if 2 + cycles + len(aggregates) > MAX_TRANSACTION_ITEMS:
            raise LedgerError("a message spans too many billing cycles to apply in one transaction")
        transaction = _Transaction(connection=connection())
        for marked in markers:  # first: a marker's condition failing means done before
            transaction.save(self._applied_marker(marked, team_id, resource_id, 0, now),
                             condition=AppliedMarker.PK.does_not_exist())
        transaction.save(balance)  # conditional on the version read (pynamodb's VersionAttribute)
        for key, units in sorted(debit.payg_by_cycle.items(), key=lambda pair: pair[0].index):
            subscription = subscriptions[key.subscription_id]
            assert subscription.purchased_at and subscription.timezone
            cycle = cycle_by_index(subscription.purchased_at, subscription.timezone, key.index, subscription.ends_at)
            item = CycleItem(keys.team_pk(team_id), keys.cycle_sk(resource_id, key.subscription_id, key.index))
            condition: Condition
            if key in ledger.cycle_units:  # read open: still open (a close moves it out of RES#)
                condition = CycleItem.status == OPEN
            else:  # a new cycle: never one the close job already moved out (a reader's late clock)
                condition = CycleItem.PK.does_not_exist()
                transaction.condition_check(
                    CycleItem, keys.closed_cycles_pk(team_id),
                    keys.closed_cycle_sk(resource_id, key.subscription_id, key.index),
                    condition=CycleItem.PK.does_not_exist())
            transaction.update(item, actions=[
                CycleItem.entity.set(CycleItem), CycleItem.team_id.set(team_id),
                CycleItem.resource_id.set(resource_id), CycleItem.subscription_id.set(key.subscription_id),
                CycleItem.cycle_index.set(key.index), CycleItem.cycle_start.set(cycle.start_date.isoformat()),
                CycleItem.cycle_end.set(cycle.end_date.isoformat()), CycleItem.ends_at.set(cycle.ends_at),
                CycleItem.status.set(CycleItem.status | OPEN),
                CycleItem.GSI1PK.set(CycleItem.GSI1PK | keys.OPEN_CYCLES), CycleItem.GSI1SK.set(iso(cycle.ends_at)),
                CycleItem.charged_units.add(units),
            ], condition=condition)
        for update in aggregates:
            transaction.update_raw(update)
        return self._commit(transaction, markers=len(markers))

    def applied_batches(self, batch_ids: Iterable[str], team_id: str, resource_id: str) -> set[str]:
        """Which of these batches' (team, resource) debits were committed: their first markers exist."""
        by_pk = {keys.applied_marker_pk(batch_id, team_id, resource_id, 0): batch_id for batch_id in batch_ids}
        return {by_pk[item.PK] for item in AppliedMarker.batch_get(list(by_pk), consistent_read=True)}

    def commit_remaining_usage(self, batch_id: str, team_id: str, resource_id: str, events: list[UsageEvent],
                               now: datetime) -> None:
        """Aggregates past the first chunk: deterministic chunks, each guarded by its own marker."""
        rest = self.usage.aggregate_updates(team_id, resource_id, events)[FIRST_CHUNK_AGGREGATES:]
        size = MAX_TRANSACTION_ITEMS - 1
        for number, start in enumerate(range(0, len(rest), size), start=1):
            for _ in retry.attempts(CLAIM_ATTEMPTS):
                transaction = _Transaction(connection=connection())
                transaction.save(self._applied_marker(batch_id, team_id, resource_id, number, now),
                                 condition=AppliedMarker.PK.does_not_exist())
                for update in rest[start:start + size]:
                    transaction.update_raw(update)
                if self._commit(transaction) is not Commit.RACED:
                    break
            else:
                raise Contended("transaction kept conflicting; will retry")

    def set_aside(self, batch_id: str, team_id: str | None, resource_id: str | None, events: list[UsageEvent],
                  reason: str, now: datetime) -> None:
        """One item per (batch, team, resource); a redelivery that fails the same way writes it again."""
        SetAsideItem(keys.SET_ASIDE_PK, keys.set_aside_sk(batch_id, team_id, resource_id), batch_id=batch_id,
                     team_id=team_id, resource_id=resource_id, events=len(events), reason=reason,
                     message=encode_message(events, batch_id),
                     message_group=message_group(team_id, resource_id) if team_id and resource_id else None,
                     at=now).save()

    @staticmethod
    def must_retry(error: BaseException) -> bool:
        return errors.must_retry(error)

    @staticmethod
    def _applied_marker(batch_id: str, team_id: str, resource_id: str, chunk: int, now: datetime) -> AppliedMarker:
        return AppliedMarker(keys.applied_marker_pk(batch_id, team_id, resource_id, chunk),
                             expires_at=now + APPLIED_RETENTION)

    @staticmethod
    def _commit(transaction: _Transaction, markers: int = 1) -> Commit:
        """The first puts are the AppliedMarkers: a condition of theirs failing means done before
        (pynamodb sends condition checks and deletes before puts)."""
        try:
            transaction.commit()
        except TransactWriteError as error:
            codes = cancellation_codes(error)
            if not lost_a_race(codes):  # invalid items: another attempt would fail the same way
                raise
            first = len(transaction._condition_check_items) + len(transaction._delete_items)
            return Commit.ALREADY_APPLIED if CONDITION_FAILED in codes[first:first + markers] else Commit.RACED
        return Commit.APPLIED
