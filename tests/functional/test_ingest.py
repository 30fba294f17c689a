"""Ingest through the handlers: POST /v1/events -> SQS -> IngestFunction -> balances."""
import pytest
from conftest import ANONYMOUS, OPERATOR, Identity, cloud_event, drain_events, send_events, utc

ALICE = Identity.user("alice")
NOW = utc(2026, 11, 20, 12)


@pytest.fixture
def team(world):
    world.resource("minutes", kind="api", size=20)
    world.team("team-a")
    return "team-a"


def balance(api, team_id="team-a", resource_id="minutes"):
    reply = api.get(f"/v1/teams/{team_id}/balances/{resource_id}", as_=ALICE)
    assert reply.status == 200, reply.text
    return reply.json


def test_partial_units_roll_over_across_events(api, world, team):
    world.subscription(team, "minutes", "flex", quantity=10)
    events = [cloud_event(team, "minutes", 15, NOW), cloud_event(team, "minutes", 15, NOW)]
    assert send_events(api, events).json == {"accepted": 2}
    drain_events(api.stack)
    card = balance(api)
    assert card["available"] == 9 and card["total"] == 10
    assert card["pending_usage"] == 10


def test_duplicates_in_one_batch_and_across_batches_count_once(api, world, team):
    world.subscription(team, "minutes", "flex", quantity=100)
    event = cloud_event(team, "minutes", 20, NOW, id="e-1")
    send_events(api, [event, event, cloud_event(team, "minutes", 20, NOW, id="e-2")])
    send_events(api, [event])
    drain_events(api.stack)
    send_events(api, [event])
    drain_events(api.stack)
    assert balance(api)["available"] == 98


def test_units_past_prepaid_go_to_shortfall_without_payg(api, world, team):
    world.subscription(team, "minutes", "free", quantity=2)
    send_events(api, [cloud_event(team, "minutes", 100, NOW)])
    drain_events(api.stack)
    card = balance(api)
    assert card["available"] == 0 and card["shortfall_units"] == 3 and card["status"] == "exhausted"


def test_consumption_order_free_before_flex(api, world, team):
    world.subscription(team, "minutes", "flex", quantity=10, subscription_id="flex-1")
    world.subscription(team, "minutes", "free", quantity=3, subscription_id="free-1")
    send_events(api, [cloud_event(team, "minutes", 100, NOW)])
    drain_events(api.stack)
    rows = {row["subscription_id"]: row for row in balance(api)["subscriptions"]}
    assert [r["subscription_id"] for r in balance(api)["subscriptions"]] == ["free-1", "flex-1"]
    assert rows["free-1"]["available"] == 0 and rows["flex-1"]["available"] == 8


def test_units_past_prepaid_go_to_the_payg_cycle(api, world, team, monkeypatch):
    world.subscription(team, "minutes", "free", quantity=1)
    world.subscription(team, "minutes", "payg", purchased_at="2026-11-15T10:00:00Z", starts_at="2026-11-15T10:00:00Z")
    send_events(api, [cloud_event(team, "minutes", 60, NOW)])
    drain_events(api.stack)
    card = balance(api)
    assert card["payg"]["charged_units"] == 2 and card["payg"]["amount"] == 500
    assert card["payg"]["cycle_start"] == "2026-11-15" and card["payg"]["cycle_end"] == "2026-12-14"
    assert card["status"] == "low"  # 0 of 1 prepaid left, but payg keeps it from "exhausted"


def test_usage_of_a_resource_without_subscription_is_recorded_as_shortfall(api, world, team):
    send_events(api, [cloud_event(team, "minutes", 40, NOW)])
    drain_events(api.stack)
    world.subscription(team, "minutes", "flex", quantity=5)
    assert balance(api)["shortfall_units"] == 2


@pytest.mark.parametrize("mutate, path", [
    (lambda e: e.update(specversion="0.3"), "[0].specversion"),
    (lambda e: e.pop("id"), "[0].id"),
    (lambda e: e.update(type="other"), "[0].type"),
    (lambda e: e.update(subject="nobody"), "[0].subject"),
    (lambda e: e.update(time="2026-11-20T12:00:00"), "[0].time"),
    (lambda e: e.update(time="yesterday"), "[0].time"),
    (lambda e: e["data"].update(quantity=0), "[0].data.quantity"),
    (lambda e: e["data"].update(quantity=-3), "[0].data.quantity"),
    (lambda e: e["data"].update(quantity="12"), "[0].data.quantity"),
    (lambda e: e["data"].update(quantity=True), "[0].data.quantity"),
    (lambda e: e["data"].update(resource_id="unknown"), "[0].data.resource_id"),
    (lambda e: e["data"].pop("quantity"), "[0].data.quantity"),
    (lambda e: e.update(data="x"), "[0].data"),
])
def test_bad_events_are_refused_naming_the_field_and_nothing_is_enqueued(api, team, mutate, path):
    bad = cloud_event(team, "minutes", 5, NOW)
    mutate(bad)
    reply = send_events(api, [bad])
    assert reply.status == 422, reply.text
    assert reply.content_type == "application/problem+json"
    assert path in [error["path"] for error in reply.json["errors"]]
    assert drain_events(api.stack).received == 0


def test_a_batch_is_all_or_nothing(api, team):
    good = cloud_event(team, "minutes", 5, NOW)
    bad = cloud_event(team, "minutes", -1, NOW)
    reply = send_events(api, [good, good, bad])
    assert reply.status == 422
    assert [error["path"] for error in reply.json["errors"]] == ["[2].data.quantity"]
    assert drain_events(api.stack).received == 0


@pytest.mark.parametrize("count", [0, 101])
def test_empty_and_oversized_batches_are_refused(api, team, count):
    reply = send_events(api, [cloud_event(team, "minutes", 1, NOW) for _ in range(count)])
    assert reply.status == 422 and reply.content_type == "application/problem+json"


def test_malformed_json_is_a_400_problem(api, team):
    reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body="{not json",
                     headers={"content-type": "application/cloudevents+json"})
    assert reply.status == 400 and reply.content_type == "application/problem+json"


def test_single_event_content_type(api, world, team):
    world.subscription(team, "minutes", "flex", quantity=5)
    reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body=__import__("json").dumps(
        cloud_event(team, "minutes", 20, NOW)), headers={"content-type": "application/cloudevents+json"})
    assert reply.status == 202 and reply.json == {"accepted": 1}
    drain_events(api.stack)
    assert balance(api)["available"] == 4


def test_events_need_iam(api, team):
    reply = api.call("POST", "/v1/events", as_=ALICE, raw_body="[]",
                     headers={"content-type": "application/cloudevents-batch+json"})
    assert reply.status == 403
    reply = api.call("POST", "/v1/events", as_=ANONYMOUS, raw_body="[]",
                     headers={"content-type": "application/cloudevents-batch+json"})
    assert reply.status == 401
