"""A seeded simulation of the whole ledger on a moto server, and the checks of docs/invariants.md.

The seed fixes the workload (teams, subscriptions, events, duplicates, late deliveries, clock
steps) and the fault plan's dice; thread interleavings still vary from run to run, which is
the point of running workers concurrently.
"""
from __future__ import annotations

import base64
import contextvars
import email
import email.policy
import json
import random
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.exceptions import ClientError
from conftest import OPERATOR, Api, Clock, Identity, World, cloud_event
from moto.core import DEFAULT_ACCOUNT_ID
from sent_mail import sent_emails as _sent_emails

from infra.lambdas import load_handler
from infra.localstripe import create_card
from infra.pollers import StreamPoller, queue_depth, run_job, scheduled_event, sqs_run_once, sqs_sources

WORKERS = {"CloseBillingCyclesFunction": "CloseBillingCyclesWorkerFunction",
           "EvaluateAlertsFunction": "EvaluateAlertsWorkerFunction"}

ZONES = ("UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham",
         "America/St_Johns")
CATALOGUE = (  # id, kind, charge unit size
    ("minutes", "api", Decimal(20)),
    ("assets", "resource", Decimal(1)),
    ("tokens", "api", Decimal("0.5")),
    ("storage", "resource", Decimal(1000)),
)
SENDS = ("SendEmail", "SendRawEmail")  # SES; raw: the invoice with its PDF attached
WRITES = {"TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", *SENDS, "SendMessage"}
# a fault that hit between SES accepting an email and the write that records it: the one window in
# which a later run sends that email again (docs/invariants.md, I5 and I6)
UNRECORDED_SEND = "unrecorded_send"


class Crash(BaseException):
    """The Lambda runtime died here (timeout, out of memory): no `except Exception` runs after it."""


@dataclass
class SimConfig:
    seed: int
    teams: int = 4
    steps: int = 24
    events_per_step: int = 60
    workers: int = 4
    fault_rate: float = 0.02
    duplicate_rate: float = 0.1
    late_rate: float = 0.15
    # a close run whose event time is hours to days off the ingest clock (`make invoice`, a red
    # team's early close, a clock gone wrong): ahead, it closes cycles ingest still thinks open
    close_skew_rate: float = 0.5
    start: datetime = datetime(2026, 9, 25, 0, 0, tzinfo=UTC)


# ------------------------------------------------------------------ faults


class FaultPlan:
    """Injects faults into the handlers' boto3 clients through botocore's event hooks.

    Only work inside `armed()` sees faults (and the threads it hands work to): the producer's
    retries and the checks run clean.
    Kinds: throttling and cancelled transactions before a call (the call did not happen), and
    crashes before or after a write (after: the write happened, then the process died)."""

    def __init__(self, seed: int, rate: float) -> None:
        self.rng = random.Random(seed * 7919 + 17)
        self.rate = rate
        self.lock = threading.Lock()
        self.local = threading.local()  # the request a thread is sending (its operation, its email)
        # armed or not: a context variable, so work a handler hands to its own threads (the claims
        # of an ingest batch) sees faults too
        self.on: contextvars.ContextVar[bool] = contextvars.ContextVar(f"faults-{id(self)}", default=False)
        self.injected: Counter[str] = Counter()
        self.unrecorded_subjects: list[str] = []  # emails SES took whose record a fault then stopped

    def install(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-call", self._note_subject)
            client.meta.events.register("before-call", self._before)
            client.meta.events.register("after-call", self._after)

    def armed(self) -> _Armed:
        return _Armed(self)

    def _roll(self, choices: list[str]) -> str | None:
        if not self.on.get() or not choices:
            return None
        with self.lock:
            if self.rng.random() >= self.rate:
                return None
            return self.rng.choice(choices)

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        operation = model.name
        choices = ["throttle", "crash_before"]
        if operation == "TransactWriteItems":
            choices.append("conflict")
        kind = self._roll(choices)
        if kind is None:
            return
        self.injected[f"{kind}:{operation}"] += 1
        if getattr(self.local, "last", None) in SENDS:
            self._unrecorded_send()
        if kind == "crash_before":
            raise Crash(f"crashed before {operation}")
        if kind == "conflict":
            count = len(json.loads(params["body"])["TransactItems"])
            codes = ["TransactionConflict"] + ["None"] * (count - 1)
            error = ClientError({"Error": {"Code": "TransactionCanceledException",
                                           "Message": f"Transaction cancelled [{', '.join(codes)}]"},
                                 "CancellationReasons": [{"Code": code} for code in codes]}, operation)
        else:
            code = "Throttling" if operation in (*SENDS, "SendMessage") else \
                "ProvisionedThroughputExceededException"
            error = ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)
        error.injected = True  # type: ignore[attr-defined]
        raise error

    def _note_subject(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name == "SendEmail":  # a query-protocol call: the body is a dict until it is sent
            body = params.get("body") or {}
            fields = body if isinstance(body, dict) else {k: v[0] for k, v in parse_qs(body).items()}
            # the subject and the body, which names the invoice id (an invoice's subject names its number)
            self.local.subject = f"{fields.get('Message.Subject.Data', '')}\n{fields.get('Message.Body.Html.Data', '')}"
        elif model.name == "SendRawEmail":  # the subject and the text part, which names the invoice id
            body = params.get("body") or {}
            fields = body if isinstance(body, dict) else {k: v[0] for k, v in parse_qs(body).items()}
            raw = email.message_from_bytes(base64.b64decode(fields.get("RawMessage.Data", "")),
                                           policy=email.policy.default)
            text = raw.get_body(preferencelist=("plain",)) if raw.is_multipart() else None
            self.local.subject = f"{raw['Subject']}\n{text.get_content() if text else ''}"

    def _unrecorded_send(self) -> None:
        self.injected[UNRECORDED_SEND] += 1
        self.unrecorded_subjects.append(getattr(self.local, "subject", ""))

    @staticmethod
    def caused(error: BaseException) -> bool:
        """Whether a failed invocation's error is a fault this plan injected, or one the code
        raised on purpose *from* it (`raise ... from error`). An error raised while handling an
        injected fault is not excused: those handlers are what the faults are here to test. The
        `from` chain is followed to its end, and pynamodb's own `cause` (it wraps a botocore error
        twice, the outer one without `from`)."""
        cause: BaseException | None = error
        while cause is not None:
            if getattr(cause, "injected", False):
                return True
            cause = cause.__cause__ or getattr(cause, "cause", None)
        return False

    def _after(self, model: Any, **_: Any) -> None:
        self.local.last = model.name
        if model.name in WRITES and self._roll(["crash_after"]):
            self.injected[f"crash_after:{model.name}"] += 1
            if model.name in SENDS:
                self._unrecorded_send()
            raise Crash(f"crashed after {model.name}")

    def count(self, prefix: str = "") -> int:
        return sum(n for key, n in self.injected.items() if key.startswith(prefix))


class _Armed:
    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan

    def __enter__(self) -> None:
        self.token = self.plan.on.set(True)

    def __exit__(self, *exc: Any) -> None:
        self.plan.on.reset(self.token)


# ------------------------------------------------------------------ the world


@dataclass
class TeamSetup:
    team_id: str
    admin: str
    resources: list[str]
    alert_id: str | None = None


@dataclass
class Outcome:
    events_sent: int = 0
    unique_events: int = 0
    duplicates_sent: int = 0
    late_events: int = 0
    producer_retries: int = 0
    close_runs: int = 0
    skewed_close_runs: int = 0
    set_aside_replayed: int = 0
    alert_runs: int = 0
    redriven: int = 0
    failed_invocations: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    invoices: int = 0
    alert_emails: int = 0
    stream_records: int = 0  # delivered to the stream-triggered alert evaluations
    rounds_checked: int = 0  # fault-free alert rounds after which every window state was checked


class Simulation:
    def __init__(self, api: Api, clock: Clock, config: SimConfig) -> None:
        self.api = api
        self.stack = api.stack
        self.clock = clock
        self.config = config
        self.rng = random.Random(config.seed)
        self.world = World(api)
        self.faults = FaultPlan(config.seed, config.fault_rate)
        self.teams: list[TeamSetup] = []
        self.catalogue = {rid: (kind, size) for rid, kind, size in CATALOGUE}
        self.expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)  # distinct accepted usage
        self.accepted: dict[tuple[str, str], dict[str, Any]] = {}  # (source, id) -> event
        self.outcome = Outcome()
        self.round_problems: list[str] = []
        # set by the test: the I6 final-state check, also run after every alert round without faults
        self.check_alert_states: Any = None
        self.sqs = boto3.client("sqs")
        self.ddb = boto3.client("dynamodb")

    # ---------------------------------------------------------- setup

    def setup(self) -> None:
        from usage_ledger.adapters import aws

        rng, start = self.rng, self.config.start
        self.clock.set(start - timedelta(days=1))
        for resource_id, kind, size in CATALOGUE:
            self.world.resource(resource_id, kind=kind, size=float(size) if size != size.to_integral() else int(size),
                                low=rng.choice([10, 25, 50]))
        for number in range(self.config.teams):
            team_id, admin = f"team-{number}", f"admin-{number}"
            self.world.team(team_id, admins=(admin,))
            self.world.member(team_id, f"hub-{number}", ["hub_admin"])
            reply = self.api.put(f"/v1/admin/teams/{team_id}/apps/app-{number}",
                                 {"name": f"App {number}", "owner_user_id": f"hub-{number}"})
            assert reply.status in (200, 201), reply.text
            resources = rng.sample([rid for rid, _, _ in CATALOGUE], k=rng.randint(2, len(CATALOGUE)))
            for index, resource_id in enumerate(resources):
                if number == 0 and index == 0:  # one payg-only resource whose cycle closes early on
                    self._subscribe(team_id, admin, resource_id, "payg", early_cycle=True)
                    continue
                for type_ in rng.sample(["free", "token_flex", "flex", "payg"], k=rng.randint(1, 3)):
                    self._subscribe(team_id, admin, resource_id, type_)
            setup = TeamSetup(team_id, admin, resources)
            reply = self.api.post(f"/v1/teams/{team_id}/alerts", {
                "name": f"Run-out {number}", "windows_days": [10, 5], "resource_ids": resources,
                "recipient_user_ids": [admin]}, as_=Identity.user(admin))
            assert reply.status == 201, reply.text
            setup.alert_id = reply.json["alert_id"]
            self.teams.append(setup)
        # faults go into the clients the handlers share (built lazily, cached per "container")
        self.faults.install(aws.client("dynamodb"), aws.client("ses"), aws.client("sqs"))

    def _subscribe(self, team_id: str, admin: str, resource_id: str, type_: str, early_cycle: bool = False) -> None:
        """A random subscription; `early_cycle`: a payg one whose first cycle in the run ends two days
        in, so that even a short run closes cycles into invoices."""
        rng, start = self.rng, self.config.start
        starts_at = start - timedelta(days=rng.randint(0, 90), hours=rng.randint(0, 23))
        if rng.random() < 0.2 and not early_cycle:
            starts_at = start + timedelta(days=rng.randint(1, 10))
        fields: dict[str, Any] = {"starts_at": _stamp(starts_at)}
        if type_ == "payg":
            # month-end anchors and zones with DST or odd offsets
            purchased = datetime(2026, rng.choice([5, 7, 8]), rng.choice([1, 15, 28, 29, 30, 31]),
                                 rng.randint(0, 23), rng.choice([0, 30, 45]), tzinfo=UTC) \
                if rng.random() < 0.9 else starts_at
            if early_cycle:
                purchased, starts_at = start - timedelta(days=29), start - timedelta(days=60)
                fields["starts_at"] = _stamp(starts_at)
            fields.update(purchased_at=_stamp(min(purchased, starts_at)), timezone=rng.choice(ZONES),
                          unit_amount=rng.choice([0, 7, 250, 1999]), currency=rng.choice(["usd", "eur", "jpy"]),
                          purchaser_user_id=admin,
                          payment_method={"id": create_card(self.stack.parameters["StripeApiBase"], exp_year=2026,
                                                            exp_month=rng.choice([10, 12]))} if rng.random() < 0.4
                          else {"id": create_card(self.stack.parameters["StripeApiBase"])})
        else:
            fields["quantity"] = rng.choice([5, 20, 60, 150, 400])
            if rng.random() < 0.5:
                fields["refresh_period"] = rng.choice(["month", "year"])
            if rng.random() < 0.3:
                fields["ends_at"] = _stamp(max(start, starts_at) + timedelta(days=rng.randint(1, 25),
                                                                             hours=rng.randint(0, 23)))
        self.world.subscription(team_id, resource_id, type_, **fields)

    # ---------------------------------------------------------- workload

    def _quantity(self, size: Decimal) -> Decimal:
        rng = self.rng
        roll = rng.random()
        if roll < 0.4:
            return size * rng.randint(1, 4)
        if roll < 0.8:
            return (Decimal(rng.randint(1, 4000)) / 100 * size).quantize(Decimal("0.001")) or Decimal("0.001")
        return Decimal(rng.randint(1, 999)) / 1000

    def _events_for_step(self, step: int) -> list[dict[str, Any]]:
        rng, now = self.rng, self.clock()
        events = []
        for number in range(rng.randint(self.config.events_per_step // 2, self.config.events_per_step * 3 // 2)):
            team = rng.choice(self.teams)
            # mostly a team's own resources, sometimes one it has no subscription to (shortfall)
            resource_id = rng.choice(team.resources) if rng.random() < 0.9 else rng.choice(list(self.catalogue))
            if rng.random() < self.config.late_rate:
                at = now - timedelta(days=rng.uniform(0, 20))
                self.outcome.late_events += 1
            else:
                at = now - timedelta(minutes=rng.uniform(0, 120))
            quantity = self._quantity(self.catalogue[resource_id][1])
            events.append(cloud_event(team.team_id, resource_id, str(quantity), at, id=f"s{step}-e{number}",
                                      source=f"sim/producer-{rng.randint(0, 2)}",
                                      user_id=rng.choice([None, "u1", "u2"])))
        # quantities travel as JSON numbers
        for event in events:
            event["data"]["quantity"] = _json_number(event["data"]["quantity"])
        previous = list(self.accepted.values()) + events
        for _ in range(int(len(events) * self.config.duplicate_rate)):
            if previous:
                events.append(rng.choice(previous))
                self.outcome.duplicates_sent += 1
        rng.shuffle(events)
        return events

    def _post(self, batch: list[dict[str, Any]]) -> None:
        """A producer: resend the same batch on a 5xx or a crash (it cannot know what was taken)."""
        body = json.dumps(batch, default=str)
        for _attempt in range(10):
            try:
                with self.faults.armed():
                    reply = self.api.call("POST", "/v1/events", as_=OPERATOR, raw_body=body,
                                          headers={"content-type": "application/cloudevents-batch+json"})
            except Crash:
                self.outcome.producer_retries += 1
                continue
            if reply.status >= 500:
                self.outcome.producer_retries += 1
                continue
            assert reply.status == 202, reply.text
            self.outcome.events_sent += len(batch)
            for event in batch:
                key = (event["source"], event["id"])
                if key not in self.accepted:
                    self.accepted[key] = event
                    self.expected[(event["subject"], event["data"]["resource_id"])] += Decimal(
                        str(event["data"]["quantity"]))
            return
        raise AssertionError("the producer could not deliver a batch in 10 attempts")

    # ---------------------------------------------------------- the jobs

    def _threads(self, count: int, target: Any) -> list[BaseException]:
        """Run target(container) on `count` threads at once, each its own Lambda container."""
        errors: list[BaseException] = []

        def run(container: str) -> None:
            try:
                target(container)
            except Crash:
                pass
            except Exception as error:
                if not FaultPlan.caused(error):  # a failed invocation we did not inject: a bug
                    errors.append(error)
                self.outcome.failed_invocations += 1

        threads = [threading.Thread(target=run, args=(f"c{number}",)) for number in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return errors

    def ingest(self, *, faults: bool = True) -> None:
        """Concurrent workers until the queue is empty; failed and crashed messages come back at once."""
        source = next(s for s in sqs_sources(self.stack) if s.function == "IngestFunction"
                      and s.queue_url == self.stack.physical["EventsFifoQueue"])

        def worker(container: str) -> None:
            handlers = {"IngestFunction": load_handler(self.stack, "IngestFunction", container)}
            idle = 0
            while idle < 3:
                if faults:
                    with self.faults.armed():
                        result = sqs_run_once(self.stack, handlers, source, client=self.sqs, retry_failed_after=0)
                else:
                    result = sqs_run_once(self.stack, handlers, source, client=self.sqs, retry_failed_after=0)
                idle = 0 if result.received else idle + 1

        errors = self._threads(self.config.workers, worker)
        assert not errors, errors

    def _jobs(self, function: str, *, faults: bool, stream: StreamPoller | None = None) -> None:
        """Two scheduled runs at once, one of them started late (an async retry: its event time is
        behind the clock), and with `stream`, a stream invocation for the step's changes alongside."""
        late = timedelta(minutes=self.rng.choice([0, 0, 12, 50]))
        events = [scheduled_event(self.stack, function, self.clock() + self._close_skew(function)),
                  scheduled_event(self.stack, function, self.clock() - late)]

        def run(container: str) -> None:
            index = int(container[1:])
            if index == 2:  # the stream invocation
                assert stream is not None
                stream.handlers = {
                    "BalanceChangedAlertsFunction": load_handler(self.stack, "BalanceChangedAlertsFunction", container)}

                def call() -> None:
                    self.outcome.stream_records += stream.poll_once()
            else:  # the scheduled run, then its workers (this container's) until the work queue is empty;
                # a failed work message comes back at once, until SQS dead-letters it
                handlers = {name: load_handler(self.stack, name, container) for name in (function, WORKERS[function])}
                call = lambda: run_job(self.stack, handlers, function, event=events[index],  # noqa: E731
                                       retry_failed_after=0)
            if faults:
                with self.faults.armed():
                    call()
            else:
                call()

        errors = self._threads(3 if stream else 2, run)
        assert not errors, errors

    def _close_skew(self, function: str) -> timedelta:
        """The fault plan's close-clock skew: hours to days ahead of or behind the ingest clock."""
        if function != "CloseBillingCyclesFunction" or self.rng.random() >= self.config.close_skew_rate:
            return timedelta(0)
        self.outcome.skewed_close_runs += 1
        return timedelta(hours=self.rng.choice([-50, -7, 2, 13, 30, 75]))

    def close(self, *, faults: bool = True) -> None:
        self.outcome.close_runs += 2
        self._jobs("CloseBillingCyclesFunction", faults=faults)

    def alerts(self, *, faults: bool = True) -> None:
        """Two scheduled evaluations and a stream one at once; then I6 for the round: every email
        belongs to one claimed and sent state, bar the copies a fault between an accepted send and
        its record may cause; and after a round without faults, every window is where it should be."""
        from usage_ledger.domain.calendar import iso

        emails_before, faults_before = len(sent_emails()), self.faults.count()
        crashes_before = self.faults.count(UNRECORDED_SEND)
        stream = StreamPoller(self.stack, {"BalanceChangedAlertsFunction": None}, starting_position="TRIM_HORIZON")
        self.outcome.alert_runs += 3
        self._jobs("EvaluateAlertsFunction", faults=faults, stream=stream)
        emails = len(sent_emails()) - emails_before
        crashes = self.faults.count(UNRECORDED_SEND) - crashes_before
        now = iso(self.clock())
        notified = sum(1 for item in self.scan("LedgerTable")
                       if item.get("entity") == "alert_state" and item.get("sent_at") == now)
        self.outcome.alert_emails += emails
        if not notified <= emails <= notified + crashes:
            self.round_problems.append(f"I6 alert run at {now}: {emails} emails for {notified} notified states "
                                       f"({crashes} faults between a send and its record)")
        if self.faults.count() == faults_before and self.check_alert_states is not None:
            self.outcome.rounds_checked += 1
            self.round_problems += [f"{problem} (after the run at {now})" for problem in self.check_alert_states()]

    # ---------------------------------------------------------- the run

    def run(self) -> Outcome:
        self.setup()
        self.clock.set(self.config.start)
        for step in range(self.config.steps):
            events = self._events_for_step(step)
            while events:
                size = self.rng.randint(1, 100)
                self._post(events[:size])
                events = events[size:]
            self.ingest()
            if self.rng.random() < 0.7:
                self.close()
            if self.rng.random() < 0.7:
                self.alerts()
            self.clock.set(self.clock() + timedelta(hours=self.rng.uniform(6, 30)))
            forget_stream_records()
        self.settle()
        self.outcome.unique_events = len(self.accepted)
        self.outcome.faults = dict(self.faults.injected)
        return self.outcome

    def settle(self) -> None:
        """What an operator's day after looks like: dead letters redriven, leases run out, jobs rerun."""
        self.ingest(faults=False)
        self.outcome.redriven = self.redrive()
        self.outcome.set_aside_replayed = self.replay_set_aside()
        self.ingest(faults=False)
        from usage_ledger.clock import LEASE

        self.clock.set(self.clock() + LEASE + timedelta(minutes=1))
        self.close(faults=False)
        self.alerts(faults=False)
        for queue in ("EventsFifoQueue", "EventsFifoDeadLetterQueue"):
            depth = queue_depth(self.stack, queue)
            if depth["visible"] or depth["in_flight"]:
                self.round_problems.append(f"I1 {queue} still holds {depth} after settling")

    def redrive(self) -> int:
        """Move every dead-lettered event message back to the events queue (a new SQS message id)."""
        dlq, queue = self.stack.physical["EventsFifoDeadLetterQueue"], self.stack.physical["EventsFifoQueue"]
        moved = 0
        while True:
            messages = self.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                                MessageSystemAttributeNames=["MessageGroupId"]).get("Messages", [])
            if not messages:
                return moved
            for message in messages:  # its group kept, a fresh deduplication id (docs/operations.md)
                self.sqs.send_message(QueueUrl=queue, MessageBody=message["Body"],
                                      MessageGroupId=message["Attributes"]["MessageGroupId"],
                                      MessageDeduplicationId=uuid.uuid4().hex)
                self.sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
                moved += 1

    def replay_set_aside(self) -> int:
        """What ingest set aside, sent again as docs/operations.md says (in its group, a fresh
        deduplication id), and the item deleted; events that could not be keyed stay."""
        queue, ledger = self.stack.physical["EventsFifoQueue"], self.stack.physical["LedgerTable"]
        replayed = 0
        for item in self.scan("LedgerTable"):
            if item["PK"] != "SETASIDE" or not item.get("message_group"):
                continue
            if "injected" not in item["reason"] and "TransactionConflict" not in item["reason"]:
                # only faults that outlasted every retry may set a group aside, never the data or a clock
                self.round_problems.append(f"I1 {item['SK']} set aside for {item['reason']}")
            self.sqs.send_message(QueueUrl=queue, MessageBody=item["message"], MessageGroupId=item["message_group"],
                                  MessageDeduplicationId=uuid.uuid4().hex)
            self.ddb.delete_item(TableName=ledger, Key={"PK": {"S": item["PK"]}, "SK": {"S": item["SK"]}})
            replayed += 1
        return replayed

    # ---------------------------------------------------------- stored state

    def scan(self, logical_table: str) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        plain = TypeDeserializer().deserialize
        items, kwargs = [], {"TableName": self.stack.physical[logical_table], "ConsistentRead": True}
        while True:
            page = self.ddb.scan(**kwargs)
            items += [{key: plain(value) for key, value in item.items()} for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def forget_stream_records() -> None:
    """Drop moto's DynamoDB stream records (DynamoDB keeps them 24 hours; nothing reads them here).
    Why: moto keeps every record forever and deep-copies a table, stream included, on each
    transaction, so a growing stream makes every transaction slower."""
    from moto.dynamodb.models import dynamodb_backends

    for table in dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables.values():
        if table.stream_shard is not None:
            table.stream_shard.items.clear()


def sent_emails() -> list[Any]:
    return _sent_emails()  # SendEmail and raw messages alike: .subject, .body, .destinations


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_number(text: str) -> int | float:
    """Quantities travel as JSON numbers; a float's shortest repr is the decimal text it came from."""
    value = Decimal(text)
    return int(value) if value == value.to_integral() else float(text)
