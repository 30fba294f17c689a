"""The two scheduled jobs, fanned out: the scheduled run only lists what is due and enqueues it in
batches (SQS); workers take the batches and close cycles / evaluate teams in parallel.

The scheduled event's `time` travels in every work item and the worker acts as of that time
(contract section 4), never its own clock; leases still run on the wall clock. A run that dies
after enqueuing half lists everything still due on its next run and enqueues it again; an item
enqueued twice is done once (the cycle's lease and conditional writes, the notices' claims).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TypeVar

from aws_lambda_powertools import Logger

from usage_ledger import clock
from usage_ledger.domain.billing import CycleRef, InvoiceRef
from usage_ledger.domain.calendar import iso, parse_instant
from usage_ledger.service.alerting import Alerting, Outcome
from usage_ledger.service.billing import Billing, CloseSummary
from usage_ledger.service.ports import WorkQueue

logger = Logger(child=True)

CLOSE_CYCLES = "close_cycles"
COLLECT_PAYMENTS = "collect_payments"  # invoice attempts (and their emails) due: retries, outages
EVALUATE_TEAMS = "evaluate_teams"
# work per message: a worker invocation takes BatchSize messages (template parameters), so these
# and the batch sizes bound one invocation's time (docs/scale.md)
CYCLES_PER_MESSAGE = 10
INVOICES_PER_MESSAGE = 10
TEAMS_PER_MESSAGE = 25
T = TypeVar("T")


def scheduled_time(event: Any) -> datetime:
    """The scheduled event's `time` (a late or retried run still acts as of its schedule), else the clock."""
    raw = event.get("time") if isinstance(event, dict) else None
    if isinstance(raw, str):
        try:
            return parse_instant(raw)
        except ValueError:
            logger.warning("event time is not RFC 3339; using the clock", extra={"time": raw})
    return clock.now()


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class WorkItemError(ValueError):
    """A work item that cannot be read: it fails (and after its retries goes to the DLQ)."""


def _item_time(item: dict[str, Any]) -> datetime:
    try:
        return parse_instant(item["time"])
    except (KeyError, TypeError, ValueError) as error:
        raise WorkItemError(f"a work item without a valid time: {error}") from error


@dataclass
class Enqueued:
    items: int = 0  # cycles or teams
    messages: int = 0


class Jobs:
    def __init__(self, billing: Billing, alerting: Alerting, billing_queue: WorkQueue,
                 alerts_queue: WorkQueue) -> None:
        self.billing, self.alerting = billing, alerting
        self.billing_queue, self.alerts_queue = billing_queue, alerts_queue

    # -------------------------------------------------------------- close billing cycles

    def enqueue_due_cycles(self, now: datetime) -> Enqueued:
        """Page the due-cycle index and the due-payments index and enqueue everything due at `now`:
        cycles CYCLES_PER_MESSAGE a message, invoices INVOICES_PER_MESSAGE a message."""
        cycles = self._enqueue(self.billing_queue, CLOSE_CYCLES, now, "cycles",
                               (asdict(ref) for ref in self.billing.due_work(now)), CYCLES_PER_MESSAGE)
        payments = self._enqueue(self.billing_queue, COLLECT_PAYMENTS, now, "invoices",
                                 (asdict(ref) for ref in self.billing.due_payments(now)), INVOICES_PER_MESSAGE)
        return Enqueued(cycles.items + payments.items, cycles.messages + payments.messages)

    def close_cycles(self, item: dict[str, Any]) -> CloseSummary:
        """One work item: close its cycles (and charge their new invoices), or make its invoices' due
        payment attempts, as of the scheduled run's time. What fails stays due (summary.failed);
        the caller fails the message so SQS retries it."""
        if item.get("kind") == COLLECT_PAYMENTS and isinstance(item.get("invoices"), list):
            return self._collect(item)
        if item.get("kind") != CLOSE_CYCLES or not isinstance(item.get("cycles"), list):
            raise WorkItemError(f"not a {CLOSE_CYCLES} or {COLLECT_PAYMENTS} work item")
        now = _item_time(item)
        summary = CloseSummary()
        for raw in item["cycles"]:
            try:
                ref = CycleRef(team_id=str(raw["team_id"]), resource_id=str(raw["resource_id"]),
                               subscription_id=str(raw["subscription_id"]), index=int(raw["index"]))
            except (KeyError, TypeError, ValueError) as error:
                raise WorkItemError(f"a cycle reference cannot be read: {error}") from error
            self.billing.close_cycle(ref, now, summary)
        return summary

    def _collect(self, item: dict[str, Any]) -> CloseSummary:
        now = _item_time(item)
        summary = CloseSummary()
        for raw in item["invoices"]:
            try:
                ref = InvoiceRef(team_id=str(raw["team_id"]), invoice_id=str(raw["invoice_id"]))
            except (KeyError, TypeError) as error:
                raise WorkItemError(f"an invoice reference cannot be read: {error}") from error
            self.billing.collect(ref, now, summary)
        return summary

    # -------------------------------------------------------------- evaluate alerts

    def enqueue_teams(self, now: datetime) -> Enqueued:
        """Page the teams to evaluate (GSI1) and enqueue them all, TEAMS_PER_MESSAGE a message."""
        return self._enqueue(self.alerts_queue, EVALUATE_TEAMS, now, "team_ids",
                             self.alerting.teams_to_evaluate(), TEAMS_PER_MESSAGE)

    def evaluate_teams(self, item: dict[str, Any]) -> Outcome:
        """One work item: evaluate its teams as of the scheduled run's time (raises
        EvaluationFailed after the others when some team failed)."""
        if item.get("kind") != EVALUATE_TEAMS or not isinstance(item.get("team_ids"), list):
            raise WorkItemError(f"not an {EVALUATE_TEAMS} work item")
        return self.alerting.evaluate(_item_time(item), [str(team_id) for team_id in item["team_ids"]])

    # --------------------------------------------------------------

    @staticmethod
    def _enqueue(queue: WorkQueue, kind: str, now: datetime, field: str, items: Iterable[Any],
                 per_message: int) -> Enqueued:
        enqueued = Enqueued()
        # ten messages a SendMessageBatch call: a run that dies midway has enqueued whole calls
        for messages in _batches(_batches(items, per_message), 10):
            queue.send([{"kind": kind, "time": iso(now), field: batch} for batch in messages])
            enqueued.messages += len(messages)
            enqueued.items += sum(len(batch) for batch in messages)
        return enqueued
