"""Accepted means stored (issue 17, contract section 3, Producers): each attack that got a 202 and
was then lost, or was stored under another meaning, with the reproduction that found it; then the
guarantee itself, as a property: whatever POST /v1/events accepts, ingest applies and counts."""
import base64
import json
import os
import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import boto3
import pytest
from conftest import (
    FROZEN_AT,
    OPERATOR,
    Identity,
    Reply,
    cloud_event,
    drain_events,
    paths,
    problem,
    queued,
    recorded_metrics,
    rfc3339,
    run_job,
    send_events,
)
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from usage_ledger.http.schemas import time_zones

from infra.apigw import http_event
from infra.lambdas import FakeLambdaContext, load_handler
from infra.localstripe import create_card

ALICE = Identity.user("alice")
BATCH = {"content-type": "application/cloudevents-batch+json"}
SINGLE = {"content-type": "application/cloudevents+json"}
JSON = {"content-type": "application/json"}
TODAY = "from=2026-11-25&to=2026-11-25"


def raw_event(api, method, path, *, as_, raw, headers, query=None, base64_body=False):
    """A request exactly as API Gateway could hand it over: any text or bytes, any query values."""
    route = next(route for route in api.routes if route.match(method, path) is not None)
    event = http_event(route, path, route.match(method, path), identity=as_, headers=headers)
    if raw is not None:
        event["body"] = base64.b64encode(raw).decode() if base64_body else raw
        event["isBase64Encoded"] = base64_body
    if query is not None:
        event["queryStringParameters"] = query
    response = load_handler(api.stack, route.function)(event, FakeLambdaContext(route.function))
    return Reply(response["statusCode"], response.get("headers") or {}, response.get("body") or "")


def usage_total(api, team="team-a", query=TODAY):
    report = api.get(f"/v1/teams/{team}/usage", as_=ALICE, query=query)
    assert report.status == 200, report.text
    return sum(point["quantity"] for series in report.json["series"] for point in series["points"])


@pytest.fixture
def teams(world):
    world.resource("minutes", kind="api", size=1)
    for team in ("team-a", "team-b"):
        world.team(team)
        world.subscription(team, "minutes", "flex", quantity=1000)
    return "team-a"


# ------------------------------------------------------------------ lone surrogates

EVENT_FIELDS = [("id",), ("source",), ("subject",), ("data", "user_id"), ("data", "app_id"), ("data", "resource_id"),
                ("time",), ("type",), ("specversion",), ("tenant",)]  # tenant: an extension attribute


@pytest.mark.parametrize("field", EVENT_FIELDS, ids=".".join)
def test_a_lone_surrogate_in_any_event_field_is_a_422_naming_it_and_nothing_is_queued(api, teams, field):
    # before: a 202, then ingest failed the whole message (UnicodeEncodeError in the dedupe hash),
    # valid partner events included, until it sat in the DLQ with its events claimed
    bad = cloud_event(teams, "minutes", 1, FROZEN_AT)
    target = bad["data"] if field[0] == "data" else bad
    target[field[-1]] = "x\ud800"
    reply = send_events(api, [cloud_event(teams, "minutes", 2, FROZEN_AT), bad])
    assert paths(reply) == ["[1]." + ".".join(field)]
    assert "valid Unicode" in reply.json["errors"][0]["message"]
    assert queued(api.stack) == 0


def test_a_lone_surrogate_anywhere_in_any_route_is_a_422_naming_it(api, teams):
    payg = {"resource_id": "minutes", "type": "payg", "starts_at": "2026-01-01T00:00:00Z",
            "purchased_at": "2026-01-01T00:00:00Z", "timezone": "UTC", "unit_amount": 250, "currency": "usd",
            "purchaser_user_id": "alice",
            "payment_method": {"id": "pm_\udfff"}}
    cases = [
        ("PUT", "/v1/admin/teams/team-c", OPERATOR, {"name": "C\ud800"}, "name"),
        ("PUT", "/v1/admin/teams/team-a/members/bob", OPERATOR,
         {"email": "b\ud800@example.com", "roles": [], "full_access": False}, "email"),
        ("PUT", "/v1/admin/teams/team-a/apps/app-1", OPERATOR, {"name": "App", "owner_user_id": "\ud800"},
         "owner_user_id"),
        ("PUT", "/v1/admin/resources/other", OPERATOR, {"kind": "api", "display_name": "O", "unit": "u\udc00"}, "unit"),
        ("POST", "/v1/admin/teams/team-a/subscriptions", OPERATOR, payg, "payment_method.id"),
        ("POST", "/v1/teams/team-a/alerts", ALICE, {"name": "x", "windows_days": [10], "resource_ids": ["minutes"],
                                                    "recipient_user_ids": ["alice", "\ud800"]},
         "recipient_user_ids[1]"),
        ("POST", "/v1/teams/team-a/alerts", ALICE, {"\ud800": 1}, "body"),  # a key: the path cannot show it
    ]
    for method, path, identity, body, field in cases:
        reply = raw_event(api, method, path, as_=identity, raw=json.dumps(body), headers=JSON)
        assert paths(reply) == [field], (path, reply.text)
    reply = raw_event(api, "GET", "/v1/teams/team-a/usage", as_=ALICE, raw=None, headers={},
                      query={"granularity": "day\ud800"})
    assert paths(reply) == ["granularity"]
    assert queued(api.stack) == 0


# ------------------------------------------------------------------ invalid UTF-8


def test_invalid_utf8_bytes_are_a_400_and_no_longer_make_two_ids_collide(api, teams):
    # before: both were decoded with U+FFFD in place of the bad byte, so "id-\xff" and "id-\xfe"
    # became one id: the second event was dropped as a duplicate of the first
    template = json.dumps([cloud_event(teams, "minutes", 1, FROZEN_AT, id="ID")]).encode()
    for bad_byte in (b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80"):  # the last: a surrogate spelled in bytes
        raw = template.replace(b'"ID"', b'"id-' + bad_byte + b'"')
        reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body=raw, headers=BATCH)
        assert "not valid UTF-8" in problem(reply, 400)["detail"]
    assert queued(api.stack) == 0


def test_invalid_utf8_is_a_400_on_every_route_whatever_the_gateway_hands_over(api, teams):
    routes = [("PUT", "/v1/admin/teams/team-c", OPERATOR), ("POST", "/v1/admin/teams/team-a/subscriptions", OPERATOR),
              ("POST", "/v1/teams/team-a/alerts", ALICE), ("POST", "/v1/events", OPERATOR)]
    for method, path, identity in routes:
        reply = raw_event(api, method, path, as_=identity, raw=b'{"name": "\xff"}', headers=JSON, base64_body=True)
        assert "not valid UTF-8" in problem(reply, 400)["detail"], path
        # a text body can only hold what UTF-8 cannot encode if the event itself was built so
        reply = raw_event(api, method, path, as_=identity, raw='{"name": "\ud800"}', headers=JSON)
        assert "not valid UTF-8" in problem(reply, 400)["detail"], path
    assert api.get("/v1/teams/team-c/balances", as_=ALICE).status == 404
    assert queued(api.stack) == 0


# ------------------------------------------------------------------ duplicate keys


def test_duplicate_keys_are_a_400_not_the_last_value(api, teams):
    # before: "quantity":1,"quantity":1000 counted 1000, and two subjects billed the second team
    event = json.dumps(cloud_event(teams, "minutes", 1, FROZEN_AT))
    quantities = event.replace('"quantity": 1', '"quantity": 1, "quantity": 1000')
    subjects = event.replace('"subject": "team-a"', '"subject": "team-a", "subject": "team-b"')
    assert quantities != event and subjects != event
    for raw, key in ((quantities, "quantity"), (subjects, "subject")):
        for headers, body in ((BATCH, f"[{raw}]"), (SINGLE, raw)):
            reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body=body, headers=headers)
            detail = problem(reply, 400)["detail"]
            assert f'duplicate key "{key}"' in detail
    assert queued(api.stack) == 0
    drain_events(api.stack)
    assert usage_total(api, "team-a") == 0 and usage_total(api, "team-b") == 0


def test_duplicate_keys_are_a_400_on_every_route(api, teams):
    cases = [("PUT", "/v1/admin/teams/team-a", OPERATOR, '{"name": "A", "name": "Mallory"}'),
             ("POST", "/v1/teams/team-a/alerts", ALICE,
              ('{"name": "x", "windows_days": [10], "resource_ids": ["minutes"], "recipient_user_ids": ["alice"], '
               '"recipient_user_ids": ["mallory"]}')),
             ("POST", "/v1/admin/teams/team-a/subscriptions", OPERATOR,
              ('{"resource_id": "minutes", "type": "flex", "quantity": 1, "quantity": 10000, '
               '"starts_at": "2026-01-01T00:00:00Z"}'))]
    for method, path, identity, raw in cases:
        reply = api.call(method, path, as_=identity, raw_body=raw, headers=JSON)
        assert "duplicate key" in problem(reply, 400)["detail"]
    assert api.get("/v1/teams/team-a/alerts", as_=ALICE).json["items"] == []
    assert api.put("/v1/admin/teams/team-a", {"name": "A"}).status == 200  # it still existed as TEAM-A


# ------------------------------------------------------------------ time zones


def test_only_iana_zone_and_link_names_are_time_zones(api, teams):
    # before: "localtime" (this machine's zone) and "Factory" were accepted and would bill there
    body = {"resource_id": "minutes", "type": "payg", "starts_at": "2026-01-01T00:00:00Z",
            "purchased_at": "2026-01-01T00:00:00Z", "unit_amount": 250, "currency": "usd",
            "purchaser_user_id": "alice",
            "payment_method": {"id": "pm_never_reached"}}
    for zone in ("localtime", "posixrules", "Factory", "../etc/passwd", "/etc/localtime", "posix/Europe/Paris",
                 "right/UTC", "zone.tab", "tzdata.zi"):
        reply = api.post("/v1/admin/teams/team-a/subscriptions", {**body, "timezone": zone}, as_=OPERATOR)
        assert paths(reply) == ["timezone"], zone
    for zone in ("UTC", "Etc/GMT+5", "Europe/Paris", "US/Pacific", "America/Argentina/Buenos_Aires"):
        card = {"id": create_card(api.stack.parameters["StripeApiBase"])}  # one card per subscription's customer
        reply = api.post("/v1/admin/teams/team-a/subscriptions", {**body, "timezone": zone, "payment_method": card},
                         as_=OPERATOR)
        assert reply.status == 201, (zone, reply.text)
    assert {"localtime", "posixrules", "Factory"}.isdisjoint(time_zones()) and "UTC" in time_zones()


# ------------------------------------------------------------------ binary content mode

BINARY = {"ce-specversion": "1.0", "ce-id": "bin-1", "ce-source": "urn:producer", "ce-type": "usage.recorded",
          "ce-subject": "team-a", "ce-time": "2026-11-25T10:00:00Z"}
DATA = json.dumps({"resource_id": "minutes", "quantity": 7})


def test_binary_mode_without_a_content_type_is_accepted_as_json_data(api, teams):
    # before: a 415 "not JSON" (the SDKs send no Content-Type for an event without datacontenttype)
    reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body=DATA, headers=BINARY)
    assert (reply.status, reply.json) == (202, {"accepted": 1}), reply.text
    drain_events(api.stack)
    assert usage_total(api) == 7


def test_binary_mode_with_a_json_content_type_counts_once_with_its_structured_copy(api, teams):
    # before: a 422 listing every attribute as missing
    reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body=DATA, headers={**BINARY, **JSON})
    assert reply.status == 202, reply.text
    structured = cloud_event(teams, "minutes", 7, "2026-11-25T10:00:00Z", id="bin-1", source="urn:producer")
    assert api.call("POST", "/v1/events", as_=OPERATOR, raw_body=json.dumps(structured), headers=SINGLE).status == 202
    drain_events(api.stack)
    assert usage_total(api) == 7  # the same (source, id): counted once


def test_binary_mode_refusals_name_the_header_and_say_which_modes_exist(api, teams):
    reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body=DATA,
                     headers={**BINARY, "content-type": "text/plain"})
    detail = problem(reply, 415)["detail"]
    for mode in ("application/cloudevents+json", "application/cloudevents-batch+json", "ce-*", "application/json"):
        assert mode in detail
    missing = {key: value for key, value in BINARY.items() if key not in ("ce-id", "ce-time")}
    assert paths(api.call("POST", "/v1/events", as_=OPERATOR, raw_body=DATA, headers=missing)) == ["ce-id", "ce-time"]
    for header, value in (("ce-id", "bin-%FF"), ("ce-id", "bin-%ED%A0%80"), ("ce-source", "x\ud800"),
                          ("ce-specversion", "0.3"), ("ce-data", "{}")):
        reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body=DATA, headers={**BINARY, header: value})
        assert paths(reply) == [header], (header, value)
    reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body='{"resource_id": "minutes", "quantity": -1}',
                     headers=BINARY)
    assert paths(reply) == ["data.quantity"]
    reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body=r'{"resource_id": "minutes\ud800", "quantity": 1}',
                     headers=BINARY)
    assert paths(reply) == ["data.resource_id"]
    # the data without its ce-* headers: the 422 says which shapes exist
    body = problem(api.call("POST", "/v1/events", as_=OPERATOR, raw_body=DATA, headers=JSON), 422)
    assert "ce-*" in body["detail"] and "application/cloudevents+json" in body["detail"]
    # another JSON kind is not one of the three modes
    reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body=DATA,
                     headers={"content-type": "application/merge-patch+json"})
    assert "application/cloudevents-batch+json" in problem(reply, 415)["detail"]
    assert queued(api.stack) == 0


def test_binary_mode_attributes_are_percent_decoded_as_the_binding_encodes_them(api, teams):
    headers = {**BINARY, "ce-id": "caf%C3%A9%20%25%22", "ce-source": "urn:producer"}
    assert api.call("POST", "/v1/events", as_=OPERATOR, raw_body=DATA, headers=headers).status == 202
    structured = cloud_event(teams, "minutes", 7, "2026-11-25T10:00:00Z", id='café %"', source="urn:producer")
    assert send_events(api, [structured]).status == 202
    drain_events(api.stack)
    assert usage_total(api) == 7


# ------------------------------------------------------------------ dates from user-sized numbers


def scheduled_alert_run(api):
    run = run_job(api.stack, "EvaluateAlertsFunction", {
        "version": "0", "id": "run", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": rfc3339(FROZEN_AT), "region": "us-east-1", "resources": [], "detail": {}})
    assert run["workers"]["EvaluateAlertsWorkerFunction"]["failed"] == 0, run  # no team failed
    return run


def test_a_projection_past_year_9999_is_null_and_the_alert_run_goes_on(api, world):
    # before: 10,000,000 units used 1 a week gave OverflowError: a 500 on GET /balances and a
    # failed alert evaluation for the team
    from sent_mail import sent_emails

    world.resource("minutes", kind="api", size=1)
    world.team("team-big")
    world.subscription("team-big", "minutes", "flex", quantity=10_000_000)
    world.team("team-small")
    world.subscription("team-small", "minutes", "flex", quantity=100)
    for team in ("team-big", "team-small"):
        reply = api.post(f"/v1/teams/{team}/alerts", {"name": "run-out", "windows_days": [10, 5],
                                                      "resource_ids": ["minutes"], "recipient_user_ids": ["alice"]},
                         as_=ALICE)
        assert reply.status == 201, reply.text
    yesterday = FROZEN_AT - timedelta(days=1)
    assert send_events(api, [cloud_event("team-big", "minutes", 1, yesterday),
                             cloud_event("team-small", "minutes", 95, yesterday)]).status == 202
    drain_events(api.stack)
    card = api.get("/v1/teams/team-big/balances/minutes", as_=ALICE)
    assert card.status == 200, card.text
    assert (card.json["days_remaining"], card.json["projected_depletion_date"]) == (69_999_993, None)
    assert api.get("/v1/teams/team-big/balances", as_=ALICE).status == 200
    scheduled_alert_run(api)  # fails if any team failed
    subjects = [message.subject for message in sent_emails()]
    assert len([subject for subject in subjects if subject.endswith('alert "run-out")')]) == 2, subjects  # team-small's


# ------------------------------------------------------------------ a message that cannot be applied


def send_message(stack, body, group=None):
    """A message on the FIFO events queue in its group with a fresh deduplication id (the runbook's
    replay), or without a group on the standard queue of earlier releases."""
    if group is None:
        boto3.client("sqs").send_message(QueueUrl=stack.physical["EventsQueue"], MessageBody=body)
        return
    boto3.client("sqs").send_message(QueueUrl=stack.physical["EventsFifoQueue"], MessageBody=body,
                                     MessageGroupId=group, MessageDeduplicationId=uuid.uuid4().hex)


def set_aside_items(stack):
    table = boto3.resource("dynamodb").Table(stack.physical["LedgerTable"])
    return table.query(KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": "SETASIDE"})["Items"]


def old_message(*events):
    """A message as the edge wrote it before it refused lone surrogates."""
    return json.dumps({"batch_id": "batch-old", "events": [
        {"id": event_id, "source": "s", "team_id": team, "resource_id": "minutes", "quantity": str(quantity),
         "time": "2026-11-25T10:00:00Z", "user_id": user, "app_id": None}
        for event_id, team, quantity, user in events]})


def test_a_queued_event_that_cannot_be_stored_is_set_aside_and_its_partners_are_counted(api, teams, caplog):
    # before: the whole message failed (valid partners included), five times, then the DLQ
    send_message(api.stack, old_message(("ok-1", "team-a", 5, None), ("bad-1", "team-b", 7, "x\ud800"),
                                        ("ok-2", "team-b", 3, "bob")))
    with recorded_metrics() as metrics:
        result = drain_events(api.stack, retry_failed_after=0)
    assert (result.succeeded, result.failed) == (1, 0)  # one message of the standard queue
    assert usage_total(api, "team-a") == 5 and usage_total(api, "team-b") == 3
    [item] = set_aside_items(api.stack)
    assert item["SK"] == "batch-old#UNSTORABLE" and item["events"] == 1 and "user_id" in item["reason"]
    assert json.loads(item["message"])["events"][0]["user_id"] == "x\ud800"
    [logged] = [record for record in caplog.records if record.getMessage().startswith("events set aside")]
    assert (logged.levelname, logged.batch_id, logged.events) == ("ERROR", "batch-old", 1)
    assert metrics.get("EventsSetAside") == 1  # the metric
    assert queued(api.stack) == 0


def test_a_group_that_fails_for_its_data_is_set_aside_and_replaying_it_counts_it_once(api, teams, monkeypatch):
    from usage_ledger.service import ingest

    original = ingest.apply_usage

    def breaks_for_team_b(state, resource, subscriptions, events, **kwargs):
        if events[0].team_id == "team-b":
            raise ArithmeticError("a rule that cannot decide this group")
        return original(state, resource, subscriptions, events, **kwargs)

    monkeypatch.setattr(ingest, "apply_usage", breaks_for_team_b)
    assert send_events(api, [cloud_event("team-a", "minutes", 5, FROZEN_AT, id="a"),
                             cloud_event("team-b", "minutes", 3, FROZEN_AT, id="b")]).status == 202
    result = drain_events(api.stack, retry_failed_after=0)
    assert (result.succeeded, result.failed) == (2, 0)  # a message per team and resource, none failed
    assert usage_total(api, "team-a") == 5 and usage_total(api, "team-b") == 0
    [item] = set_aside_items(api.stack)
    assert item["team_id"] == "team-b" and "ArithmeticError" in item["reason"]
    assert item["message_group"] == "team-b/minutes"
    # the operator fixes the cause and sends the item's message back (docs/operations.md)
    monkeypatch.setattr(ingest, "apply_usage", original)
    send_message(api.stack, item["message"], item["message_group"])
    send_message(api.stack, item["message"], item["message_group"])  # twice: still once
    drain_events(api.stack, retry_failed_after=0)
    assert usage_total(api, "team-a") == 5 and usage_total(api, "team-b") == 3
    # the events stay claimed by their batch: posting them again is a duplicate
    assert send_events(api, [cloud_event("team-b", "minutes", 3, FROZEN_AT, id="b")]).status == 202
    drain_events(api.stack)
    assert usage_total(api, "team-b") == 3


def expire(stack, table_logical_id, now):
    """What DynamoDB's TTL would have removed by `now` (moto keeps expired items)."""
    table = boto3.resource("dynamodb").Table(stack.physical[table_logical_id])
    for item in table.scan()["Items"]:
        if "expires_at" in item and item["expires_at"] < int(now.timestamp()):
            table.delete_item(Key={"PK": item["PK"], "SK": item["SK"]} if "SK" in item else {"PK": item["PK"]})


def test_a_set_aside_replay_weeks_later_counts_what_was_applied_once(api, teams, monkeypatch, clock):
    """Two messages of one group folded, then split (80 users' usage items do not fit one commit):
    the first applies alone, the second fails for its data, and both are set aside. Replayed after
    the SQS lifetimes are long gone, the first is found applied: each event counts once."""
    from usage_ledger.service import ingest

    original = ingest.apply_usage

    def breaks_for_the_second_alone(state, resource, subscriptions, events, **kwargs):
        if all(event.id.startswith("second-") for event in events):
            raise ArithmeticError("a rule that cannot decide this message")
        return original(state, resource, subscriptions, events, **kwargs)

    monkeypatch.setattr(ingest, "apply_usage", breaks_for_the_second_alone)
    for name in ("first", "second"):
        assert send_events(api, [cloud_event("team-a", "minutes", 1, FROZEN_AT, id=f"{name}-{n}",
                                             user_id=f"{name}-user-{n}") for n in range(40)]).status == 202
    drain_events(api.stack, retry_failed_after=0)
    assert usage_total(api) == 40
    set_aside = sorted(item["message"] for item in set_aside_items(api.stack))
    assert len(set_aside) == 2  # the group's messages, the applied one included
    monkeypatch.setattr(ingest, "apply_usage", original)
    later = FROZEN_AT + timedelta(days=60)  # past 14 days queued and 14 in the DLQ, twice over
    clock.set(later)
    expire(api.stack, "DedupeTable", later)
    for body in set_aside:
        send_message(api.stack, body, "team-a/minutes")
    drain_events(api.stack, retry_failed_after=0)
    assert usage_total(api) == 80
    card = api.get("/v1/teams/team-a/balances/minutes", as_=ALICE).json
    assert card["available"] == 1000 - 80


def test_a_throttled_group_fails_the_message_for_redelivery_after_the_others_are_counted(api, teams, monkeypatch):
    from botocore.exceptions import ClientError
    from usage_ledger.service import ingest

    original, throttles = ingest.apply_usage, [1]

    def throttled_for_team_b(state, resource, subscriptions, events, **kwargs):
        if events[0].team_id == "team-b" and throttles:
            throttles.pop()
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "Query")
        return original(state, resource, subscriptions, events, **kwargs)

    monkeypatch.setattr(ingest, "apply_usage", throttled_for_team_b)
    assert send_events(api, [cloud_event("team-a", "minutes", 5, FROZEN_AT, id="a"),
                             cloud_event("team-b", "minutes", 3, FROZEN_AT, id="b")]).status == 202
    first = drain_events(api.stack, retry_failed_after=0, max_batches=1)
    assert (first.succeeded, first.failed) == (1, 1)  # team-a's message, team-b's back to the queue
    assert usage_total(api, "team-a") == 5 and usage_total(api, "team-b") == 0
    assert drain_events(api.stack).succeeded == 1  # SQS redelivers it
    assert usage_total(api, "team-a") == 5 and usage_total(api, "team-b") == 3
    assert set_aside_items(api.stack) == []


# ------------------------------------------------------------------ the guarantee, as a property
#
# Arbitrary JSON-able events (any code point, lone surrogates included, any JSON number, any of the
# three modes, sometimes a bad byte or a duplicate key) go through the producer's handler; whatever
# it accepts (202) must then be applied by ingest and counted: in the usage report by user and by
# app, and in the balance card's charged units and pending usage. Nothing accepted may fail a
# message or be set aside. (source, id) pairs repeat across examples on purpose: the first counts.

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FUZZ_EXAMPLES"),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])
SIZE = 20  # base units in a charged unit of "minutes"
ANY_CHAR = st.characters(codec=None, exclude_categories=())  # every code point, surrogates included
ANY_TEXT = st.text(ANY_CHAR, max_size=12)
SHORT_IDS = st.text("ab-1é\U0001F680", min_size=1, max_size=3)  # collide across examples
JSON_NUMBER = r"-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,9})?([eE][+-]?[0-9]{1,3})?"
CE_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')  # the binding's unencoded characters
REPORT = "from=2024-11-25&to=2026-11-26&granularity=month"


def event_time(seconds, offset_minutes, fraction):
    local = FROZEN_AT + timedelta(seconds=seconds, minutes=offset_minutes)
    sign, minutes = ("-" if offset_minutes < 0 else "+"), abs(offset_minutes)
    suffix = "Z" if offset_minutes == 0 else f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + suffix


WORDS = st.text(ANY_CHAR, min_size=1, max_size=12)  # any code point; blank or surrogate ones are refused
GOOD = {  # what the edge takes (any unicode in the free-form fields)
    "specversion": st.just("1.0"),
    "id": st.one_of(SHORT_IDS, WORDS),
    "source": st.one_of(st.sampled_from(["urn:a", "urn:b"]), WORDS),
    "type": st.just("usage.recorded"),
    "subject": st.sampled_from(["team-a", "team-b"]),
    "time": st.builds(event_time, st.integers(-729 * 86_400, 86_400 - 3_600),
                      st.sampled_from([0, 330, -300, 840, -720]), st.sampled_from(["", "5", "123456"])),
    "resource_id": st.just("minutes"),
    "quantity": st.one_of(
        st.integers(1, 10_000).map(str),
        st.integers(1, 10**12).map(str),
        st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10) ** 12, places=6).map(lambda d: format(d, "f")),
        st.from_regex(JSON_NUMBER, fullmatch=True).filter(lambda text: Decimal(text) > 0)),
}
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | ANY_TEXT,
                           lambda inner: st.lists(inner, max_size=2) | st.dictionaries(ANY_TEXT, inner, max_size=2),
                           max_leaves=4)
BAD = {  # anything else
    **{name: st.one_of(ANY_TEXT, JSON_VALUES) for name in GOOD},
    "time": st.one_of(ANY_TEXT, st.builds(event_time, st.integers(-800 * 86_400, 3 * 86_400), st.just(0),
                                          st.just(""))),
    "quantity": st.one_of(st.from_regex(JSON_NUMBER, fullmatch=True),
                          st.sampled_from(['"5"', "true", "null", "[1]", "{}", "1e400", "-0", "0.0000001", "1E+3",
                                           "2.50e-1", "1" * 30])),
}


@st.composite
def usage_events(draw, hostile):
    """One event: (the event, its JSON text with the quantity's raw number, the quantity text), from
    what the edge takes, or when hostile with a field or two from anything else."""
    broken = draw(st.sets(st.sampled_from(sorted(GOOD)), max_size=2), label="broken") if hostile else set()

    def field(name):
        return draw((BAD if name in broken else GOOD)[name], label=name)

    quantity = field("quantity")
    data = {"resource_id": field("resource_id")}
    for name in ("user_id", "app_id"):
        value = draw(st.one_of(st.none(), st.sampled_from(["alice", "bob"]), WORDS), label=name)
        if value is not None:
            data[name] = value
    event = {name: field(name) for name in ("specversion", "id", "source", "type", "subject", "time")}
    event["data"] = data
    extensions = draw(st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=2), label="extensions")
    event = {**event, **{key: value for key, value in extensions.items() if key not in event}}
    text = json.dumps(event).replace('"data": {', '"data": {"quantity": ' + quantity + ", ", 1)
    return event, text, quantity


def binary_headers(event):
    """The event's attributes as ce-* headers, percent-encoded as the binding and its SDKs do
    (a lone surrogate goes as the bytes Python would give it: not UTF-8)."""
    headers = {}
    for name, value in event.items():
        if name == "data" or not name.isascii() or not name.isalnum() or not name.islower():
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        headers["ce-" + name] = quote(text.encode("utf-8", "surrogatepass"), safe=CE_SAFE)
    return headers


@st.composite
def requests(draw):
    """(headers, body bytes, the events as sent) for one POST /v1/events."""
    mode = draw(st.sampled_from(["batch", "single", "binary", "binary-json", "plain-json"]), label="mode")
    hostile = draw(st.booleans(), label="hostile")
    events = draw(st.lists(usage_events(hostile), min_size=1, max_size=1 if mode != "batch" else 5), label="events")
    if mode == "batch":
        headers, body = dict(BATCH), "[" + ",".join(text for _, text, _ in events) + "]"
    elif mode in ("single", "plain-json"):
        headers, body = dict(SINGLE if mode == "single" else JSON), events[0][1]
    else:
        event, _, quantity = events[0]
        headers = binary_headers(event)
        if mode == "binary-json":
            headers.update(JSON)
        body = json.dumps(event["data"]).replace("{", '{"quantity": ' + quantity + ", ", 1)
    raw = body.encode("utf-8", "surrogatepass")  # a lone surrogate in a string's text: not UTF-8
    corruption = draw(st.sampled_from([None, "byte", "duplicate"]), label="corruption") if hostile else None
    if corruption == "byte":
        at = draw(st.integers(0, len(raw) - 1), label="at")
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + raw[at + 1:]
    elif corruption == "duplicate":
        raw = raw.replace(b'"quantity": ', b'"quantity": 1, "quantity": ', 1)
    return headers, raw, [(event, quantity) for event, _, quantity in events]


class Counted:
    """What the ledger must show: the first accepted copy of each (source, id), per team."""

    def __init__(self):
        self.keys = set()
        self.by_user = {team: defaultdict(Decimal) for team in ("team-a", "team-b")}
        self.by_app = {team: defaultdict(Decimal) for team in ("team-a", "team-b")}
        self.total = {team: Decimal(0) for team in ("team-a", "team-b")}
        self.accepted = 0

    def accept(self, events):
        for event, quantity in events:
            self.accepted += 1
            if (event["source"], event["id"]) in self.keys:
                continue
            self.keys.add((event["source"], event["id"]))
            team, amount = event["subject"], Decimal(quantity)
            self.by_user[team][event["data"].get("user_id")] += amount
            self.by_app[team][event["data"].get("app_id")] += amount
            self.total[team] += amount


def reported(api, team, group_by):
    reply = api.get(f"/v1/teams/{team}/usage", as_=ALICE, query=f"{REPORT}&group_by={group_by}")
    assert reply.status == 200, reply.text
    report = json.loads(reply.text, parse_float=Decimal)  # exact, as the API writes them
    return {series["key"][f"{group_by}_id"]: sum(point["quantity"] for point in series["points"])
            for series in report["series"]}


def test_whatever_the_edge_accepts_ingest_applies_and_counts(api, world):
    world.resource("minutes", kind="api", size=SIZE)
    for team in ("team-a", "team-b"):
        world.team(team)
        world.subscription(team, "minutes", "flex", quantity=10**12, starts_at="2024-01-01T00:00:00Z")
    route = next(route for route in api.routes if route.route_key == "POST /v1/events")
    handler = load_handler(api.stack, route.function)
    counted = Counted()

    @PROPERTY
    @given(request=requests())
    def run(request):
        headers, raw, events = request
        event = http_event(route, "/v1/events", {}, identity=OPERATOR, headers=headers, body=raw)
        reply = handler(event, FakeLambdaContext(route.function))
        status = reply["statusCode"]
        note(f"{status} {reply['body'][:400]}")
        assert status in (202, 400, 413, 415, 422), reply["body"]
        if status == 202:
            assert json.loads(reply["body"]) == {"accepted": len(events)}
            counted.accept(events)
        result = drain_events(api.stack, retry_failed_after=0)
        assert result.failed == 0, "an accepted message failed in ingest"
        assert set_aside_items(api.stack) == [], "an accepted event was set aside"
        for team in ("team-a", "team-b"):
            users = {user: amount for user, amount in counted.by_user[team].items() if amount}
            apps = {app: amount for app, amount in counted.by_app[team].items() if amount}
            assert {k: v for k, v in reported(api, team, "user").items() if v} == users
            assert {k: v for k, v in reported(api, team, "app").items() if v} == apps
            card = json.loads(api.get(f"/v1/teams/{team}/balances/minutes", as_=ALICE).text, parse_float=Decimal)
            charged, pending = divmod(counted.total[team], SIZE)
            assert card["total"] - card["available"] + card["shortfall_units"] == charged
            assert card["pending_usage"] == pending

    run()
    assert counted.accepted >= EXAMPLES // 4, f"only {counted.accepted} events accepted: the property says little"
