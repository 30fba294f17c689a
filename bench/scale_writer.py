"""Bench (issue 18): one writer per hot key, and the fanned-out close job.

1. One team and resource, 1, 5 and 20 concurrent ingest workers against a moto server with the
   request lock (infra/moto_server.py: one AWS request at a time, as tests/server do), each worker
   its own Lambda container taking Lambda-sized batches (10 messages) with the local poller:
   - "fifo": POST /v1/events -> the FIFO events queue (one message group per team and resource),
     the template's path;
   - "standard": the same messages on the standard queue of earlier releases (no message group):
     every worker takes messages of the one team at once, as before this issue.
   Prints events/s (moto-bound: compare the rows, not the absolute numbers), version conflicts per
   message (commits that found the balance moved and were redone) and messages failed back to the
   queue.
2. The close job fanned out: cycles closed per worker invocation (a message holds
   jobs.CYCLES_PER_MESSAGE cycles, an invocation CloseWorkerBatchSize messages), measured on real
   due cycles in-process, and the invocations 10,000 due cycles need, with each invocation's
   duration estimated at DynamoDB/SES/charge latencies against half the worker's timeout; and the
   scheduled run's listing and enqueueing of 10,000 due cycles, measured.
"""
from __future__ import annotations

import math
import os
import threading
import time
import urllib.request
import uuid
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import boto3
import conftest

from bench.meter import Sample, timed, typical
from bench.run import NOW, TEMPLATE
from infra.lambdas import load_handler
from infra.pollers import SqsResult, run_job, scheduled_event, sqs_run_once, sqs_sources

# the sizes can be cut down on a loaded machine
WORKERS = tuple(int(n) for n in os.environ.get("SCALE_WRITER_WORKERS", "1,5,20").split(","))
QUEUES = tuple(os.environ.get("SCALE_WRITER_QUEUES", "EventsQueue,EventsFifoQueue").split(","))
# requests of EVENTS_PER_MESSAGE events for the one team and resource
MESSAGES = int(os.environ.get("SCALE_WRITER_MESSAGES", "40"))
EVENTS_PER_MESSAGE = 10
# latencies assumed for the estimate (issue 18): DynamoDB request, SES send, a card charge
DYNAMODB_SECONDS, SES_SECONDS, CHARGE_SECONDS = 0.010, 0.050, 0.5
DUE_FOR_SCALE = 10_000
MEASURED_CYCLES = 30
LISTED = 2_000  # index entries the scheduled run lists and enqueues, measured; scaled to DUE_FOR_SCALE


class Conflicts:
    """Counts the ingest commits that found the balance moved (Commit.RACED), across threads."""

    def __init__(self) -> None:
        self.count, self.lock = 0, threading.Lock()

    def __enter__(self) -> Conflicts:
        from usage_ledger.adapters.dynamodb.ingest import IngestStore
        from usage_ledger.service.ports import Commit

        self.original = original = IngestStore.commit

        def commit(store: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(store, *args, **kwargs)
            if result is Commit.RACED:
                with self.lock:
                    self.count += 1
            return result

        IngestStore.commit = commit  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        from usage_ledger.adapters.dynamodb.ingest import IngestStore

        IngestStore.commit = self.original  # type: ignore[method-assign]


def _server_stack() -> tuple[conftest.Api, Any]:
    from infra.moto_server import start_moto_server
    from infra.stack import deploy

    url, stop = start_moto_server(port=0)
    # moto's backends are the process's: start each row from empty tables (a DynamoDB transaction
    # in moto copies every table, so rows after bigger ones would be slower for moto's sake only)
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()
    os.environ["AWS_ENDPOINT_URL"] = url
    conftest.reset_domain_caches()
    stack = deploy(boto3.session.Session(region_name="us-east-1"), prefix=f"b{uuid.uuid4().hex[:8]}", endpoint_url=url)
    conftest.apply_environment(stack)

    def close() -> None:
        stop()
        os.environ.pop("AWS_ENDPOINT_URL", None)
        conftest.reset_domain_caches()

    return conftest.Api(stack), close


def _one_team(api: conftest.Api, workers: int, queue: str) -> dict[str, Any]:
    from usage_ledger.adapters.queue import encode_message
    from usage_ledger.domain.model import UsageEvent

    world = conftest.World(api)
    team = f"team-{uuid.uuid4().hex[:6]}"
    world.resource("minutes", size=1)
    world.team(team)
    world.subscription(team, "minutes", "flex", quantity=10_000_000)
    sqs = boto3.client("sqs")
    events = 0
    for number in range(MESSAGES):
        batch = [conftest.cloud_event(team, "minutes", 1, NOW - timedelta(minutes=number), id=f"{team}-{number}-{i}",
                                      user_id=f"u{i % 5}") for i in range(EVENTS_PER_MESSAGE)]
        if queue == "EventsFifoQueue":  # the producer route: one message per team and resource
            assert conftest.send_events(api, batch).status == 202
        else:  # a message of the standard queue, as the producer wrote them before
            body = encode_message([UsageEvent(id=e["id"], source=e["source"], team_id=team, resource_id="minutes",
                                              quantity=1, time=NOW - timedelta(minutes=number),
                                              user_id=e["data"]["user_id"])
                                   for e in batch])
            sqs.send_message(QueueUrl=api.stack.physical[queue], MessageBody=body)
        events += len(batch)
    source = next(s for s in sqs_sources(api.stack) if s.function == "IngestFunction"
                  and s.queue_url == api.stack.physical[queue])
    total, lock, done = SqsResult(), threading.Lock(), threading.Event()

    def work(container: str) -> None:
        handlers = {"IngestFunction": load_handler(api.stack, "IngestFunction", container)}
        client = boto3.client("sqs")
        while not done.is_set():
            # a failed message comes back at once (the template waits the visibility timeout)
            result = sqs_run_once(api.stack, handlers, source, client=client, retry_failed_after=0)
            with lock:
                total.add(result)
                if total.succeeded >= MESSAGES:
                    done.set()
            if not result.received:
                time.sleep(0.002)  # another worker holds the group (FIFO) or the queue is empty

    with Conflicts() as conflicts:
        started = time.perf_counter()
        threads = [threading.Thread(target=work, args=(f"w{workers}-{n}",)) for n in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        seconds = time.perf_counter() - started
    card = api.get(f"/v1/teams/{team}/balances/minutes", as_=conftest.Identity.user("alice")).json
    assert card["available"] == 10_000_000 - events, card  # every event counted once
    return {"workers": workers, "queue": queue, "events": events, "messages": MESSAGES,
            "events_per_second": round(events / seconds, 1),
            "version_conflicts_per_message": round(conflicts.count / MESSAGES, 3),
            "messages_failed_back_per_message": round(total.failed / MESSAGES, 3),
            "deliveries_per_message": round(total.received / MESSAGES, 3)}


def writers() -> dict[str, Any]:
    import sys

    rows = []
    for queue in QUEUES:
        for workers in WORKERS:
            api, close = _server_stack()  # each row on empty tables
            try:
                rows.append(_one_team(api, workers, queue))
            finally:
                close()
            print(f"scale_writer: {rows[-1]}", file=sys.stderr)
    return {"how": f"moto server with the request lock; {MESSAGES} messages of {EVENTS_PER_MESSAGE} events, "
                   "one team and resource; workers are threads, each its own Lambda container, batches of 10; "
                   "each row on a freshly reset moto",
            "rows": rows}


# ------------------------------------------------------------------ the close job, fanned out


def _due_cycles(api: conftest.Api, teams: int) -> None:
    from usage_ledger import clock

    world = conftest.World(api)
    world.resource("minutes", size=1)
    october = NOW - timedelta(days=40)
    events = []
    for number in range(teams):
        team = world.team(f"team-{number:04d}")
        world.subscription(team, "minutes", "payg", purchased_at="2026-10-01T00:00:00Z",
                           starts_at="2026-10-01T00:00:00Z")
        events.append(conftest.cloud_event(team, "minutes", 3, october))
    saved = clock.now
    clock.now = lambda: october + timedelta(minutes=1)  # type: ignore[assignment]
    try:
        for start in range(0, len(events), 100):
            assert conftest.send_events(api, events[start:start + 100]).status == 202
        conftest.drain_events(api.stack)
    finally:
        clock.now = saved  # type: ignore[assignment]


def _index_only_cycles(api: conftest.Api, count: int) -> None:
    """`count` entries in the due-cycle index (what the scheduled run pages), written directly."""
    from usage_ledger.adapters.dynamodb import keys

    table = boto3.resource("dynamodb").Table(api.stack.physical["LedgerTable"])
    with table.batch_writer() as batch:
        for number in range(count):
            batch.put_item(Item={"PK": keys.team_pk(f"due-{number:05d}"), "SK": keys.cycle_sk("minutes", "payg-1", 1),
                                 "entity": "cycle", "status": "open", "GSI1PK": keys.OPEN_CYCLES,
                                 "GSI1SK": "2026-11-01T00:00:00Z"})


def close_fanout(fresh_stack: Any, counting: Any) -> dict[str, Any]:
    from usage_ledger.service.jobs import CYCLES_PER_MESSAGE

    worker = "CloseBillingCyclesWorkerFunction"
    batch_size = int(TEMPLATE["Parameters"]["CloseWorkerBatchSize"]["Default"])
    timeout = int(TEMPLATE["Resources"][worker]["Properties"]["Timeout"])
    per_invocation = batch_size * CYCLES_PER_MESSAGE
    with fresh_stack() as api:
        _due_cycles(api, MEASURED_CYCLES)
        handlers = conftest.TemplateHandlers(api.stack)
        event = scheduled_event(api.stack, "CloseBillingCyclesFunction", NOW)
        invocations: list[Sample] = []
        from infra import pollers

        original = pollers.invoke

        def invoke(stack: Any, handlers_: Any, function: str, event_: dict[str, Any]) -> Any:
            if function != worker:
                return original(stack, handlers_, function, event_)
            with timed(invocations):
                return original(stack, handlers_, function, event_)

        pollers.invoke = invoke  # type: ignore[assignment]
        try:
            with counting() as counter:
                ran = run_job(api.stack, handlers, "CloseBillingCyclesFunction", event=event)
        finally:
            pollers.invoke = original  # type: ignore[assignment]
        assert ran["result"]["cycles"] == MEASURED_CYCLES and ran["workers"][worker]["failed"] == 0, ran
        closed = MEASURED_CYCLES
        requests_per_cycle = counter.total / closed
        per_cycle_estimate = requests_per_cycle * DYNAMODB_SECONDS + SES_SECONDS + CHARGE_SECONDS
        measured = typical(invocations, per_invocation)
    with fresh_stack() as api:
        _index_only_cycles(api, LISTED)
        handler = load_handler(api.stack, "CloseBillingCyclesFunction")
        from infra.lambdas import FakeLambdaContext

        seconds: list[Sample] = []
        with counting() as listing, timed(seconds):
            enqueued = handler(scheduled_event(api.stack, "CloseBillingCyclesFunction", NOW),
                               FakeLambdaContext("CloseBillingCyclesFunction"))
        assert enqueued["cycles"] == LISTED, enqueued
        scheduled_timeout = int(TEMPLATE["Resources"]["CloseBillingCyclesFunction"]["Properties"]["Timeout"])
        scale = DUE_FOR_SCALE / LISTED  # Query pages and SendMessageBatch calls grow linearly
        scheduled_estimate = (sum(listing.calls.values()) + sum(listing.sqs.values())) * DYNAMODB_SECONDS * scale
    invocation_estimate = per_invocation * per_cycle_estimate
    return {
        "cycles_per_message": CYCLES_PER_MESSAGE, "messages_per_invocation": batch_size,
        "cycles_closed_per_worker_invocation": per_invocation,
        "measured_cycles": closed, "worker_invocations_measured": len(invocations),
        "dynamodb_requests_per_cycle": round(requests_per_cycle, 2),
        "worker_invocation_seconds_moto": round(measured["wall"] * per_invocation, 3),
        "worker_invocation_seconds_estimate": round(invocation_estimate, 2),
        "estimate_how": (f"{requests_per_cycle:.1f} requests x {DYNAMODB_SECONDS * 1000:.0f} ms + SES "
                         f"{SES_SECONDS * 1000:.0f} ms + a card charge {CHARGE_SECONDS} s per cycle"),
        "worker_timeout_seconds": timeout,
        "worker_invocation_within_half_timeout": invocation_estimate <= timeout / 2,
        f"invocations_for_{DUE_FOR_SCALE}_due_cycles": math.ceil(DUE_FOR_SCALE / per_invocation),
        f"scheduled_run_for_{DUE_FOR_SCALE}_due_cycles": {
            "measured_with": LISTED, "messages_enqueued": round(enqueued["messages"] * scale),
            "dynamodb_requests": round(listing.total * scale), "sqs_requests": round(sum(listing.sqs.values()) * scale),
            "seconds_moto": round(seconds[0].wall * scale, 2),
            "seconds_estimate": round(scheduled_estimate, 2), "timeout_seconds": scheduled_timeout,
            # on the estimate: moto's in-process timings (a table scan per query page) are not DynamoDB's
            "within_half_timeout": scheduled_estimate <= scheduled_timeout / 2},
        "before_issue_18": "one invocation closed every due cycle: ~113 ms a cycle, ~2,650 a run of 300 s",
    }


# ------------------------------------------------------------------ one batch of a hot group, with round trips

ROUND_TRIP_SECONDS = 0.05  # injected before every DynamoDB request (the rounds are read from when they overlap)
DYNAMODB_TRANSACTION_SECONDS = 0.025  # what a round trip (a 100-item transaction) is assumed to take (issue 18)
LAMBDA_OVERHEAD_SECONDS = 0.030  # Lambda's FIFO poll, invoke and delete of a batch (assumed)
BATCH_MESSAGES, BATCH_EVENTS = 10, 100  # a FIFO Lambda batch at its largest: 10 messages of 100 events


@contextmanager
def _moto_cpu_seconds() -> Any:
    """CPU seconds moto spends answering (inside its lock): what DynamoDB does on its side."""
    from moto.core.botocore_stubber import BotocoreStubber

    spent, original = [0.0], BotocoreStubber.process_request

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent[0] += time.thread_time() - started

    BotocoreStubber.process_request = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        BotocoreStubber.process_request = original  # type: ignore[method-assign]


def _one_batch(fresh_stack: Any, claimers: int, round_trip_seconds: float) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor, wait

    from usage_ledger.adapters import aws
    from usage_ledger.adapters.dynamodb import ingest as ingest_store

    from bench.scale_items import without_moto_transaction_snapshots

    with fresh_stack() as api, without_moto_transaction_snapshots() as cancelled:
        world = conftest.World(api)
        world.resource("minutes", size=1)
        team = world.team("team-hot")
        world.subscription(team, "minutes", "flex", quantity=10_000_000)
        for message in range(BATCH_MESSAGES):
            assert conftest.send_events(api, [
                conftest.cloud_event(team, "minutes", 1, NOW - timedelta(minutes=i), id=f"m{message}-{i}",
                                     user_id=f"u{i % 5}") for i in range(BATCH_EVENTS)]).status == 202
        handlers = {"IngestFunction": load_handler(api.stack, "IngestFunction", f"round-trips-{claimers}")}
        source = next(s for s in sqs_sources(api.stack) if s.function == "IngestFunction"
                      and s.queue_url == api.stack.physical["EventsFifoQueue"])
        client, waits = aws.client("dynamodb"), []

        def round_trip(**_: Any) -> None:  # before moto answers, outside its lock: as the network would
            started = time.perf_counter()
            time.sleep(round_trip_seconds)
            waits.append((started, time.perf_counter()))

        saved, ingest_store._claimers = ingest_store._claimers, ThreadPoolExecutor(max_workers=claimers)
        # a warm container's pool: its threads already started
        wait([ingest_store._claimers.submit(time.sleep, 0.01) for _ in range(claimers)])
        client.meta.events.register_first("before-send.dynamodb", round_trip)
        try:
            with _moto_cpu_seconds() as moto:
                started, cpu = time.perf_counter(), time.process_time()
                result = sqs_run_once(api.stack, handlers, source, client=boto3.client("sqs"))
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            client.meta.events.unregister("before-send.dynamodb", round_trip)
            ingest_store._claimers.shutdown()
            ingest_store._claimers = saved
        assert (result.received, result.succeeded) == (BATCH_MESSAGES, BATCH_MESSAGES), result
        assert not cancelled, cancelled
        events = BATCH_MESSAGES * BATCH_EVENTS
        card = api.get(f"/v1/teams/{team}/balances/minutes", as_=conftest.Identity.user("alice")).json
        assert card["available"] == 10_000_000 - events, card
        waited, end = 0.0, 0.0  # the time covered by at least one round trip: the waits in sequence
        for started, ended in sorted(waits):
            waited += max(ended - max(started, end), 0.0)
            end = max(end, ended)
        return {"dynamodb_requests": len(waits), "seconds": seconds, "handler_cpu_seconds": cpu - moto[0],
                "round_trips_in_sequence": waited / round_trip_seconds if round_trip_seconds else 0.0}


def _claims(fresh_stack: Any, claimers: int) -> dict[str, Any]:
    batch = _one_batch(fresh_stack, claimers, ROUND_TRIP_SECONDS)
    estimate = (batch["round_trips_in_sequence"] * DYNAMODB_TRANSACTION_SECONDS + batch["handler_cpu_seconds"]
                + LAMBDA_OVERHEAD_SECONDS)
    events = BATCH_MESSAGES * BATCH_EVENTS
    return {"claimers": claimers, "events": events, "dynamodb_requests": batch["dynamodb_requests"],
            "round_trips_in_sequence": round(batch["round_trips_in_sequence"], 1),
            "handler_cpu_seconds": round(batch["handler_cpu_seconds"], 3),
            "batch_seconds_estimate": round(estimate, 3), "events_per_second_estimate": round(events / estimate)}


def batch_round_trips(fresh_stack: Any) -> dict[str, Any]:
    """One FIFO Lambda batch of one team and resource (10 messages of 100 events): how many DynamoDB
    round trips it waits for one after another, with its claims one after another (one claimer, as
    before) and in flight together (the ingest store's pool), and what that makes on DynamoDB."""
    from usage_ledger.adapters.dynamodb.ingest import CLAIM_CONCURRENCY

    return {"how": (f"{ROUND_TRIP_SECONDS}s injected before each DynamoDB request; round trips in sequence = the "
                    "time covered by at least one of them / that; estimate = those round trips x "
                    f"{DYNAMODB_TRANSACTION_SECONDS}s + the handler's CPU (the process's less moto's, one full "
                    f"core) + {LAMBDA_OVERHEAD_SECONDS}s of Lambda's poll, invoke and delete"),
            "claims_in_series": _claims(fresh_stack, 1),
            "claims_together": _claims(fresh_stack, CLAIM_CONCURRENCY)}


def run(fresh_stack: Any, counting: Any, parts: tuple[str, ...] = ("writers", "batch", "close")) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "writers" in parts:
        results["writers_one_team"] = writers()
    if "batch" in parts:
        results["one_batch_with_round_trips"] = batch_round_trips(fresh_stack)
    if "close" in parts:
        results["close_fanout"] = close_fanout(fresh_stack, counting)
    return results
