"""Crash between any two ingest writes, then SQS redelivery: the same state as one clean run."""
import pytest
from conftest import Identity, cloud_event, drain_events, send_events, utc

ALICE = Identity.user("alice")


class Crash(BaseException):
    """The process dying: no `except Exception` runs (ingest sets aside groups that raise errors)."""


class CrashOnce:
    """Fails the n-th TransactWriteItems, before it is sent or after it was applied."""

    def __init__(self, nth: int, after: bool) -> None:
        self.nth, self.after, self.calls, self.fired = nth, after, 0, False

    def __call__(self, **kwargs):
        self.calls += 1
        if self.calls == self.nth and not self.fired:
            self.fired = True
            raise Crash(f"injected crash {'after' if self.after else 'before'} write #{self.nth}")


def state_after(api, world, crash=None):
    from usage_ledger.adapters import aws

    world.resource("minutes", size=20)
    world.team("team-a")
    world.subscription("team-a", "minutes", "free", quantity=2)
    world.subscription("team-a", "minutes", "payg", purchased_at="2026-11-01T00:00:00Z")
    events = [cloud_event("team-a", "minutes", 15, utc(2026, 11, 20 + i % 3), id=f"e{i}", user_id=f"u{i % 2}")
              for i in range(12)]
    send_events(api, events)
    events_client = aws.client("dynamodb").meta.events
    if crash:
        hook = "after-call.dynamodb.TransactWriteItems" if crash.after else "before-call.dynamodb.TransactWriteItems"
        events_client.register(hook, crash)
    first = drain_events(api.stack, retry_failed_after=0)
    if crash:
        events_client.unregister(hook, crash)
        assert crash.fired and first.failed == 1
        drain_events(api.stack, retry_failed_after=0)  # the redelivery
    card = api.get("/v1/teams/team-a/balances/minutes", as_=ALICE).json
    usage = api.get("/v1/teams/team-a/usage", as_=ALICE, query="from=2026-11-20&to=2026-11-22&group_by=user").json
    return card, usage["series"]


# per message: write 1 claims the events, write 2 applies them to the balance, cycle and usage
@pytest.mark.parametrize("nth", [1, 2])
@pytest.mark.parametrize("after", [False, True])
def test_a_crash_then_redelivery_leaves_the_state_of_one_clean_run(api, world, nth, after):
    crashed_card, crashed_usage = state_after(api, world, CrashOnce(nth, after))
    assert crashed_card["payg"]["charged_units"] == 7  # 180 minutes = 9 units: 2 free, 7 payg
    assert crashed_card["pending_usage"] == 0
    assert sum(p["quantity"] for s in crashed_usage for p in s["points"]) == 180
    assert [s["key"] for s in crashed_usage] == [{"user_id": "u0"}, {"user_id": "u1"}]


def test_a_redriven_message_with_a_new_sqs_id_still_counts_its_events(api, world):
    """SQS gives a redriven message a new id; ownership rides on the batch id in the body."""
    import boto3
    from usage_ledger import bootstrap
    from usage_ledger.adapters.queue import decode_message

    services = bootstrap.container()

    world.resource("minutes", size=20)
    world.team("team-a")
    world.subscription("team-a", "minutes", "flex", quantity=100)
    send_events(api, [cloud_event("team-a", "minutes", 40, utc(2026, 11, 24), id="r1")])
    sqs = boto3.client("sqs")
    [message] = sqs.receive_message(QueueUrl=api.stack.physical["EventsFifoQueue"])["Messages"]
    batch_id, events = decode_message(message["Body"], message["MessageId"])
    # the first attempt claimed, then crashed before applying
    services.ingest_store.claim(batch_id, events, utc(2026, 11, 25))
    batch_again, events_again = decode_message(message["Body"], "a-new-sqs-message-id")
    assert services.ingest.apply_message(batch_again, events_again).counted == 1
    assert api.get("/v1/teams/team-a/balances/minutes", as_=ALICE).json["available"] == 98
