"""Bench: one scheduled alert evaluation over many teams, one stream invocation for one team, and
one stream invocation that sends an alert email."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import conftest

from bench.meter import Sample, timed, typical
from bench.run import NOW, per_unit
from infra.lambdas import FakeLambdaContext, load_handler
from infra.pollers import run_job

TEAMS = 200
PER = 1000  # the cost table's unit: one scheduled run per 1,000 teams with alerts (requests are linear)
RUNS = 3
FUNCTION = "EvaluateAlertsFunction"  # the schedule
STREAM_FUNCTION = "BalanceChangedAlertsFunction"  # balance changes


def _stream_record(api: conftest.Api, team: str) -> dict[str, Any]:
    return {"eventID": "1", "eventName": "MODIFY", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "eventSourceARN": api.stack.attributes[("LedgerTable", "StreamArn")],
            "dynamodb": {"Keys": {"PK": {"S": f"TEAM#{team}"}, "SK": {"S": "RES#minutes#BAL"}},
                         "ApproximateCreationDateTime": NOW.timestamp(), "SequenceNumber": "1",
                         "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}}


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
        handlers = conftest.TemplateHandlers(api.stack)

        def handler(event: Any, _context: Any) -> Any:  # the scheduled run, then its workers
            return run_job(api.stack, handlers, FUNCTION, event=event)

        scheduled = {"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
                     "account": "123456789012", "time": (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "region": "us-east-1", "resources": [], "detail": {}}
        handler(scheduled, FakeLambdaContext(FUNCTION))  # warm the catalogue cache
        seconds: list[Sample] = []
        with counting() as counter, timed(seconds):
            handler(scheduled, FakeLambdaContext(FUNCTION))
        scheduled_requests = counter.total
        for _ in range(RUNS - 1):  # more timings, hooks idle
            with timed(seconds):
                handler(scheduled, FakeLambdaContext(FUNCTION))

        on_change = load_handler(api.stack, STREAM_FUNCTION)
        record = _stream_record(api, "team-000")
        stream_seconds: list[Sample] = []
        with counting() as stream_counter, timed(stream_seconds):
            on_change({"Records": [record]}, FakeLambdaContext(STREAM_FUNCTION))
        for _ in range(RUNS - 1):
            with timed(stream_seconds):
                on_change({"Records": [record]}, FakeLambdaContext(STREAM_FUNCTION))

        # team-001 used half of its 100 units yesterday: 50 left at 50 per 7 days = 7 days, inside the
        # 10-day window only, so exactly one email goes out (claim, SES send, mark sent)
        assert conftest.send_events(api, [conftest.cloud_event("team-001", "minutes", 50, NOW - timedelta(days=1))
                                          ]).status == 202
        conftest.drain_events(api.stack)
        email_seconds: list[Sample] = []
        with counting() as email_counter, timed(email_seconds):
            on_change({"Records": [_stream_record(api, "team-001")]}, FakeLambdaContext(STREAM_FUNCTION))
        emails = sum(email_counter.ses.values())
        assert emails == 1, email_counter.ses
        return {
            "scheduled_run": {"teams_with_alerts": TEAMS, "dynamodb_requests": scheduled_requests,
                              "by_operation": dict(counter.calls),
                              f"per_{PER}_teams": per_unit(counter, TEAMS / PER, FUNCTION,
                                                           typical(seconds, TEAMS / PER), 1)},
            "stream_invocation_one_team": {"dynamodb_requests": stream_counter.total,
                                           "by_operation": dict(stream_counter.calls),
                                           "per_invocation": per_unit(stream_counter, 1, STREAM_FUNCTION,
                                                                      typical(stream_seconds), 1)},
            "stream_invocation_one_email": {
                "note": "one team's stream-triggered evaluation that sends one run-out alert email",
                "dynamodb_requests": email_counter.total, "by_operation": dict(email_counter.calls),
                "per_email": per_unit(email_counter, emails, STREAM_FUNCTION, typical(email_seconds), 1)},
        }
