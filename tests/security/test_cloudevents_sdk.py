"""POST /v1/events with the official CloudEvents SDK (PyPI `cloudevents` 2.x, and its 1.x API kept in
`cloudevents.v1`), as producers send: binary content mode by default (attributes in ce-* headers,
no Content-Type unless the event has a datacontenttype), structured mode on request. Before
issue 17 the SDK's default got a 415 "not JSON", and a 422 listing every attribute as missing once
a Content-Type was added. Each mode is counted, and copies in different modes count once."""
import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from cloudevents.v1 import http as v1_http
from conftest import FROZEN_AT, OPERATOR, Identity, drain_events

ALICE = Identity.user("alice")
AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
def team(world):
    world.resource("minutes", kind="api", size=1)
    world.team("team-a")
    world.subscription("team-a", "minutes", "flex", quantity=1000)
    return "team-a"


def usage_event(event_id, quantity=7, **attributes):
    return CloudEvent(attributes={"id": event_id, "source": "urn:sdk-producer", "type": "usage.recorded",
                                  "subject": "team-a", "time": AT, **attributes},
                      data={"resource_id": "minutes", "quantity": quantity, "user_id": "alice"})


def post(api, message):
    return api.call("POST", "/v1/events", as_=OPERATOR, raw_body=message.body, headers=message.headers)


def counted(api):
    report = api.get("/v1/teams/team-a/usage", as_=ALICE, query="from=2026-11-25&to=2026-11-25&group_by=user")
    assert report.status == 200, report.text
    return {series["key"]["user_id"]: sum(p["quantity"] for p in series["points"]) for series in report.json["series"]}


def test_the_sdk_default_binary_mode_is_accepted_and_counted(api, team):
    message = to_binary_event(usage_event("sdk-1"))
    assert "content-type" not in message.headers and message.headers["ce-id"] == "sdk-1"  # the SDK's default
    reply = post(api, message)
    assert (reply.status, reply.json) == (202, {"accepted": 1}), reply.text
    drain_events(api.stack)
    assert counted(api) == {"alice": 7}


def test_one_event_sent_in_binary_and_structured_mode_counts_once(api, team):
    # an id the binding must percent-encode in a header: non-ASCII, a space, a percent sign
    event = usage_event("café 100%", datacontenttype="application/json")
    binary, structured = to_binary_event(event), to_structured_event(event)
    assert binary.headers["ce-id"] == "caf%C3%A9%20100%25" and binary.headers["content-type"] == "application/json"
    assert structured.headers["content-type"] == "application/cloudevents+json"
    for message in (binary, structured, binary):
        assert post(api, message).status == 202
    drain_events(api.stack)
    assert counted(api) == {"alice": 7}  # the same (source, id) whatever the mode


def test_the_sdk_1x_api_binary_and_structured_modes_count_once_together(api, team):
    event = v1_http.CloudEvent({"id": "v1-1", "source": "urn:sdk-producer", "type": "usage.recorded",
                                "subject": "team-a", "time": "2026-11-25T10:00:00Z"},
                               {"resource_id": "minutes", "quantity": 5, "user_id": "alice"})
    headers, body = v1_http.to_binary(event)
    assert "content-type" not in {name.lower() for name in headers}
    assert api.call("POST", "/v1/events", as_=OPERATOR, raw_body=body, headers=headers).status == 202
    headers, body = v1_http.to_structured(event)
    assert api.call("POST", "/v1/events", as_=OPERATOR, raw_body=body, headers=headers).status == 202
    drain_events(api.stack)
    assert counted(api) == {"alice": 5}


def test_the_sdk_event_and_a_hand_built_batch_copy_count_once(api, team):
    assert post(api, to_binary_event(usage_event("mixed-1", quantity=3))).status == 202
    copy = {"specversion": "1.0", "id": "mixed-1", "source": "urn:sdk-producer", "type": "usage.recorded",
            "subject": "team-a", "time": "2026-11-25T10:00:00Z",
            "data": {"resource_id": "minutes", "quantity": 3, "user_id": "alice"}}
    reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body=json.dumps([copy]),
                     headers={"content-type": "application/cloudevents-batch+json"})
    assert reply.status == 202
    drain_events(api.stack)
    assert counted(api) == {"alice": 3}


def test_sdk_events_the_contract_refuses_get_a_problem_naming_the_header(api, team):
    reply = post(api, to_binary_event(usage_event("sdk-2", type="com.example.other")))
    assert reply.status == 422 and [e["path"] for e in reply.json["errors"]] == ["ce-type"]
    reply = post(api, to_binary_event(usage_event("sdk-3", quantity=-1)))
    assert reply.status == 422 and [e["path"] for e in reply.json["errors"]] == ["data.quantity"]
    text = CloudEvent(attributes={"id": "sdk-4", "source": "urn:sdk-producer", "type": "usage.recorded",
                                  "subject": "team-a", "time": FROZEN_AT, "datacontenttype": "text/plain"},
                      data="7 minutes")
    reply = post(api, to_binary_event(text))
    assert reply.status == 415 and "ce-*" in reply.json["detail"] and "application/json" in reply.json["detail"]
    drain_events(api.stack)
    assert counted(api) == {}
