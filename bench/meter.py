"""What a unit of work costs on AWS: DynamoDB requests and request units, SQS requests, SES
sends and handler time, recorded with botocore event hooks while the handlers run against moto.

Request units are *estimated from the actual items* (moto's ReturnConsumedCapacity is a constant
1.0 / 0.5 per call, so it is not used), by DynamoDB's published on-demand rules:

- item size: attribute name UTF-8 bytes + value bytes; string = UTF-8 bytes, number = about
  ceil(significant digits / 2) + 1 bytes (+1 when negative), binary = bytes, bool/null = 1 byte,
  list/map = 3 bytes + 1 byte per element + the elements (names count in maps), sets = the
  members.
- writes (PutItem, UpdateItem, DeleteItem, BatchWriteItem): 1 WRU per started KB of the larger
  of the item before and after the write (a delete: the item before; at least 1);
  TransactWriteItems: 2x per item (prepare + commit). Before/after sizes are read through a
  separate, un-hooked client, outside the measured window.
- global secondary index (GSI1 is KEYS_ONLY, so an index entry is a few dozen bytes, 1 WRU):
  +1 WRU when a write adds an index entry, +1 when it removes one, +2 when it changes the index
  key; a write that leaves GSI1PK/GSI1SK as they were costs the index nothing. Index writes are
  propagated asynchronously and are not doubled for transactions.
- reads: 1 RRU per started 4 KB strongly consistent, 0.5 eventually consistent, 2 transactional;
  GetItem / BatchGetItem round each item, Query / Scan round the sum of the items *evaluated*
  in the request (before FilterExpression; projections do not reduce it; at least one unit).
- SQS: one request per 64 KB chunk of payload for send and receive, 1 per delete call
  (DeleteMessageBatch holds 10).
"""
from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3

KB = 1024
READ_BLOCK = 4 * KB
SQS_CHUNK = 64 * KB
WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
READ_OPS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}


# ------------------------------------------------------------------ item sizes (AWS rules)


def number_size(text: str) -> int:
    digits = Decimal(text).as_tuple().digits
    significant = "".join(map(str, digits)).strip("0") or "0"
    return math.ceil(len(significant) / 2) + 1 + (1 if text.strip().startswith("-") else 0)


def value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_blocks(size: int) -> int:
    return max(1, math.ceil(size / READ_BLOCK))


# ------------------------------------------------------------------ the meter


class Tables:
    """Key schemas and GSI key attributes, read once through the un-hooked client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._keys: dict[str, list[str]] = {}
        self._gsi: dict[str, list[list[str]]] = {}

    def _describe(self, name: str) -> None:
        table = self.client.describe_table(TableName=name)["Table"]
        self._keys[name] = [k["AttributeName"] for k in table["KeySchema"]]
        self._gsi[name] = [[k["AttributeName"] for k in index["KeySchema"]]
                           for index in table.get("GlobalSecondaryIndexes", [])]

    def key_of(self, name: str, item: dict[str, Any]) -> dict[str, Any]:
        if name not in self._keys:
            self._describe(name)
        return {attribute: item[attribute] for attribute in self._keys[name]}

    def gsi_keys(self, name: str) -> list[list[str]]:
        if name not in self._gsi:
            self._describe(name)
        return self._gsi[name]


def _index_entry(item: dict[str, Any] | None, attributes: list[str]) -> tuple | None:
    """The item's key in an index, None when the item is not in it (absent or a key attribute missing)."""
    if not item or not all(a in item for a in attributes):
        return None
    return tuple(str(item[a]) for a in attributes)


def _freeze(key: dict[str, Any]) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in key.items()))


class Meter:
    """Counts and units of one measured window (see `Recorder.window`)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()  # DynamoDB requests by operation (as before)
        self.wru: Counter[str] = Counter()  # by table, including its GSI writes
        self.gsi_wru: Counter[str] = Counter()
        self.rru: Counter[str] = Counter()  # by table
        self.write_bytes: Counter[str] = Counter()  # by "<table> <op>": larger of before/after
        self.items_written: Counter[str] = Counter()
        self.failed_writes = 0
        self.sqs: Counter[str] = Counter()  # SQS requests by operation
        self.sqs_billed = 0  # requests counted per 64 KB chunk
        self.sqs_messages_sent = 0
        self.sqs_messages_received = 0
        self.sqs_empty_receives = 0  # idle polling: a fixed cost of the event source, not per unit
        self.ses: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def summary(self, per: float = 1.0, digits: int = 4) -> dict[str, Any]:
        """Everything divided by `per` units of work."""
        def scale(value: float) -> float:
            return round(value / per, digits)

        return {
            "dynamodb_requests": scale(self.total),
            "dynamodb_by_operation": {k: scale(v) for k, v in sorted(self.calls.items())},
            "wru": scale(sum(self.wru.values())),
            "wru_by_table": {k: scale(v) for k, v in sorted(self.wru.items())},
            "gsi_wru": scale(sum(self.gsi_wru.values())),
            "rru": scale(sum(self.rru.values())),
            "rru_by_table": {k: scale(v) for k, v in sorted(self.rru.items())},
            "bytes_written_by_table_op": {k: scale(v) for k, v in sorted(self.write_bytes.items())},
            "items_written_by_table_op": {k: scale(v) for k, v in sorted(self.items_written.items())},
            "failed_writes": scale(self.failed_writes),
            "sqs_requests": scale(sum(self.sqs.values())),
            "sqs_billed_requests": scale(self.sqs_billed),
            "sqs_by_operation": {k: scale(v) for k, v in sorted(self.sqs.items())},
            "sqs_messages_sent": scale(self.sqs_messages_sent),
            "ses_emails": scale(sum(self.ses.values())),
        }


class Recorder:
    """Hooks every client of boto3's default session (the handlers' and the SQS poller's).
    Records only while a window is open."""

    def __init__(self) -> None:
        self.meter: Meter | None = None
        # always running (window or not), read as deltas by `timed`
        self.aws = [0.0, 0.0]  # wall, thread CPU seconds between sending a request and its response
        self.hooks = [0.0, 0.0]  # wall, thread CPU seconds inside the meter's own hooks
        self.aws_calls = 0
        # handlers send from several threads (an ingest batch's claims): per-thread send times,
        # and one lock around every shared sum
        self._local = threading.local()
        self._lock = threading.RLock()
        self.session = boto3._get_default_session()
        # reads item sizes before/after writes: its own session, so these calls are not counted
        self.raw = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        self.tables = Tables(self.raw)
        events = self.session.events
        events.register_first("before-send", self._send_started)
        events.register("response-received", self._send_finished)
        events.register("before-parameter-build.dynamodb", self._before_dynamodb)
        events.register("after-call.dynamodb", self._after_dynamodb)
        events.register("before-parameter-build.sqs", remember_sqs_body)
        events.register("after-call.sqs", self._after_sqs)
        events.register("after-call.ses", self._after_ses)
        events.register("after-call.sesv2", self._after_ses)

    @contextmanager
    def window(self) -> Iterator[Meter]:
        previous, self.meter = self.meter, Meter()
        try:
            yield self.meter
        finally:
            self.meter = previous

    # -------------------------------------------------------------- reads of stored items

    def _get_many(self, keys: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, tuple], dict[str, Any]]:
        found: dict[tuple[str, tuple], dict[str, Any]] = {}
        unique = {(table, _freeze(key)): (table, key) for table, key in keys}
        pending = list(unique.values())
        for start in range(0, len(pending), 100):
            request: dict[str, Any] = {}
            for table, key in pending[start:start + 100]:
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
            while request:
                response = self.raw.batch_get_item(RequestItems=request)
                for table, items in response.get("Responses", {}).items():
                    for item in items:
                        found[(table, _freeze(self.tables.key_of(table, item)))] = item
                request = response.get("UnprocessedKeys") or {}
        return found

    def _write_targets(self, op: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], Any]]:
        """(table, kind, key, new item for a Put) of every item the call writes."""
        targets = []
        if op == "PutItem":
            targets.append((params["TableName"], "Put", self.tables.key_of(params["TableName"], params["Item"]),
                            params["Item"]))
        elif op in ("UpdateItem", "DeleteItem"):
            targets.append((params["TableName"], op[:-4], params["Key"], None))
        elif op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                key = self.tables.key_of(body["TableName"], body["Item"]) if kind == "Put" else body["Key"]
                targets.append((body["TableName"], kind, key, body.get("Item")))
        elif op == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        targets.append((table, "Put", self.tables.key_of(table, item), item))
                    else:
                        targets.append((table, "Delete", request["DeleteRequest"]["Key"], None))
        return targets

    # -------------------------------------------------------------- hooks

    def _send_started(self, **_: Any) -> None:
        self._local.sent = (time.perf_counter(), time.thread_time())

    def _send_finished(self, **_: Any) -> None:
        sent = getattr(self._local, "sent", None)
        if sent is not None:
            self._local.sent = None
            with self._lock:
                self.aws[0] += time.perf_counter() - sent[0]
                self.aws[1] += time.thread_time() - sent[1]
                self.aws_calls += 1

    @contextmanager
    def _hook(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            with self._lock:
                self.hooks[0] += time.perf_counter() - wall
                self.hooks[1] += time.thread_time() - cpu

    def _before_dynamodb(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if self.meter is None:
            return
        with self._hook():
            op = model.name
            state: dict[str, Any] = {"op": op, "params": params}
            if op in WRITE_OPS:
                targets = self._write_targets(op, params)
                state["targets"] = targets
                state["before"] = self._get_many([(table, key) for table, _, key, _ in targets])
            context["bench_meter"] = state

    def _after_dynamodb(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        meter = self.meter
        if meter is None:
            return
        with self._hook(), self._lock:
            op = model.name
            meter.calls[op] += 1
            state = context.get("bench_meter") or {"op": op, "params": {}}
            failed = "Error" in parsed
            if op in WRITE_OPS:
                self._account_write(meter, op, state, failed)
            elif op in READ_OPS:
                self._account_read(meter, op, state["params"], parsed)

    def _account_write(self, meter: Meter, op: str, state: dict[str, Any], failed: bool) -> None:
        targets = state["targets"]
        before = state["before"]
        after = {} if failed else self._get_many([(table, key) for table, _, key, _ in targets])
        factor = 2 if op == "TransactWriteItems" else 1
        if failed:
            meter.failed_writes += 1
        for table, kind, key, _new_item in targets:
            frozen = (table, _freeze(key))
            old, new = before.get(frozen), after.get(frozen)
            # a refused write still consumes units for the item it checked
            size = item_size(old) if failed or kind == "ConditionCheck" else max(item_size(old), item_size(new))
            meter.wru[table] += factor * write_units(size)
            meter.write_bytes[f"{table} {op}:{kind}"] += size
            meter.items_written[f"{table} {op}:{kind}"] += 1
            if failed or kind == "ConditionCheck":
                continue
            for attributes in self.tables.gsi_keys(table):
                was, now = _index_entry(old, attributes), _index_entry(new, attributes)
                if was != now:
                    units = (1 if was else 0) + (1 if now else 0)
                    meter.wru[table] += units
                    meter.gsi_wru[table] += units

    def _account_read(self, meter: Meter, op: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        if op == "GetItem":
            item = parsed.get("Item")
            if "ProjectionExpression" in params or "AttributesToGet" in params:
                item = self._get_many([(params["TableName"], params["Key"])]).get(
                    (params["TableName"], _freeze(params["Key"])))
            factor = 1.0 if params.get("ConsistentRead") else 0.5
            meter.rru[params["TableName"]] += factor * read_blocks(item_size(item))
        elif op == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                factor = 1.0 if request.get("ConsistentRead") else 0.5
                if "ProjectionExpression" in request or "AttributesToGet" in request:
                    found = self._get_many([(table, key) for key in request["Keys"]])
                    items = [found.get((table, _freeze(key))) for key in request["Keys"]]
                else:
                    items = parsed.get("Responses", {}).get(table, [])
                    items += [None] * (len(request["Keys"]) - len(items))  # misses still cost a unit
                for item in items:
                    meter.rru[table] += factor * read_blocks(item_size(item))
        elif op == "TransactGetItems":
            for entry, response in zip(params["TransactItems"], parsed.get("Responses", []), strict=False):
                meter.rru[entry["Get"]["TableName"]] += 2 * read_blocks(item_size(response.get("Item")))
        elif op in ("Query", "Scan"):
            items = parsed.get("Items", [])
            if any(name in params for name in ("FilterExpression", "ProjectionExpression", "Select",
                                               "AttributesToGet", "QueryFilter", "ScanFilter")):
                items = self._evaluated(op, params)
            factor = 1.0 if params.get("ConsistentRead") else 0.5
            meter.rru[params["TableName"]] += factor * read_blocks(sum(item_size(i) for i in items))

    def _evaluated(self, op: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The page of items the request read, before its filter and projection."""
        replay = {k: v for k, v in params.items() if k not in (
            "FilterExpression", "ProjectionExpression", "Select", "AttributesToGet", "QueryFilter",
            "ScanFilter", "ExpressionAttributeNames", "ExpressionAttributeValues")}
        expression = params.get("KeyConditionExpression", "")
        names = {k: v for k, v in params.get("ExpressionAttributeNames", {}).items() if k in expression}
        values = {k: v for k, v in params.get("ExpressionAttributeValues", {}).items() if k in expression}
        if names:
            replay["ExpressionAttributeNames"] = names
        if values:
            replay["ExpressionAttributeValues"] = values
        call = self.raw.query if op == "Query" else self.raw.scan
        return call(**replay).get("Items", [])

    def _after_sqs(self, parsed: dict[str, Any], model: Any, params: Any = None, context: Any = None,
                   **_: Any) -> None:
        meter = self.meter
        if meter is None:
            return
        op = model.name
        meter.sqs[op] += 1
        if op == "SendMessage":
            body = (context or {}).get("bench_sqs_body", "")
            meter.sqs_messages_sent += 1
            meter.sqs_billed += max(1, math.ceil(len(body.encode()) / SQS_CHUNK))
        elif op == "ReceiveMessage":
            messages = parsed.get("Messages", [])
            if not messages:
                meter.sqs[op] -= 1
                meter.sqs_empty_receives += 1
                return
            meter.sqs_messages_received += len(messages)
            payload = sum(len(m.get("Body", "").encode()) for m in messages)
            meter.sqs_billed += max(1, math.ceil(payload / SQS_CHUNK))
        else:
            meter.sqs_billed += 1

    def _after_ses(self, model: Any, **_: Any) -> None:
        if self.meter is not None:
            self.meter.ses[model.name] += 1


def remember_sqs_body(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if "MessageBody" in params:
        context["bench_sqs_body"] = params["MessageBody"]


# ------------------------------------------------------------------ the active recorder and timings

ACTIVE: Recorder | None = None


def install() -> Recorder:
    """Call right after mock_aws() starts (moto gives boto3 a fresh default session then)."""
    global ACTIVE
    ACTIVE = Recorder()
    return ACTIVE


def uninstall() -> None:
    global ACTIVE
    ACTIVE = None


@contextmanager
def counting() -> Iterator[Meter]:
    """A measured window: DynamoDB, SQS and SES calls made inside it are recorded."""
    assert ACTIVE is not None, "counting() runs inside fresh_stack()"
    with ACTIVE.window() as meter:
        yield meter


LATENCY_PER_REQUEST = 0.010  # seconds per AWS request assumed for the Lambda estimate (not measured)


@dataclass
class Sample:
    """One timed handler run. `wall` includes moto's in-process latency (an upper bound: moto's
    TransactWriteItems deep-copies every table, so it grows with the data); `own_cpu` is the
    thread CPU time of the handler's own code and the SDK, without moto and without the meter."""

    wall: float
    own_cpu: float
    aws_calls: int

    @property
    def estimate(self) -> float:
        return self.own_cpu + self.aws_calls * LATENCY_PER_REQUEST


@contextmanager
def timed(samples: list[Sample]) -> Iterator[None]:
    """Append a Sample of the block (a handler call): the meter's own hooks are taken out."""
    recorder = ACTIVE
    assert recorder is not None
    aws, hooks, calls = list(recorder.aws), list(recorder.hooks), recorder.aws_calls
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        wall = time.perf_counter() - wall - (recorder.hooks[0] - hooks[0])
        cpu = time.thread_time() - cpu - (recorder.hooks[1] - hooks[1]) - (recorder.aws[1] - aws[1])
        samples.append(Sample(wall, cpu, recorder.aws_calls - calls))


def typical(samples: list[Sample], per: float = 1.0) -> dict[str, float]:
    """Medians of a few runs, per unit of work."""
    return {"wall": median([s.wall for s in samples]) / per, "own_cpu": median([s.own_cpu for s in samples]) / per,
            "aws_calls": median([s.aws_calls for s in samples]) / per,
            "estimate": median([s.estimate for s in samples]) / per}


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
