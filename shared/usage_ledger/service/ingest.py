"""Usage events in: accept a request's events (POST /v1/events), then count each once and debit it.

accept: every event refers to a catalogue resource and an existing team, or nothing is taken.
apply (one SQS message): claim the events, then per team and resource load the ledger, decide
with `domain.ledger.apply_usage`, commit; a commit that lost a race re-reads and decides again.
A message that cannot be applied whole never takes valid events with it: an event that could not
be stored, or a (team, resource) group that fails for a reason a retry would meet again, is set
aside where an operator sees it (IngestStore.set_aside, a log line, the EventsSetAside metric)
and the rest is counted; a failure a retry may not meet (throttling, a conflict, the service or
the network) fails the message after the other groups are applied, for SQS to redeliver it.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from usage_ledger import clock, retry
from usage_ledger.domain.commands import RecordUsage
from usage_ledger.domain.errors import Contended, FieldError, LedgerError, ValidationFailed
from usage_ledger.domain.ledger import apply_usage
from usage_ledger.domain.model import UsageEvent
from usage_ledger.domain.text import shown, unstorable_fields
from usage_ledger.service.ports import Commit, EventQueue, IngestStore, LedgerStore

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


def _describe(error: BaseException) -> str:
    return shown(f"{type(error).__name__}: {error}", 1000)


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
        """Count and debit one batch's events; raises RetryLater when some group should be retried."""
        now = now or clock.now()
        found = [(event, unstorable_fields(event)) for event in events]
        unstorable = [event for event, fields in found if fields]
        if unstorable:  # the edge refuses these; a message written before it did cannot be keyed
            names = sorted({name for _, fields in found for name in fields})
            self._set_aside(batch_id, None, None, unstorable, f"not valid Unicode: {', '.join(names)}", now)
            events = [event for event, fields in found if not fields]
        owned = self.store.claim(batch_id, events, now)
        groups: dict[tuple[str, str], list[UsageEvent]] = defaultdict(list)
        for event in owned:
            groups[(event.team_id, event.resource_id)].append(event)
        counted, set_aside, retry = 0, len(unstorable), None
        for (team_id, resource_id), group in sorted(groups.items()):
            # a deterministic order: the same message replayed debits the same way
            group.sort(key=lambda event: (event.time, event.source, event.id))
            try:
                self._apply(batch_id, team_id, resource_id, group, now)
            except Exception as error:  # noqa: BLE001 - sorted below: retry the message, or set the group aside
                if isinstance(error, Contended) or self.store.must_retry(error):
                    logger.warning("applying a group failed; the message will be retried",
                                   extra={"batch_id": batch_id, "team_id": team_id, "resource_id": resource_id,
                                          "reason": _describe(error)})
                    retry = retry or error
                    continue
                self._set_aside(batch_id, team_id, resource_id, group, _describe(error), now)
                set_aside += len(group)
                continue
            counted += len(group)
        applied = Applied(counted=counted, duplicates=len(events) - len(owned), set_aside=set_aside)
        if retry is not None:
            raise RetryLater(f"will retry: {_describe(retry)}", applied) from retry
        return applied

    def _set_aside(self, batch_id: str, team_id: str | None, resource_id: str | None, events: list[UsageEvent],
                   reason: str, now: datetime) -> None:
        self.store.set_aside(batch_id, team_id, resource_id, events, reason, now)
        logger.error("events set aside: they could not be applied and the rest of the message was counted",
                     extra={"batch_id": batch_id, "team_id": team_id, "resource_id": resource_id,
                            "events": len(events), "reason": reason})

    def _apply(self, batch_id: str, team_id: str, resource_id: str, events: list[UsageEvent], now: datetime) -> None:
        resource = self.ledger.resource(resource_id)
        if resource is None:
            raise LedgerError(f"resource {resource_id!r} left the catalogue")
        for _ in retry.attempts(APPLY_ATTEMPTS):
            ledger = self.ledger.load_team(team_id, resource_id=resource_id).ledger(resource_id)
            debit = apply_usage(ledger.state, resource, ledger.subscriptions, events, now=now,
                                closed_cycles=frozenset(ledger.closed_cycles), grace=self.grace)
            if self.store.commit(batch_id, team_id, resource, ledger, debit, events, now) is not Commit.RACED:
                break
        else:
            raise Contended("balance kept changing under us; will retry")
        self.store.commit_remaining_usage(batch_id, team_id, resource_id, events, now)
