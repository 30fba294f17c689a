"""Usage events in: accept a request's events (POST /v1/events), then count each once and debit it.

accept: every event refers to a catalogue resource and an existing team, or nothing is taken; the
queue adapter sends one FIFO message per (team, resource) group of the request.
apply (one Lambda batch of SQS messages): claim each message's events under its batch id (every
message's claim in flight together), then
per team and resource fold the batch's messages into one apply: load the ledger, decide with
`domain.ledger.apply_usage`, commit once with one AppliedMarker per folded message. The FIFO
queue's message group is the (team, resource), so one worker at a time writes a balance: a commit
that still lost a race (a standard-queue message, an operator replay) re-reads and decides again.
A message that cannot be applied whole never takes valid events with it: an event that could not
be stored, or a (team, resource) group that fails for a reason a retry would meet again, is set
aside where an operator sees it (IngestStore.set_aside, a log line, the EventsSetAside metric)
and the rest is counted; a failure a retry may not meet (throttling, a conflict, the service or
the network) fails the message after the other groups are applied, for SQS to redeliver it, until
its last receive (retry.EVENTS_MAX_RECEIVES), where it is set aside too: accepted events wait for a
replay (docs/operations.md), never in a dead-letter queue's retention.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from usage_ledger import clock, retry
from usage_ledger.domain.commands import RecordUsage
from usage_ledger.domain.errors import Contended, FieldError, LedgerError, ValidationFailed
from usage_ledger.domain.ledger import apply_usage
from usage_ledger.domain.model import UsageEvent
from usage_ledger.domain.text import shown, unstorable_fields
from usage_ledger.service.ports import CannotFold, Commit, EventQueue, IngestStore, LedgerStore

logger = Logger(child=True)

APPLY_ATTEMPTS = 12
_EVENT_INDEX = re.compile(r"^\[(\d+)\]")


@dataclass(frozen=True)
class Applied:
    """What one message did: events counted now, dropped as already counted, set aside."""

    counted: int
    duplicates: int = 0
    set_aside: int = 0


class RetryLater(Contended):
    """Some group met a failure a retry may not meet: the message fails for SQS to redeliver it
    (its other groups are applied, and a redelivery finds them done)."""

    def __init__(self, detail: str, applied: Applied) -> None:
        super().__init__(detail)
        self.applied = applied


@dataclass(frozen=True)
class Message:
    """One SQS message of a Lambda batch: its SQS id (what a failure report names), the batch id
    that owns its events' claims, its events, and its FIFO message group (None on a standard queue)."""

    message_id: str
    batch_id: str
    events: list[UsageEvent]
    group: str | None = None
    receive_count: int = 1  # SQS's ApproximateReceiveCount: the last receive sets aside what fails

    @property
    def last_receive(self) -> bool:
        """Failing now would leave the message to its dead-letter queue's retention."""
        return self.receive_count >= retry.EVENTS_MAX_RECEIVES


@dataclass
class BatchOutcome:
    """What one Lambda batch did, and the ids of the messages SQS must deliver again (batch order)."""

    counted: int = 0
    duplicates: int = 0
    set_aside: int = 0
    failed: list[str] = field(default_factory=list)
    applies: int = 0  # commits attempted (one per folded (team, resource) in the steady state)
    races: int = 0  # commits that found the balance moved (version conflicts)

    @property
    def applied(self) -> Applied:
        return Applied(counted=self.counted, duplicates=self.duplicates, set_aside=self.set_aside)


def _describe(error: BaseException) -> str:
    return shown(f"{type(error).__name__}: {error}", 1000)


def _storable(events: list[UsageEvent]) -> tuple[list[UsageEvent], list[UsageEvent], str]:
    """The events that can be keyed and stored, those that cannot (not valid Unicode), and why."""
    found = [(event, unstorable_fields(event)) for event in events]
    unstorable = [event for event, fields in found if fields]
    if not unstorable:
        return events, [], ""
    names = sorted({name for _, fields in found for name in fields})
    return [event for event, fields in found if not fields], unstorable, f"not valid Unicode: {', '.join(names)}"


def _event_index(error: FieldError) -> int:
    found = _EVENT_INDEX.match(error.path)
    return int(found.group(1)) if found else -1


class Ingest:
    def __init__(self, ledger: LedgerStore, store: IngestStore, queue: EventQueue, grace: timedelta) -> None:
        self.ledger, self.store, self.queue, self.grace = ledger, store, queue, grace

    def accept(self, command: RecordUsage) -> int:
        """All or nothing: any invalid event (the edge's findings and unknown references) is a 422
        naming each; otherwise one SQS message for the request."""
        errors = list(command.invalid)
        referenced = []
        for prefix, event in command.events:
            if self.ledger.resource(event.resource_id) is None:
                errors.append(FieldError(f"{prefix}data.resource_id", "is not a catalogue resource"))
            else:
                referenced.append((prefix, event))
        known = self.ledger.existing_teams({event.team_id for _, event in referenced})
        errors.extend(FieldError(f"{prefix}subject", "is not an existing team")
                      for prefix, event in referenced if event.team_id not in known)
        if errors:
            raise ValidationFailed(sorted(errors, key=_event_index))
        events = [event for _, event in command.events]
        self.queue.send(events)
        return len(events)

    def apply_message(self, batch_id: str, events: list[UsageEvent], now: datetime | None = None) -> Applied:
        """Count and debit one message's events; raises RetryLater when some group should be retried."""
        outcome = self.apply_batch([Message(batch_id, batch_id, events)], now)
        if outcome.failed:
            raise RetryLater("will retry: a group could not be applied now", outcome.applied)
        return outcome.applied

    def apply_batch(self, messages: list[Message], now: datetime | None = None) -> BatchOutcome:
        """Count and debit one Lambda batch: each message's events claimed under its batch id, then
        one apply per (team, resource) over every message of the batch that holds it.

        Failures keep FIFO order: once a message of a message group fails, every later message of
        that group in the batch fails too (SQS then redelivers them in order, and a redelivery finds
        what was applied by its markers). A group that fails for a reason a retry would meet again
        is set aside (per message, under its batch id) and its messages succeed."""
        now = now or clock.now()
        outcome = BatchOutcome()
        failed: set[str] = set()
        blocked: set[str] = set()  # message groups with a failed message: their later messages wait
        # (team, resource) -> [(message, its owned events of that group)] in batch order
        groups: dict[tuple[str, str], list[tuple[Message, list[UsageEvent]]]] = defaultdict(list)
        duplicates_of: dict[str, str] = {}  # a message whose batch came earlier in this batch -> that one
        # every message's claim in flight together (different items); then each taken in batch order
        storable = [_storable(message.events) for message in messages]
        claims = self.store.claim_all([(message.batch_id, events) for message, (events, _, _) in
                                       zip(messages, storable, strict=True)], now)
        for message, (events, unstorable, reason), owned in zip(messages, storable, claims, strict=True):
            if message.group is not None and message.group in blocked:
                failed.add(message.message_id)  # its claims stay its batch's: a redelivery re-takes them
                continue
            if unstorable:  # the edge refuses these; a message written before it did cannot be keyed
                self._set_aside(message.batch_id, None, None, unstorable, reason, now)
                outcome.set_aside += len(unstorable)
            if isinstance(owned, Exception):  # the message (and its group's later ones) comes back
                if message.last_receive:  # per (team, resource), unclaimed: a replay claims them
                    unclaimed: dict[tuple[str, str], list[UsageEvent]] = defaultdict(list)
                    for event in events:
                        unclaimed[(event.team_id, event.resource_id)].append(event)
                    for (team_id, resource_id), group in sorted(unclaimed.items()):
                        self._set_aside(message.batch_id, team_id, resource_id, group, _describe(owned), now)
                    outcome.set_aside += len(events)
                    continue
                logger.warning("claiming a message's events failed; it will be retried",
                               extra={"batch_id": message.batch_id, "reason": _describe(owned)})
                self._fail(message, failed, blocked)
                continue
            outcome.duplicates += len(events) - len(owned)
            by_key: dict[tuple[str, str], list[UsageEvent]] = defaultdict(list)
            for event in owned:
                by_key[(event.team_id, event.resource_id)].append(event)
            for key, part_events in by_key.items():
                same = next((part for part in groups[key] if part[0].batch_id == message.batch_id), None)
                if same is None:
                    groups[key].append((message, part_events))
                    continue
                # the same batch twice in one Lambda batch (a replay sent twice, a redrive next to
                # its original): its claims are its own both times, so its events count once
                seen = {(event.source, event.id) for event in same[1]}
                same[1].extend(event for event in part_events if (event.source, event.id) not in seen)
                duplicates_of[message.message_id] = same[0].message_id
        for (team_id, resource_id), parts in sorted(groups.items()):
            try:
                self._apply_parts(team_id, resource_id, [(m.batch_id, events) for m, events in parts], now, outcome)
            except Exception as error:  # noqa: BLE001 - sorted below: retry the messages, or set the group aside
                if isinstance(error, Contended) or self.store.must_retry(error):
                    retrying = [message for message, _ in parts if not message.last_receive]
                    if retrying:
                        logger.warning("applying a group failed; its messages will be retried",
                                       extra={"team_id": team_id, "resource_id": resource_id,
                                              "batch_ids": [m.batch_id for m in retrying],
                                              "reason": _describe(error)})
                    for message in retrying:
                        self._fail(message, failed, blocked)
                    # a message on its last receive is set aside with the reason, never left to the DLQ
                    parts = [(message, events) for message, events in parts if message.last_receive]
                for message, events in parts:
                    self._set_aside(message.batch_id, team_id, resource_id, events, _describe(error), now)
                    outcome.set_aside += len(events)
                continue
            outcome.counted += sum(len(events) for _, events in parts)
        # a message after a failed one of its group fails too, even if its own events went through
        failed.update(duplicate for duplicate, first in duplicates_of.items() if first in failed)
        failed_groups: set[str] = set()
        for message in messages:
            if message.message_id in failed or (message.group is not None and message.group in failed_groups):
                outcome.failed.append(message.message_id)
                if message.group is not None:
                    failed_groups.add(message.group)
        return outcome

    @staticmethod
    def _fail(message: Message, failed: set[str], blocked: set[str]) -> None:
        failed.add(message.message_id)
        if message.group is not None:
            blocked.add(message.group)

    def _apply_parts(self, team_id: str, resource_id: str, parts: list[tuple[str, list[UsageEvent]]],
                     now: datetime, outcome: BatchOutcome) -> None:
        """One commit for every part (batch id, events) when they fit one transaction; else halves."""
        if len(parts) == 1:
            self._apply(parts[0][0], team_id, resource_id, parts[0][1], now, outcome)
            return
        try:
            self._apply_folded(team_id, resource_id, parts, now, outcome)
        except CannotFold:
            middle = len(parts) // 2
            self._apply_parts(team_id, resource_id, parts[:middle], now, outcome)
            self._apply_parts(team_id, resource_id, parts[middle:], now, outcome)

    def _apply_folded(self, team_id: str, resource_id: str, parts: list[tuple[str, list[UsageEvent]]],
                      now: datetime, outcome: BatchOutcome) -> None:
        resource = self._resource(resource_id)
        for _ in retry.attempts(APPLY_ATTEMPTS):
            if len(parts) == 1:
                self._apply(parts[0][0], team_id, resource_id, parts[0][1], now, outcome)
                return
            events = sorted((event for _, group in parts for event in group),
                            key=lambda event: (event.time, event.source, event.id))
            ledger = self.ledger.load_team(team_id, resource_id=resource_id).ledger(resource_id)
            debit = apply_usage(ledger.state, resource, ledger.subscriptions, events, now=now,
                                closed_cycles=ledger.closed(), grace=self.grace)
            batch_ids = [batch_id for batch_id, _ in parts]
            outcome.applies += 1
            result = self.store.commit(batch_ids[0], team_id, resource, ledger, debit, events, now,
                                       also=batch_ids[1:])
            if result is Commit.APPLIED:
                return
            if result is Commit.ALREADY_APPLIED:  # a redelivery: some parts were committed before
                done = self.store.applied_batches(batch_ids, team_id, resource_id)
                for batch_id, group in parts:
                    if batch_id in done:  # a part applied alone may still owe its remaining aggregates
                        self.store.commit_remaining_usage(batch_id, team_id, resource_id, group, now)
                parts = [(batch_id, group) for batch_id, group in parts if batch_id not in done]
                if not parts:
                    return
                continue
            outcome.races += 1
        raise Contended("balance kept changing under us; will retry")

    def _resource(self, resource_id: str) -> Any:
        resource = self.ledger.resource(resource_id)
        if resource is None:
            raise LedgerError(f"resource {resource_id!r} left the catalogue")
        return resource

    def _set_aside(self, batch_id: str, team_id: str | None, resource_id: str | None, events: list[UsageEvent],
                   reason: str, now: datetime) -> None:
        self.store.set_aside(batch_id, team_id, resource_id, events, reason, now)
        logger.error("events set aside: they could not be applied and the rest of the message was counted",
                     extra={"batch_id": batch_id, "team_id": team_id, "resource_id": resource_id,
                            "events": len(events), "reason": reason})

    def _apply(self, batch_id: str, team_id: str, resource_id: str, events: list[UsageEvent], now: datetime,
               outcome: BatchOutcome | None = None) -> None:
        resource = self._resource(resource_id)
        # a deterministic order: the same message replayed debits the same way
        events = sorted(events, key=lambda event: (event.time, event.source, event.id))
        for _ in retry.attempts(APPLY_ATTEMPTS):
            ledger = self.ledger.load_team(team_id, resource_id=resource_id).ledger(resource_id)
            debit = apply_usage(ledger.state, resource, ledger.subscriptions, events, now=now,
                                closed_cycles=ledger.closed(), grace=self.grace)
            if outcome is not None:
                outcome.applies += 1
            if self.store.commit(batch_id, team_id, resource, ledger, debit, events, now) is not Commit.RACED:
                break
            if outcome is not None:
                outcome.races += 1
        else:
            raise Contended("balance kept changing under us; will retry")
        self.store.commit_remaining_usage(batch_id, team_id, resource_id, events, now)
