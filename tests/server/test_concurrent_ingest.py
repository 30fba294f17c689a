"""Concurrent ingest workers against one moto server (threads share the store, requests serialized)."""
import threading
import uuid

import boto3
import pytest
from conftest import (
    Api,
    Identity,
    World,
    apply_environment,
    cloud_event,
    reset_domain_caches,
    stripe_parameters,
    utc,
)

from infra.lambdas import FakeLambdaContext, load_handler
from infra.moto_server import start_moto_server
from infra.stack import deploy

pytestmark = pytest.mark.server
ALICE = Identity.user("alice")


@pytest.fixture
def server_api(monkeypatch):
    url, stop = start_moto_server(port=0)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    reset_domain_caches()
    stack = deploy(boto3.session.Session(region_name="us-east-1"), prefix=f"t{uuid.uuid4().hex[:8]}", endpoint_url=url,
                   parameters=stripe_parameters())
    apply_environment(stack)
    yield Api(stack)
    stop()
    reset_domain_caches()


def sqs_record(events, message_id=None):
    from usage_ledger import clock
    from usage_ledger.adapters.queue import encode_message
    from usage_ledger.http.events import record_usage

    command = record_usage(events, {"content-type": "application/cloudevents-batch+json"}, clock.now())
    assert not command.invalid
    body = encode_message([event for _, event in command.events])
    return {"messageId": message_id or uuid.uuid4().hex, "receiptHandle": "r", "body": body,
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            "awsRegion": "us-east-1"}


def run_workers(api, batches):
    failures, errors = [], []

    def work(record, container):
        try:
            handler = load_handler(api.stack, "IngestFunction", container)  # a container per worker
            response = handler({"Records": [record]}, FakeLambdaContext("IngestFunction"))
            failures.extend(response.get("batchItemFailures", []))
        except Exception as error:  # pragma: no cover - surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(record, f"w{n}")) for n, record in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and not failures, (errors, failures)


def card(api):
    reply = api.get("/v1/teams/team-a/balances/minutes", as_=ALICE)
    assert reply.status == 200, reply.text
    return reply.json


def test_the_same_events_from_concurrent_workers_count_once(server_api):
    world = World(server_api)
    world.resource("minutes", size=20)
    world.team("team-a")
    world.subscription("team-a", "minutes", "flex", quantity=1000)
    events = [cloud_event("team-a", "minutes", 20, utc(2026, 11, 24), id=f"e{i}") for i in range(30)]
    # four producers re-sent the same batch: four SQS messages, four workers at once
    run_workers(server_api, [sqs_record(events) for _ in range(4)])
    assert card(server_api)["available"] == 970


def test_concurrent_workers_never_overdraw_a_small_balance(server_api):
    world = World(server_api)
    world.resource("minutes", size=20)
    world.team("team-a")
    world.subscription("team-a", "minutes", "flex", quantity=5)
    batches = [[cloud_event("team-a", "minutes", 60, utc(2026, 11, 24), id=f"w{w}-{i}") for i in range(2)]
               for w in range(4)]
    run_workers(server_api, [sqs_record(batch) for batch in batches])
    c = card(server_api)
    # 4 workers x 2 events x 3 units = 24 units: 5 from the balance, the rest kept as shortfall
    assert c["available"] == 0 and c["shortfall_units"] == 19 and c["total"] == 5
