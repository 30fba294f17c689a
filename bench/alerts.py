"""Bench: one scheduled alert evaluation over many teams, and one stream invocation for one team."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import conftest
from bench.run import NOW
from infra.lambdas import FakeLambdaContext, load_handler

TEAMS = 200


def run(fresh_stack: Any, counting: Any) -> dict[str, Any]:
    with fresh_stack() as api:
        world = conftest.World(api)
        world.resource("minutes", size=1)
        for number in range(TEAMS):
            team = world.team(f"team-{number:03d}")
            world.subscription(team, "minutes", "flex", quantity=100)
            reply = api.post(f"/v1/teams/{team}/alerts", {"name": "a", "windows_days": [10, 5],
                             "resource_ids": ["minutes"], "recipient_user_ids": ["alice"]},
                             as_=conftest.Identity.user("alice"))
            assert reply.status == 201, reply.text
        handler = load_handler(api.stack, "EvaluateAlertsFunction")
        scheduled = {"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
                     "account": "123456789012", "time": (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "region": "us-east-1", "resources": [], "detail": {}}
        handler(scheduled, FakeLambdaContext("EvaluateAlertsFunction"))  # warm the catalogue cache
        with counting() as counter:
            handler(scheduled, FakeLambdaContext("EvaluateAlertsFunction"))
        scheduled_requests = counter.total
        record = {"eventID": "1", "eventName": "MODIFY", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                  "eventSourceARN": api.stack.attributes[("LedgerTable", "StreamArn")],
                  "dynamodb": {"Keys": {"PK": {"S": "TEAM#team-000"}, "SK": {"S": "RES#minutes#BAL"}},
                               "ApproximateCreationDateTime": NOW.timestamp(), "SequenceNumber": "1",
                               "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}}
        with counting() as stream_counter:
            handler({"Records": [record]}, FakeLambdaContext("EvaluateAlertsFunction"))
        return {
            "scheduled_run": {"teams_with_alerts": TEAMS, "dynamodb_requests": scheduled_requests,
                              "by_operation": dict(counter.calls)},
            "stream_invocation_one_team": {"dynamodb_requests": stream_counter.total,
                                           "by_operation": dict(stream_counter.calls)},
        }
