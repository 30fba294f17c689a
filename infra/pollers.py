"""Lambda event sources for local runs: SQS queue poller, DynamoDB stream poller and scheduler."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3

from infra.lambdas import FakeLambdaContext, Handler
from infra.stack import Stack

log = logging.getLogger("infra.pollers")

ACCOUNT_ID = "123456789012"
Handlers = Mapping[str, Handler]


def _region(stack: Stack) -> str:
    return stack.parameters.get("AWS::Region", "us-east-1")


def _client(service: str, endpoint_url: str | None, region: str) -> Any:
    # explicit endpoint: dynamodbstreams in particular must not fall through to real AWS
    return boto3.client(service, endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL"), region_name=region)


def invoke(stack: Stack, handlers: Handlers, function_logical_id: str, event: dict[str, Any]) -> Any:
    """Call a function's handler the way Lambda would, with a fresh fake context."""
    context = FakeLambdaContext(stack.physical.get(function_logical_id, function_logical_id))
    context.aws_request_id = str(uuid.uuid4())
    return handlers[function_logical_id](event, context)


def _events_of(stack: Stack, types: set[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(function logical id, event name, event properties) for every event of the given types."""
    found = []
    for logical, props in stack.functions().items():
        for name, event in (props.get("Events") or {}).items():
            if event["Type"] in types:
                found.append((logical, name, event.get("Properties") or {}))
    return found


# ------------------------------------------------------------------------------------ SQS


@dataclass(frozen=True)
class SqsSource:
    function: str
    queue_url: str
    queue_arn: str
    batch_size: int
    report_failures: bool


def sqs_sources(stack: Stack, function_logical_id: str | None = None) -> list[SqsSource]:
    sources = []
    for logical, _, props in _events_of(stack, {"SQS"}):
        if function_logical_id and logical != function_logical_id:
            continue
        arn = stack.resolve(props["Queue"])
        # the template names the queue by ARN; the API wants its URL
        queue = next(q for (q, attr), value in stack.attributes.items() if attr == "Arn" and value == arn)
        sources.append(
            SqsSource(
                function=logical,
                queue_url=stack.physical[queue],
                queue_arn=arn,
                batch_size=int(stack.resolve(props.get("BatchSize", 10))),
                report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
            )
        )
    return sources


@dataclass
class SqsResult:
    received: int = 0
    succeeded: int = 0
    failed: int = 0

    def add(self, other: SqsResult) -> None:
        self.received += other.received
        self.succeeded += other.succeeded
        self.failed += other.failed


def _sqs_record(message: dict[str, Any], source: SqsSource, region: str) -> dict[str, Any]:
    attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        binary = value.get("BinaryValue")
        attributes[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": source.queue_arn,
        "awsRegion": region,
    }


def _failed_ids(response: Any, message_ids: list[str]) -> set[str]:
    """Lambda's reading of a partial-batch response: anything malformed fails the whole batch."""
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return set()
    failed = set()
    for failure in response["batchItemFailures"]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in message_ids:
            return set(message_ids)
        failed.add(identifier)
    return failed


def sqs_run_once(
    stack: Stack,
    handlers: Handlers,
    source: SqsSource,
    *,
    client: Any = None,
    retry_failed_after: int | None = None,
) -> SqsResult:
    """Receive one batch (up to BatchSize), invoke the function, delete what succeeded.

    Failed messages stay in flight and come back after the queue's visibility timeout (moto moves
    them to the DLQ once maxReceiveCount is reached), unless `retry_failed_after` shortens that.
    """
    client = client or _client("sqs", None, _region(stack))
    messages: list[dict[str, Any]] = []
    while len(messages) < source.batch_size:
        # never long-poll: moto would sleep while holding the server lock
        received = client.receive_message(
            QueueUrl=source.queue_url,
            MaxNumberOfMessages=min(10, source.batch_size - len(messages)),
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            break
        messages.extend(received)
    if not messages:
        return SqsResult()
    region = _region(stack)
    event = {"Records": [_sqs_record(message, source, region) for message in messages]}
    ids = [message["MessageId"] for message in messages]
    try:
        response = invoke(stack, handlers, source.function, event)
        failed = _failed_ids(response, ids) if source.report_failures else set()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # an error, or the runtime dying mid-batch: Lambda retries the whole batch
        log.exception("%s failed on a batch of %d messages", source.function, len(messages))
        failed = set(ids)
    succeeded = [message for message in messages if message["MessageId"] not in failed]
    for start in range(0, len(succeeded), 10):
        chunk = succeeded[start : start + 10]
        client.delete_message_batch(
            QueueUrl=source.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
        )
    if failed:
        log.warning("%s reported %d failed message(s) of %d", source.function, len(failed), len(messages))
        if retry_failed_after is not None:
            for message in messages:
                if message["MessageId"] in failed:
                    client.change_message_visibility(
                        QueueUrl=source.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=retry_failed_after,
                    )
    return SqsResult(received=len(messages), succeeded=len(succeeded), failed=len(failed))


def drain_queue(
    stack: Stack,
    handlers: Handlers,
    function_logical_id: str = "IngestFunction",
    *,
    retry_failed_after: int | None = None,
    max_batches: int = 10_000,
) -> SqsResult:
    """Process the function's queue until a receive comes back empty; returns the totals.

    With the default, failed messages are simply left in flight (invisible for the visibility
    timeout); pass retry_failed_after=0 to retry them at once until moto dead-letters them.
    """
    total = SqsResult()
    sources = sqs_sources(stack, function_logical_id)
    if not sources:
        raise KeyError(f"{function_logical_id} has no SQS event source")
    client = _client("sqs", None, _region(stack))
    for source in sources:
        for _ in range(max_batches):
            result = sqs_run_once(stack, handlers, source, client=client, retry_failed_after=retry_failed_after)
            total.add(result)
            if not result.received:
                break
    return total


def queue_depth(stack: Stack, queue_logical_id: str) -> dict[str, int]:
    """Visible and in-flight message counts of a template queue (e.g. the dead-letter queue)."""
    client = _client("sqs", None, _region(stack))
    attributes = client.get_queue_attributes(
        QueueUrl=stack.physical[queue_logical_id],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return {
        "visible": int(attributes["ApproximateNumberOfMessages"]),
        "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    }


# ----------------------------------------------------------------------- event patterns


def matches_pattern(pattern: Any, event: Any) -> bool:
    """EventBridge / Lambda filter pattern matching (exact values, prefix, suffix, anything-but,
    numeric, exists, equals-ignore-case); enough for the patterns template.yaml uses."""
    if isinstance(pattern, dict):
        if not isinstance(event, dict):
            return False
        for key, sub in pattern.items():
            if isinstance(sub, list) and key not in event:
                # only {"exists": false} (or null in a list) may match an absent field
                if not any(isinstance(rule, dict) and rule.get("exists") is False for rule in sub):
                    return False
                continue
            if key not in event:
                return False
            if not matches_pattern(sub, event[key]):
                return False
        return True
    if isinstance(pattern, list):
        values = event if isinstance(event, list) else [event]
        return any(_matches_rule(rule, value) for rule in pattern for value in values)
    raise ValueError(f"pattern leaves must be lists, got {pattern!r}")


def _matches_rule(rule: Any, value: Any) -> bool:
    if not isinstance(rule, dict):
        return rule == value
    ((operator, argument),) = rule.items()
    if operator == "exists":
        return bool(argument)
    if operator == "prefix":
        if isinstance(argument, dict):  # {"prefix": {"equals-ignore-case": "..."}}
            return isinstance(value, str) and value.lower().startswith(argument["equals-ignore-case"].lower())
        return isinstance(value, str) and value.startswith(argument)
    if operator == "suffix":
        if isinstance(argument, dict):
            return isinstance(value, str) and value.lower().endswith(argument["equals-ignore-case"].lower())
        return isinstance(value, str) and value.endswith(argument)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == argument.lower()
    if operator == "anything-but":
        if isinstance(argument, dict):
            return not _matches_rule(argument, value)
        excluded = argument if isinstance(argument, list) else [argument]
        return value not in excluded
    if operator == "numeric":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        checks: dict[str, Callable[[float, float], bool]] = {
            "=": lambda a, b: a == b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        pairs = zip(argument[0::2], argument[1::2], strict=True)
        return all(checks[op](number, float(bound)) for op, bound in pairs)
    raise ValueError(f"unsupported filter operator {operator!r}")


def matches_filters(filters: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    """Lambda FilterCriteria: a record passes when any filter matches (no filters: all pass)."""
    if not filters:
        return True
    return any(matches_pattern(json.loads(f["Pattern"]), record) for f in filters)


# ------------------------------------------------------------------- DynamoDB streams


@dataclass(frozen=True)
class StreamSource:
    function: str
    event_name: str
    stream_arn: str
    batch_size: int
    filters: list[dict[str, Any]] = field(default_factory=list)


def stream_sources(stack: Stack) -> list[StreamSource]:
    return [
        StreamSource(
            function=logical,
            event_name=name,
            stream_arn=stack.resolve(props["Stream"]),
            batch_size=int(props.get("BatchSize", 100)),
            filters=list((props.get("FilterCriteria") or {}).get("Filters") or []),
        )
        for logical, name, props in _events_of(stack, {"DynamoDB"})
    ]


def _lambda_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """boto3 decodes binary attributes to bytes; Lambda delivers them base64-encoded."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(item).decode() for item in inner]}
    if kind == "M":
        return {"M": {key: _lambda_attribute(item) for key, item in inner.items()}}
    if kind == "L":
        return {"L": [_lambda_attribute(item) for item in inner]}
    return {kind: inner}


def _lambda_stream_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    for image in ("Keys", "NewImage", "OldImage"):
        if image in dynamodb:
            dynamodb[image] = {key: _lambda_attribute(value) for key, value in dynamodb[image].items()}
    return {**record, "eventVersion": "1.1", "dynamodb": dynamodb, "eventSourceARN": stream_arn}


class StreamPoller:
    """Reads every DynamoDB stream event source of the template from where it was created on.

    It keeps the next sequence number per shard rather than a shard iterator. Why: after a
    cancelled transaction moto swaps in a deep copy of the table, and iterators taken before
    then keep reading the old (now dead) shard object; a fresh iterator per poll does not.
    """

    def __init__(
        self,
        stack: Stack,
        handlers: Handlers,
        *,
        starting_position: str = "LATEST",
        endpoint_url: str | None = None,
    ) -> None:
        self.stack = stack
        self.handlers = handlers
        self.sources = [source for source in stream_sources(stack) if source.function in handlers]
        self.client = _client("dynamodbstreams", endpoint_url, _region(stack))
        self.positions: dict[tuple[str, str], int] = {}  # (stream arn, shard id) -> next sequence
        self.lock = threading.Lock()
        for arn in {source.stream_arn for source in self.sources}:
            for shard in self._shards(arn):
                start = int(shard["SequenceNumberRange"]["StartingSequenceNumber"])
                if starting_position == "LATEST":
                    start = self._end_of(arn, shard["ShardId"], start)
                self.positions[(arn, shard["ShardId"])] = start

    def _shards(self, arn: str) -> list[dict[str, Any]]:
        return self.client.describe_stream(StreamArn=arn)["StreamDescription"].get("Shards", [])

    def _read(self, arn: str, shard_id: str, sequence: int, limit: int) -> list[dict[str, Any]]:
        iterator = self.client.get_shard_iterator(
            StreamArn=arn, ShardId=shard_id, ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=str(sequence)
        )["ShardIterator"]
        return self.client.get_records(ShardIterator=iterator, Limit=limit).get("Records", [])

    def _end_of(self, arn: str, shard_id: str, sequence: int) -> int:
        while True:
            records = self._read(arn, shard_id, sequence, 1000)
            if not records:
                return sequence
            sequence = int(records[-1]["dynamodb"]["SequenceNumber"]) + 1

    def poll_once(self) -> int:
        """Deliver every new record (filtered, in BatchSize batches); returns how many were delivered."""
        delivered = 0
        with self.lock:  # one reader at a time, so no record is delivered twice
            for arn in {source.stream_arn for source in self.sources}:
                for shard in self._shards(arn):
                    key = (arn, shard["ShardId"])
                    if key not in self.positions:  # a shard born after we started: read it all
                        self.positions[key] = int(shard["SequenceNumberRange"]["StartingSequenceNumber"])
                    while True:
                        records = self._read(arn, shard["ShardId"], self.positions[key], 1000)
                        if not records:
                            break
                        self.positions[key] = int(records[-1]["dynamodb"]["SequenceNumber"]) + 1
                        delivered += self._deliver(arn, [_lambda_stream_record(r, arn) for r in records])
        return delivered

    def _deliver(self, arn: str, records: list[dict[str, Any]]) -> int:
        delivered = 0
        for source in self.sources:
            if source.stream_arn != arn:
                continue
            matching = [record for record in records if matches_filters(source.filters, record)]
            for start in range(0, len(matching), source.batch_size):
                batch = matching[start : start + source.batch_size]
                delivered += len(batch)
                try:
                    response = invoke(self.stack, self.handlers, source.function, {"Records": batch})
                except Exception:
                    log.exception("%s failed on %d stream record(s)", source.function, len(batch))
                    continue
                failures = (response or {}).get("batchItemFailures") if isinstance(response, dict) else None
                if failures:
                    log.warning("%s reported stream failures (not retried locally): %s", source.function, failures)
        return delivered


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class ScheduleSource:
    function: str
    event_name: str
    expression: str
    resource_arn: str


def schedule_sources(stack: Stack) -> list[ScheduleSource]:
    region = _region(stack)
    sources = []
    for logical, name, props in _events_of(stack, {"Schedule", "ScheduleV2"}):
        physical = f"{stack.physical.get(logical, logical)}-{name}"
        if "ScheduleExpression" in props:  # ScheduleV2 (EventBridge Scheduler)
            arn = f"arn:aws:scheduler:{region}:{ACCOUNT_ID}:schedule/default/{physical}"
        else:
            arn = f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{physical}"
        expression = props.get("Schedule") or props.get("ScheduleExpression") or ""
        sources.append(ScheduleSource(logical, name, expression, arn))
    return sources


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_event(stack: Stack, function_logical_id: str, time: datetime | str | None = None) -> dict[str, Any]:
    """The EventBridge "Scheduled Event" that the function's schedule would send at `time`."""
    sources = [source for source in schedule_sources(stack) if source.function == function_logical_id]
    if not sources:
        raise KeyError(f"{function_logical_id} has no Schedule event")
    if time is None:
        time = datetime.now(UTC)
    if isinstance(time, datetime):
        time = _rfc3339(time)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": time,
        "region": _region(stack),
        "resources": [sources[0].resource_arn],
        "detail": {},
    }


def run_scheduled(
    stack: Stack, handlers: Handlers, function_logical_id: str, time: datetime | str | None = None
) -> Any:
    """Invoke a scheduled function now (on demand), with its Scheduled Event; returns its result."""
    return invoke(stack, handlers, function_logical_id, scheduled_event(stack, function_logical_id, time))


def fed_queues(stack: Stack, function_logical_id: str) -> list[str]:
    """The template queues a function sends work to: those its own Environment names (a fanned-out
    scheduled job's work queue)."""
    variables = (stack.functions()[function_logical_id].get("Environment") or {}).get("Variables") or {}
    queues = {logical for logical, res in stack.template["Resources"].items() if res["Type"] == "AWS::SQS::Queue"}
    return [value["Ref"] for value in variables.values() if isinstance(value, dict) and value.get("Ref") in queues]


def run_job(
    stack: Stack, handlers: Handlers, function_logical_id: str, time: datetime | str | None = None,
    *, event: dict[str, Any] | None = None, retry_failed_after: int | None = None,
) -> dict[str, Any]:
    """A scheduled job end to end: the scheduled function (with its Scheduled Event, or `event`),
    then every worker of the queues it feeds until they are empty. Returns both results."""
    event = event if event is not None else scheduled_event(stack, function_logical_id, time)
    result = invoke(stack, handlers, function_logical_id, event)
    workers: dict[str, SqsResult] = {}
    client = _client("sqs", None, _region(stack))
    for queue in fed_queues(stack, function_logical_id):
        for source in sqs_sources(stack):
            if source.queue_url != stack.physical[queue]:
                continue
            total = workers.setdefault(source.function, SqsResult())
            while True:
                batch = sqs_run_once(stack, handlers, source, client=client, retry_failed_after=retry_failed_after)
                total.add(batch)
                if not batch.received:
                    break
    return {"result": result, "workers": {name: vars(total) for name, total in workers.items()}}


def run_all_scheduled(stack: Stack, handlers: Handlers, time: datetime | str | None = None) -> dict[str, Any]:
    """One tick of every schedule (a function with several schedules still runs once)."""
    results = {}
    for function in dict.fromkeys(source.function for source in schedule_sources(stack)):
        if function not in handlers:
            continue
        try:
            results[function] = run_scheduled(stack, handlers, function, time)
        except Exception:
            log.exception("scheduled run of %s failed", function)
            results[function] = None
    return results


# ----------------------------------------------------------------------- background


class BackgroundPollers:
    """Runs the queue poller, stream poller and scheduler in daemon threads until stop()."""

    def __init__(
        self,
        stack: Stack,
        handlers: Handlers,
        *,
        schedule_seconds: float = 60.0,
        queue_interval: float = 0.5,
        stream_interval: float = 1.0,
    ) -> None:
        self.stack = stack
        self.handlers = handlers
        self.schedule_seconds = schedule_seconds
        self.queue_interval = queue_interval
        self.stream_interval = stream_interval
        self.stopping = threading.Event()
        # the scheduler's clock starts once this is set (the runner sets it when the demo is in, so a
        # close run never sees a half-loaded demo); set already for everyone else
        self.schedule_started = threading.Event()
        self.schedule_started.set()
        self.threads: list[threading.Thread] = []
        self.queue_lock = threading.Lock()  # the loop and drain_now() must not race on receipts
        # created now, so "LATEST" means when the runner started
        self.streams = StreamPoller(stack, handlers)
        self.queues = [source for source in sqs_sources(stack) if source.function in handlers]

    def start(self) -> BackgroundPollers:
        loops = [
            ("sqs-poller", self.queue_interval, self.poll_queues),
            ("stream-poller", self.stream_interval, self.streams.poll_once),
            ("scheduler", self.schedule_seconds, lambda: run_all_scheduled(self.stack, self.handlers)),
        ]
        for name, interval, step in loops:
            started = self.schedule_started if name == "scheduler" else None
            thread = threading.Thread(target=self._loop, args=(name, interval, step, started), name=name,
                                      daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def poll_queues(self) -> SqsResult:
        total = SqsResult()
        with self.queue_lock:
            for source in self.queues:
                while not self.stopping.is_set():
                    result = sqs_run_once(self.stack, self.handlers, source)
                    total.add(result)
                    if not result.received:
                        break
        return total

    def drain_now(self) -> dict[str, Any]:
        """Empty the queues, then deliver stream records (what the UI/tests want after a POST)."""
        queues = self.poll_queues()
        records = self.streams.poll_once()
        return {"messages": queues.received, "failed": queues.failed, "stream_records": records}

    def _loop(self, name: str, interval: float, step: Callable[[], Any],
              started: threading.Event | None = None) -> None:
        while started is not None and not started.wait(0.5):
            if self.stopping.is_set():
                return
        # the first tick waits one interval, as a rate() schedule does
        while not self.stopping.wait(interval):
            try:
                step()
            except Exception:
                log.exception("%s tick failed", name)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=timeout)
