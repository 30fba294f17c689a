"""The scheduled jobs fanned out: the hourly functions list and enqueue, workers close and evaluate
as of the scheduled time; a run that dies halfway is resumed by the next; each item is done once."""
import uuid

import pytest
from conftest import (
    ALERT_METRICS,
    CLOSE_METRICS,
    FakeLambdaContext,
    Identity,
    TemplateHandlers,
    cloud_event,
    drain_events,
    load_handler,
    rfc3339,
    run_job,
    send_events,
    summary,
    utc,
)
from sent_mail import sent_emails

ALICE = Identity.user("alice")


def scheduled_event(at):
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": rfc3339(at), "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/hourly"], "detail": {}}


def drain_workers(stack, function="CloseBillingCyclesWorkerFunction"):
    """The worker takes its queue until it is empty (the local runner's poller)."""
    from infra.pollers import drain_queue

    return drain_queue(stack, TemplateHandlers(stack), function)


def emails():
    return sent_emails()


def invoices(api, team_id):
    reply = api.get(f"/v1/teams/{team_id}/invoices", as_=ALICE)
    assert reply.status == 200, reply.text
    return reply.json["items"]


@pytest.fixture
def payg_teams(api, world, clock):
    """Twelve teams, each with one payg cycle (Jan 15 - Feb 14) holding a unit: twelve due cycles."""
    world.resource("minutes", size=1)
    teams = [f"team-{n:02d}" for n in range(12)]
    for team_id in teams:
        world.team(team_id)
        world.subscription(team_id, "minutes", "payg", purchased_at="2026-01-15T10:00:00Z",
                           starts_at="2026-01-15T10:00:00Z", subscription_id="payg-1")
    clock.set(utc(2026, 2, 1))
    assert send_events(api, [cloud_event(team_id, "minutes", 1, utc(2026, 2, 1)) for team_id in teams]).status == 202
    drain_events(api.stack)
    return teams


class DiesHalfway:
    """The work queue of a scheduled run that dies after its first message went out."""

    def __init__(self, queue):
        self.queue = queue

    def send(self, items):
        self.queue.send(items[:1])
        raise ConnectionError("the run died after enqueuing one message")


def test_a_close_run_that_dies_halfway_is_resumed_by_the_next_and_each_cycle_closes_once(api, payg_teams, clock,
                                                                                        compose):
    from usage_ledger import bootstrap
    from usage_ledger.adapters.queue import WorkQueue

    at = utc(2026, 2, 15, 2)
    clock.set(at)
    compose(billing_queue=DiesHalfway(WorkQueue(bootstrap.container().settings.billing_work_queue_url)))
    with pytest.raises(ConnectionError):  # EventBridge retries the run; the DLQ and alarm see it at the end
        load_handler(api.stack, "CloseBillingCyclesFunction")(scheduled_event(at), FakeLambdaContext())
    first = drain_workers(api.stack)  # the half that was enqueued
    assert first.received == 1 and first.failed == 0
    assert sum(len(invoices(api, team_id)) for team_id in payg_teams) == 10  # one message: ten cycles
    compose()
    run = run_job(api.stack, "CloseBillingCyclesFunction", scheduled_event(utc(2026, 2, 15, 3)))
    assert run["result"] == {"cycles": 2, "messages": 1}  # only what is still due
    assert summary(run, CLOSE_METRICS)["closed"] == 2
    assert [len(invoices(api, team_id)) for team_id in payg_teams] == [1] * 12
    assert len(emails()) == 12
    again = run_job(api.stack, "CloseBillingCyclesFunction", scheduled_event(utc(2026, 2, 15, 4)))
    assert again["result"] == {"cycles": 0, "messages": 0}


def test_the_same_work_enqueued_twice_closes_each_cycle_once(api, payg_teams, clock):
    at = utc(2026, 2, 15, 2)
    clock.set(at)
    scheduled = load_handler(api.stack, "CloseBillingCyclesFunction")
    for _ in range(2):  # two runs enqueue before any worker takes a message
        assert scheduled(scheduled_event(at), FakeLambdaContext())["cycles"] == 12
    result = drain_workers(api.stack)
    assert result.received == 4 and result.failed == 0
    assert [len(invoices(api, team_id)) for team_id in payg_teams] == [1] * 12 and len(emails()) == 12


def test_a_worker_closes_as_of_the_scheduled_time_not_its_own_clock(api, payg_teams, clock):
    at = utc(2026, 2, 15, 2)
    clock.set(at)
    assert load_handler(api.stack, "CloseBillingCyclesFunction")(scheduled_event(at), FakeLambdaContext())["cycles"]
    clock.set(utc(2026, 2, 15, 9, 30))  # the workers run hours later (a backlog)
    assert drain_workers(api.stack).failed == 0
    (invoice,) = invoices(api, payg_teams[0])
    assert invoice["issued_at"] == "2026-02-15T02:00:00Z"


def test_the_alert_sweep_reaches_every_team_and_the_scheduled_run_only_reads_the_index(api, world, dynamodb_calls):
    world.resource("calls", kind="api", size=1)
    teams = [f"team-{n:02d}" for n in range(60)]
    for team_id in teams:  # an api subscription lists the team for the hourly run
        assert api.put(f"/v1/admin/teams/{team_id}", {"name": team_id}).status == 201
        world.subscription(team_id, "calls", "flex", quantity=10)
    dynamodb_calls.clear()
    handlers = TemplateHandlers(api.stack)
    scheduled = handlers["EvaluateAlertsFunction"](scheduled_event(utc(2026, 11, 25, 12)), FakeLambdaContext())
    assert scheduled == {"teams": 60, "messages": 3}  # 25 teams a message
    assert {(operation, params.get("IndexName")) for operation, params in dynamodb_calls} == {("Query", "GSI1")}
    run = run_job(api.stack, "EvaluateAlertsFunction", scheduled_event(utc(2026, 11, 25, 13)))
    assert summary(run, ALERT_METRICS)["teams"] == 60 * 2  # the first run's messages, then the second's
    assert run["workers"]["EvaluateAlertsWorkerFunction"] == {"received": 6, "succeeded": 6, "failed": 0}


def test_a_work_item_that_cannot_be_read_fails_its_message_only(api, payg_teams, clock):
    import boto3
    from usage_ledger import bootstrap

    at = utc(2026, 2, 15, 2)
    clock.set(at)
    boto3.client("sqs").send_message(QueueUrl=bootstrap.container().settings.billing_work_queue_url,
                                     MessageBody='{"kind": "close_cycles", "time": "yesterday", "cycles": []}')
    run = run_job(api.stack, "CloseBillingCyclesFunction", scheduled_event(at))
    assert run["workers"]["CloseBillingCyclesWorkerFunction"]["failed"] == 1
    assert summary(run, CLOSE_METRICS)["closed"] == 12
