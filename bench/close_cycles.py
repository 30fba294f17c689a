"""Bench: one close run with 10 cycles due among 20 and among 200 teams (requests must not grow);
and a run with 10 payment retries due (declined cards, the day after their first attempt).
DynamoDB requests come from the meter; Stripe requests are counted at the SDK's HTTP client."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import conftest
from usage_ledger import clock

from bench.meter import Sample, timed, typical
from bench.run import NOW, per_unit
from infra.localstripe import CARD_DECLINED_ON_CHARGE

DUE = 10
WORKER = "CloseBillingCyclesWorkerFunction"
OCTOBER = NOW - timedelta(days=40)


@contextmanager
def stripe_requests() -> Iterator[Counter[str]]:
    """Every HTTP request the Stripe SDK sends, by method and path (ids folded)."""
    import stripe

    calls: Counter[str] = Counter()
    original = stripe.RequestsClient.request

    def counted(self: Any, method: str, url: str, headers: Any, post_data: Any = None) -> Any:
        path = "/".join("{id}" if re.fullmatch(r"[a-z]+_\w*[A-Z0-9]\w*", part) else part
                        for part in urlsplit(url).path.split("/"))
        calls[f"{method.upper()} {path}"] += 1
        return original(self, method, url, headers, post_data)

    stripe.RequestsClient.request = counted  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        stripe.RequestsClient.request = original  # type: ignore[method-assign]


def _event(at: Any) -> dict[str, Any]:
    return {"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1",
            "resources": [], "detail": {}}


def _one(fresh_stack: Any, counting: Any, teams: int) -> dict[str, Any]:
    with fresh_stack() as api:
        world = conftest.World(api)
        world.resource("minutes", size=1)
        late, recent = [], []
        for number in range(teams):
            team = world.team(f"team-{number:03d}")
            # the first DUE teams bought in October (cycle Oct 1 - Oct 31 is due); the rest this month
            purchased = "2026-10-01T00:00:00Z" if number < DUE else "2026-11-20T00:00:00Z"
            world.subscription(team, "minutes", "payg", purchased_at=purchased, starts_at=purchased)
            if number < DUE:
                late.append(conftest.cloud_event(team, "minutes", 3, OCTOBER))
            else:
                recent.append(conftest.cloud_event(team, "minutes", 3, NOW - timedelta(hours=1)))
        # October's usage is ingested in October, while its cycle is open (units that arrive after a
        # cycle is past due go to the open cycle, so ingesting them now would leave nothing due)
        saved = clock.now
        clock.now = lambda: OCTOBER + timedelta(minutes=1)  # type: ignore[assignment]
        try:
            for start in range(0, len(late), 100):
                assert conftest.send_events(api, late[start:start + 100]).status == 202
            conftest.drain_events(api.stack)
        finally:
            clock.now = saved  # type: ignore[assignment]
        for start in range(0, len(recent), 100):
            assert conftest.send_events(api, recent[start:start + 100]).status == 202
        conftest.drain_events(api.stack)
        event = {"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": "123456789012", "time": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1",
                 "resources": [], "detail": {}}
        seconds: list[Sample] = []
        with counting() as counter, timed(seconds), stripe_requests() as stripe_calls:
            result = conftest.run_job(api.stack, "CloseBillingCyclesFunction", event)
        rerun_seconds: list[Sample] = []
        with counting() as rerun, timed(rerun_seconds):
            conftest.run_job(api.stack, "CloseBillingCyclesFunction", event)
        assert result["result"]["cycles"] == DUE and result["workers"][WORKER]["failed"] == 0, result
        return {"teams": teams, "cycles_due": DUE, "result": result, "dynamodb_requests": counter.total,
                "requests_per_closed_cycle": round(counter.total / DUE, 2), "by_operation": dict(counter.calls),
                "second_run_requests": rerun.total,
                "stripe_requests_per_closed_cycle": round(sum(stripe_calls.values()) / DUE, 2),
                "stripe_by_request": dict(stripe_calls),
                # the run's fixed part (one GSI Query, the invocation) is shared by its cycles
                # (the scheduled run, and one worker invocation for the one message of 10 cycles)
                "per_closed_cycle": per_unit(counter, DUE, WORKER, typical(seconds, DUE), 2 / DUE),
                "run_with_nothing_due": per_unit(rerun, 1, "CloseBillingCyclesFunction", typical(rerun_seconds), 1)}


def _retries(fresh_stack: Any, counting: Any) -> dict[str, Any]:
    """DUE invoices whose first attempt was declined at NOW; the run a day later retries each once."""
    with fresh_stack() as api:
        world = conftest.World(api)
        world.resource("minutes", size=1)
        events = []
        for number in range(DUE):
            team = world.team(f"team-{number:03d}")
            world.subscription(team, "minutes", "payg", purchased_at="2026-10-01T00:00:00Z",
                               starts_at="2026-10-01T00:00:00Z",
                               payment_method={"id": world.card(number=CARD_DECLINED_ON_CHARGE)})
            events.append(conftest.cloud_event(team, "minutes", 3, OCTOBER))
        saved = clock.now
        clock.now = lambda: OCTOBER + timedelta(minutes=1)  # type: ignore[assignment]
        try:
            assert conftest.send_events(api, events).status == 202
            conftest.drain_events(api.stack)
        finally:
            clock.now = saved  # type: ignore[assignment]
        first = conftest.run_job(api.stack, "CloseBillingCyclesFunction", _event(NOW))
        assert conftest.summary(first, conftest.CLOSE_METRICS)["payments_failed"] == DUE, first
        later = NOW + timedelta(days=1)
        clock.now = lambda: later  # type: ignore[assignment]
        try:
            seconds: list[Sample] = []
            with counting() as counter, timed(seconds), stripe_requests() as stripe_calls:
                result = conftest.run_job(api.stack, "CloseBillingCyclesFunction", _event(later))
        finally:
            clock.now = saved  # type: ignore[assignment]
        worker = conftest.summary(result, conftest.CLOSE_METRICS)
        assert worker["attempts"] == DUE and worker["closed"] == 0, result
        return {"retries_due": DUE, "result": result, "dynamodb_requests": counter.total,
                "requests_per_retry": round(counter.total / DUE, 2), "by_operation": dict(counter.calls),
                "stripe_requests_per_retry": round(sum(stripe_calls.values()) / DUE, 2),
                "stripe_by_request": dict(stripe_calls),
                "per_retry": per_unit(counter, DUE, WORKER, typical(seconds, DUE), 2 / DUE)}


def run(fresh_stack: Any, counting: Any) -> dict[str, Any]:
    small = _one(fresh_stack, counting, 20)
    large = _one(fresh_stack, counting, 200)
    return {"20_teams": small, "200_teams": large,
            "requests_ratio_200_over_20": round(large["dynamodb_requests"] / small["dynamodb_requests"], 2),
            "payment_retries": _retries(fresh_stack, counting)}
