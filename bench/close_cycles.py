"""Bench: one close run with 10 cycles due among 20 and among 200 teams (requests must not grow)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import conftest
from bench.run import NOW
from infra.lambdas import FakeLambdaContext, load_handler

DUE = 10


def _one(fresh_stack: Any, counting: Any, teams: int) -> dict[str, Any]:
    with fresh_stack() as api:
        world = conftest.World(api)
        world.resource("minutes", size=1)
        for number in range(teams):
            team = world.team(f"team-{number:03d}")
            # the first DUE teams bought in October (cycle Oct 1 - Oct 31 is due); the rest this month
            purchased = "2026-10-01T00:00:00Z" if number < DUE else "2026-11-20T00:00:00Z"
            world.subscription(team, "minutes", "payg", purchased_at=purchased, starts_at=purchased)
            at = NOW - timedelta(days=40) if number < DUE else NOW - timedelta(hours=1)
            conftest.send_events(api, [conftest.cloud_event(team, "minutes", 3, at)])
        conftest.drain_events(api.stack)
        handler = load_handler(api.stack, "CloseBillingCyclesFunction")
        event = {"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": "123456789012", "time": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1",
                 "resources": [], "detail": {}}
        with counting() as counter:
            result = handler(event, FakeLambdaContext("CloseBillingCyclesFunction"))
        with counting() as rerun:
            handler(event, FakeLambdaContext("CloseBillingCyclesFunction"))
        return {"teams": teams, "cycles_due": DUE, "result": result, "dynamodb_requests": counter.total,
                "requests_per_closed_cycle": round(counter.total / DUE, 2), "by_operation": dict(counter.calls),
                "second_run_requests": rerun.total}


def run(fresh_stack: Any, counting: Any) -> dict[str, Any]:
    small = _one(fresh_stack, counting, 20)
    large = _one(fresh_stack, counting, 200)
    return {"20_teams": small, "200_teams": large,
            "requests_ratio_200_over_20": round(large["dynamodb_requests"] / small["dynamodb_requests"], 2)}
