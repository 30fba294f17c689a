"""Dunning through the handlers and against localstripe (contract section 6): attempts on the retry
schedule by the close job's event time, one charge and one email per attempt however runs race,
outages and crashes around the processor, "pay now" and card-update retries, gapless numbers."""
import threading
import uuid
from datetime import timedelta

import boto3
import pytest
from conftest import (
    CLOSE_METRICS,
    Identity,
    billing_run_event,
    close_billing,
    cloud_event,
    drain_events,
    rfc3339,
    run_job,
    send_events,
    summary,
    utc,
)
from sent_mail import sent_emails
from usage_ledger.domain.errors import Conflict, NotFound, ProcessorUnavailable

from infra.localstripe import CARD_DECLINED_ON_CHARGE, CARD_OK, LOCAL_SECRET_KEY, create_card

ALICE = Identity.user("alice")
CLOSE_AT = utc(2026, 2, 15, 1)  # the run that closes Jan 15 - Feb 14 (UTC) and makes the first attempt


# ------------------------------------------------------------------ helpers








def close_at_once(stack, at, runs=3):
    """`runs` invocations of the close job at the same moment, each in its own container."""
    from usage_ledger import clock

    clock.now.set(at)
    barrier = threading.Barrier(runs)
    results, errors = [], []

    def run(container):
        try:
            barrier.wait()
            results.append(summary(run_job(stack, "CloseBillingCyclesFunction", billing_run_event(at), container),
                                   CLOSE_METRICS))
        except Exception as error:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(f"c{uuid.uuid4().hex[:6]}",)) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(results) == runs
    return results


def ingest(api, clock, at, events):
    clock.set(at)
    reply = send_events(api, events)
    assert reply.status == 202, reply.text
    drain_events(api.stack)


def emails():
    return sent_emails()


def payments(stack, team_id="team-a", subscription_id="payg-1"):
    """The PaymentIntents at localstripe for the subscription's own Customer, oldest first."""
    import stripe

    subscription = container().ledger_store.subscription_by_id(team_id, subscription_id)
    client = stripe.StripeClient(LOCAL_SECRET_KEY, base_addresses={"api": stack.parameters["StripeApiBase"]}).v1
    intents = [intent for intent in client.payment_intents.list(params={"limit": 100}).auto_paging_iter()
               if intent.customer == subscription.customer_id]
    return sorted(intents, key=lambda intent: intent.created)


def container():
    from usage_ledger import bootstrap

    return bootstrap.container()


def the_invoice(api, team_id="team-a", as_=ALICE):
    reply = api.get(f"/v1/teams/{team_id}/invoices", as_=as_)
    assert reply.status == 200, reply.text
    (invoice,) = reply.json["items"]
    return invoice


def past_due(team_id="team-a", subscription_id="payg-1"):
    return container().ledger_store.subscription_by_id(team_id, subscription_id).past_due_invoices


def swap_card(stack, number=CARD_OK, team_id="team-a", subscription_id="payg-1"):
    """Save another card on the subscription, as the payment-method route will (straight into the store)."""
    from usage_ledger.adapters.dynamodb import keys
    from usage_ledger.adapters.dynamodb.ledger import card_attribute
    from usage_ledger.adapters.dynamodb.models import SubscriptionItem

    subscription = container().ledger_store.subscription_by_id(team_id, subscription_id)
    payment_method = create_card(stack.parameters["StripeApiBase"], number)
    _, card = container().payments.save_card(payment_method, customer_id=subscription.customer_id,
                                             reference=subscription_id)
    SubscriptionItem(keys.team_pk(team_id), keys.subscription_sk(subscription.resource_id, subscription_id)).update(
        actions=[SubscriptionItem.payment_method.set(card_attribute(card))])


@pytest.fixture
def team(world):
    world.resource("minutes", kind="api", size=20)
    world.team("team-a")
    return "team-a"


def payg(world, team_id="team-a", card=CARD_OK, subscription_id="payg-1"):
    return world.subscription(team_id, "minutes", "payg", purchased_at="2026-01-15T10:00:00Z",
                              starts_at="2026-01-15T10:00:00Z", subscription_id=subscription_id,
                              payment_method={"id": world.card(number=card)})


@pytest.fixture
def declined(api, world, team, clock):
    """An invoice of 2 units (5.00 USD) whose first attempt, at CLOSE_AT, was declined."""
    payg(world, card=CARD_DECLINED_ON_CHARGE)
    ingest(api, clock, utc(2026, 2, 1), [cloud_event(team, "minutes", 40, utc(2026, 2, 1))])
    summary = close_billing(api.stack, CLOSE_AT)
    assert (summary["invoiced"], summary["attempts"], summary["payments_failed"]) == (1, 1, 1)
    return the_invoice(api)


# ------------------------------------------------------------------ the schedule


def test_a_declined_card_is_retried_on_days_1_3_5_7_then_uncollectible(api, declined):
    invoice = declined
    assert (invoice["status"], invoice["attempt_count"], invoice["number"]) == ("payment_failed", 1, 1)
    assert invoice["next_payment_attempt"] == rfc3339(CLOSE_AT + timedelta(days=1)) and invoice["paid_at"] is None
    assert past_due() == {invoice["invoice_id"]}
    assert len(payments(api.stack)) == 1 and len(emails()) == 1
    assert "Payment failed" in emails()[0].subject

    for attempt, day, next_day in [(2, 1, 3), (3, 3, 5), (4, 5, 7)]:
        due = CLOSE_AT + timedelta(days=day)
        assert close_billing(api.stack, due - timedelta(hours=1))["attempts"] == 0  # not before its time
        assert the_invoice(api)["attempt_count"] == attempt - 1
        summary = close_billing(api.stack, due)
        assert (summary["attempts"], summary["payments_failed"], summary["closed"]) == (1, 1, 0)
        invoice = the_invoice(api)
        assert (invoice["status"], invoice["attempt_count"]) == ("payment_failed", attempt)
        assert invoice["next_payment_attempt"] == rfc3339(CLOSE_AT + timedelta(days=next_day))
        assert len(payments(api.stack)) == attempt and len(emails()) == attempt

    assert close_billing(api.stack, CLOSE_AT + timedelta(days=7))["attempts"] == 1  # the last scheduled retry
    invoice = the_invoice(api)
    assert (invoice["status"], invoice["attempt_count"], invoice["next_payment_attempt"]) == ("uncollectible", 5, None)
    assert past_due() == {invoice["invoice_id"]}
    assert len(payments(api.stack)) == 5 and len(emails()) == 5
    assert close_billing(api.stack, CLOSE_AT + timedelta(days=30))["attempts"] == 0  # no further automatic attempt
    assert len(payments(api.stack)) == 5 and len(emails()) == 5
    # every failure notice has its plain-text part beside the HTML, the retry date or the last word in both
    assert all(email.text and email.html for email in emails())
    assert all("no more" in part.lower() for part in (emails()[-1].text, emails()[-1].html))


def test_a_late_run_makes_the_missed_retry_once_and_keeps_the_schedule_of_the_first_failure(api, declined):
    summary = close_billing(api.stack, CLOSE_AT + timedelta(days=4))  # the runs of days 1 and 3 never happened
    assert summary["attempts"] == 1
    invoice = the_invoice(api)
    assert invoice["attempt_count"] == 2
    assert invoice["next_payment_attempt"] == rfc3339(CLOSE_AT + timedelta(days=5))


def test_a_retry_that_succeeds_pays_and_sends_a_receipt(api, declined):
    swap_card(api.stack)  # every attempt charges the card saved on the subscription at its time
    assert close_billing(api.stack, CLOSE_AT + timedelta(days=1))["paid"] == 1
    invoice = the_invoice(api)
    assert (invoice["status"], invoice["attempt_count"], invoice["next_payment_attempt"]) == ("paid", 2, None)
    assert invoice["paid_at"] == rfc3339(CLOSE_AT + timedelta(days=1))
    assert past_due() == frozenset()
    intents = payments(api.stack)
    assert [intent.status for intent in intents] == ["requires_payment_method", "succeeded"]
    assert [intent.metadata["idempotency_key"] for intent in intents] == [
        f"{invoice['invoice_id']}#attempt-1", f"{invoice['invoice_id']}#attempt-2"]
    assert len(emails()) == 2  # the failure notice, then the receipt
    assert close_billing(api.stack, CLOSE_AT + timedelta(days=3))["attempts"] == 0 and len(emails()) == 2


def test_an_expired_card_fails_without_calling_the_processor_and_is_retried(api, world, team, clock):
    world.subscription(team, "minutes", "payg", purchased_at="2026-01-15T10:00:00Z",
                       starts_at="2026-01-15T10:00:00Z", subscription_id="payg-1",
                       payment_method={"id": world.card(exp_month=1, exp_year=2026)})
    ingest(api, clock, utc(2026, 2, 1), [cloud_event(team, "minutes", 20, utc(2026, 2, 1))])
    close_billing(api.stack, CLOSE_AT)
    close_billing(api.stack, CLOSE_AT + timedelta(days=1))
    invoice = the_invoice(api)
    assert (invoice["status"], invoice["attempt_count"]) == ("payment_failed", 2)
    assert payments(api.stack) == [] and len(emails()) == 2


# ------------------------------------------------------------------ pay now and card-update retries


def test_pay_now_is_one_attempt_that_moves_the_schedule_only_when_it_pays(api, declined):
    billing = container().billing
    invoice_id = declined["invoice_id"]
    at = CLOSE_AT + timedelta(hours=5)
    failed = billing.pay_now("team-a", invoice_id, at)
    assert (failed.status, failed.attempt_count) == ("payment_failed", 2)
    assert failed.next_payment_attempt == CLOSE_AT + timedelta(days=1)  # the schedule is untouched
    assert len(payments(api.stack)) == 2 and len(emails()) == 2

    swap_card(api.stack)
    paid = billing.pay_now("team-a", invoice_id, at + timedelta(hours=1))
    assert (paid.status, paid.attempt_count, paid.paid_at, paid.next_payment_attempt) == (
        "paid", 3, at + timedelta(hours=1), None)
    assert the_invoice(api)["status"] == "paid" and past_due() == frozenset()
    assert len(payments(api.stack)) == 3 and len(emails()) == 3
    with pytest.raises(Conflict):
        billing.pay_now("team-a", invoice_id, at + timedelta(hours=2))
    with pytest.raises(NotFound):
        billing.pay_now("team-a", "in_20990101_nope", at)
    assert close_billing(api.stack, CLOSE_AT + timedelta(days=1))["attempts"] == 0  # nothing scheduled is left
    assert len(payments(api.stack)) == 3


def test_an_uncollectible_invoice_can_still_be_paid_by_a_card_update_retry(api, declined):
    for day in (1, 3, 5, 7):
        close_billing(api.stack, CLOSE_AT + timedelta(days=day))
    assert the_invoice(api)["status"] == "uncollectible"
    billing = container().billing
    (still,) = billing.retry_failed_invoices("team-a", "payg-1", CLOSE_AT + timedelta(days=8))
    assert (still.status, still.attempt_count, still.next_payment_attempt) == ("uncollectible", 6, None)

    swap_card(api.stack)
    (paid,) = billing.retry_failed_invoices("team-a", "payg-1", CLOSE_AT + timedelta(days=9))
    assert (paid.status, paid.attempt_count) == ("paid", 7)
    assert past_due() == frozenset() and billing.retry_failed_invoices("team-a", "payg-1", CLOSE_AT) == []
    assert len(payments(api.stack)) == 7 and len(emails()) == 7
    with pytest.raises(NotFound):
        billing.retry_failed_invoices("team-a", "no-such-subscription", CLOSE_AT)


# ------------------------------------------------------------------ races, outages, crashes


@pytest.mark.filterwarnings("ignore:No application metrics")  # threads share one Metrics buffer here
def test_concurrent_close_runs_make_one_charge_and_one_email_per_attempt(api, world, team, clock):
    payg(world, card=CARD_DECLINED_ON_CHARGE)
    ingest(api, clock, utc(2026, 2, 1), [cloud_event(team, "minutes", 40, utc(2026, 2, 1))])
    results = close_at_once(api.stack, CLOSE_AT)
    assert sum(r["invoiced"] for r in results) == 1 and sum(r["attempts"] for r in results) == 1
    assert len(payments(api.stack)) == 1 and len(emails()) == 1

    results = close_at_once(api.stack, CLOSE_AT + timedelta(days=1))
    assert sum(r["attempts"] for r in results) == 1
    assert the_invoice(api)["attempt_count"] == 2
    assert len(payments(api.stack)) == 2 and len(emails()) == 2


TEAMS = (("team-a", ALICE), ("team-b", ALICE))


class OutageOnce:
    """The real gateway, but the first charge times out before reaching the processor."""

    def __init__(self, real):
        self.real, self.failed = real, False

    def __getattr__(self, name):
        return getattr(self.real, name)

    def charge(self, **kwargs):
        if not self.failed:
            self.failed = True
            raise ProcessorUnavailable("the processor timed out")
        return self.real.charge(**kwargs)


def test_a_processor_outage_mid_run_counts_no_decline_sends_no_email_and_the_next_run_charges_once(
        api, world, team, clock, compose, declined):
    world.team("team-b")  # alice buys for both teams
    payg(world, team_id="team-b", card=CARD_DECLINED_ON_CHARGE, subscription_id="payg-b")
    ingest(api, clock, utc(2026, 2, 1), [cloud_event("team-b", "minutes", 40, utc(2026, 2, 1))])
    close_billing(api.stack, CLOSE_AT)  # team-b's first attempt fails like team-a's did
    assert len(emails()) == 2

    compose(payments=OutageOnce(container().payments))
    summary = close_billing(api.stack, CLOSE_AT + timedelta(days=1))  # two retries due: the first meets the outage
    assert (summary["failed"], summary["attempts"], summary["payments_failed"]) == (1, 1, 1)
    counts = sorted(the_invoice(api, team_id, as_)["attempt_count"] for team_id, as_ in TEAMS)
    assert counts == [1, 2] and len(emails()) == 3  # no decline counted, no email for the outage
    assert len(payments(api.stack)) + len(payments(api.stack, "team-b", "payg-b")) == 3

    compose()
    summary = close_billing(api.stack, CLOSE_AT + timedelta(days=1, hours=1))
    assert (summary["attempts"], summary["failed"]) == (1, 0)
    counts = sorted(the_invoice(api, team_id, as_)["attempt_count"] for team_id, as_ in TEAMS)
    assert counts == [2, 2] and len(emails()) == 4
    assert len(payments(api.stack)) == 2 and len(payments(api.stack, "team-b", "payg-b")) == 2


def test_a_crash_after_charging_is_recorded_from_the_processor_without_a_second_charge(api, world, team, clock,
                                                                                      compose):
    from usage_ledger.adapters.dynamodb.billing import BillingStore

    class DiesAfterCharging(BillingStore):
        def record_attempt(self, recorded, token, lease_until):  # the container dies here
            raise SystemExit("killed")

        def release_attempt(self, invoice, token):  # a dead container releases nothing
            pass

    payg(world)
    ingest(api, clock, utc(2026, 2, 1), [cloud_event(team, "minutes", 40, utc(2026, 2, 1))])
    compose(billing_store=DiesAfterCharging())
    with pytest.raises(SystemExit):
        close_billing(api.stack, CLOSE_AT)
    assert len(payments(api.stack)) == 1 and payments(api.stack)[0].status == "succeeded"
    assert the_invoice(api)["status"] == "open" and emails() == []

    compose()
    assert close_billing(api.stack, CLOSE_AT + timedelta(minutes=5))["skipped"] == 1  # its claim still holds
    summary = close_billing(api.stack, CLOSE_AT + timedelta(minutes=15))
    assert (summary["attempts"], summary["paid"]) == (1, 1)
    invoice = the_invoice(api)
    assert (invoice["status"], invoice["attempt_count"]) == ("paid", 1)
    assert len(payments(api.stack)) == 1 and len(emails()) == 1


def test_a_crash_after_a_declined_charge_records_the_decline_without_charging_again(api, declined, compose):
    from usage_ledger.adapters.dynamodb.billing import BillingStore

    class DiesAfterCharging(BillingStore):
        def record_attempt(self, recorded, token, lease_until):
            raise SystemExit("killed")

    compose(billing_store=DiesAfterCharging())
    with pytest.raises(SystemExit):
        close_billing(api.stack, CLOSE_AT + timedelta(days=1))
    assert len(payments(api.stack)) == 2 and the_invoice(api)["attempt_count"] == 1

    compose()
    close_billing(api.stack, CLOSE_AT + timedelta(days=1, minutes=15))
    invoice = the_invoice(api)
    assert (invoice["status"], invoice["attempt_count"]) == ("payment_failed", 2)
    assert invoice["next_payment_attempt"] == rfc3339(CLOSE_AT + timedelta(days=3))
    assert len(payments(api.stack)) == 2 and len(emails()) == 2


# ------------------------------------------------------------------ numbers


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_racing_close_runs_number_each_teams_invoices_without_gap_or_repeat(api, world, clock):
    world.resource("minutes", kind="api", size=20)
    teams = [f"team-{n}" for n in range(4)]
    for team_id in teams:
        world.team(team_id)
        payg(world, team_id=team_id, subscription_id=f"payg-{team_id}")
    for month in (1, 2, 3):  # three cycles each, every one with units
        ingest(api, clock, utc(2026, month, 20, 1),
               [cloud_event(team_id, "minutes", 20, utc(2026, month, 20), id=f"{team_id}-{month}")
                for team_id in teams])
    results = close_at_once(api.stack, utc(2026, 4, 20), runs=4)
    assert sum(r["invoiced"] for r in results) == 12 and sum(r["attempts"] for r in results) == 12
    for team_id in teams:
        items = api.get(f"/v1/teams/{team_id}/invoices", as_=ALICE).json["items"]
        assert sorted(item["number"] for item in items) == [1, 2, 3], team_id
        assert {item["status"] for item in items} == {"paid"}
    counters = [item for item in boto3.resource("dynamodb").Table(api.stack.physical["LedgerTable"]).scan()["Items"]
                if item.get("entity") == "invoice_counter"]
    assert sorted(int(item["last_number"]) for item in counters) == [3, 3, 3, 3]
    assert len(emails()) == 12


def test_a_subscription_without_a_card_at_the_processor_fails_with_payment_method_missing(api, world, team, clock):
    """A card saved before the processor was wired in (no Customer, no PaymentMethod id)."""
    from usage_ledger.adapters.dynamodb import keys
    from usage_ledger.adapters.dynamodb.models import SubscriptionItem

    payg(world)
    SubscriptionItem(keys.team_pk(team), keys.subscription_sk("minutes", "payg-1")).update(
        actions=[SubscriptionItem.customer_id.remove()])
    ingest(api, clock, utc(2026, 2, 1), [cloud_event(team, "minutes", 20, utc(2026, 2, 1))])
    assert close_billing(api.stack, CLOSE_AT)["payments_failed"] == 1
    invoice = the_invoice(api)
    assert (invoice["status"], invoice["attempt_count"]) == ("payment_failed", 1)
    stored = container().billing.invoice(team, invoice["invoice_id"])
    assert stored.attempts[0].decline_code == "payment_method_missing" and stored.attempts[0].charge_id is None
    assert len(emails()) == 1
