"""Payment routes through the handlers against localstripe (contract section 6): the SetupIntent, the
card update that retries failed invoices, pay now, who may call them, and past_due on the balance
card and in the entitlement check."""

import boto3
import pytest
from conftest import (
    OPERATOR,
    Identity,
    close_billing,
    cloud_event,
    drain_events,
    problem,
    send_events,
    utc,
)
from usage_ledger.domain.errors import ProcessorUnavailable

from infra.localstripe import CARD_DECLINED_ON_CHARGE, LOCAL_SECRET_KEY

TEAM, SUBSCRIPTION = "team-a", "payg-1"
ALICE = Identity.user("alice")  # primary_admin, not the purchaser
PAT = Identity.user("pat")  # the purchaser: an sso_admin, not a primary_admin
SAM = Identity.user("sam")  # secondary_admin
HUB = Identity.user("hub")  # hub_admin
STRANGER = Identity.user("mallory")
OTHER_CARD = "5555555555554444"  # a good card, last4 4444 (localstripe reports every card as visa)


# ------------------------------------------------------------------ helpers








def ingest(api, clock, at, quantity, resource_id="minutes"):
    clock.set(at)
    reply = send_events(api, [cloud_event(TEAM, resource_id, quantity, at)])
    assert reply.status == 202, reply.text
    drain_events(api.stack)


def stripe_client(stack):
    import stripe

    return stripe.StripeClient(LOCAL_SECRET_KEY, base_addresses={"api": stack.parameters["StripeApiBase"]}).v1


def subscription(subscription_id=SUBSCRIPTION, team_id=TEAM):
    from usage_ledger import bootstrap

    return bootstrap.container().ledger_store.subscription_by_id(team_id, subscription_id)


def payment_intents(stack, subscription_id=SUBSCRIPTION):
    """The PaymentIntents at localstripe for the subscription's own Customer, oldest first."""
    customer = subscription(subscription_id).customer_id
    intents = [intent for intent in stripe_client(stack).payment_intents.list(params={"limit": 100}).auto_paging_iter()
               if intent.customer == customer]
    return sorted(intents, key=lambda intent: intent.created)


def ledger_items(stack):
    table = boto3.resource("dynamodb").Table(stack.physical["LedgerTable"])
    items, kwargs = [], {}
    while True:
        page = table.scan(ConsistentRead=True, **kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda item: (item["PK"], item["SK"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def base(team_id=TEAM):
    return f"/v1/teams/{team_id}"


def setup_intent(api, as_=PAT, subscription_id=SUBSCRIPTION, team_id=TEAM):
    return api.post(f"{base(team_id)}/subscriptions/{subscription_id}/payment-method/setup", None, as_=as_)


def update_card(api, payment_method, as_=PAT, subscription_id=SUBSCRIPTION, team_id=TEAM):
    return api.call("PUT", f"{base(team_id)}/subscriptions/{subscription_id}/payment-method", as_=as_,
                    body={"payment_method": payment_method})


def pay(api, invoice_id, as_=PAT, team_id=TEAM):
    return api.post(f"{base(team_id)}/invoices/{invoice_id}/pay", None, as_=as_)


def only_invoice(api):
    reply = api.get(f"{base()}/invoices", as_=ALICE)
    assert reply.status == 200, reply.text
    (invoice,) = reply.json["items"]
    return invoice


@pytest.fixture
def team(world):
    world.resource("minutes", kind="api", size=20)
    world.team(TEAM, admins=("alice",))
    world.member(TEAM, "pat", ["sso_admin"])
    world.member(TEAM, "sam", ["secondary_admin"])
    world.member(TEAM, "hub", ["hub_admin"])
    return TEAM


def payg(world, card=None, **fields):
    return world.subscription(TEAM, "minutes", "payg", subscription_id=SUBSCRIPTION, purchaser_user_id="pat",
                              purchased_at="2026-01-15T10:00:00Z", starts_at="2026-01-15T10:00:00Z",
                              payment_method={"id": card or world.card()}, **fields)


@pytest.fixture
def failed_invoice(api, world, team, clock):
    """A payg subscription on a card that attaches and then declines: its first cycle's invoice failed."""
    payg(world, card=world.card(CARD_DECLINED_ON_CHARGE))
    ingest(api, clock, utc(2026, 2, 1), 60)  # 3 units
    assert close_billing(api.stack, utc(2026, 2, 15, 1))["payments_failed"] == 1
    invoice = only_invoice(api)
    assert invoice["status"] == "payment_failed" and invoice["total"] == 750
    assert len(payment_intents(api.stack)) == 1
    return invoice


# ------------------------------------------------------------------ setup


def test_setup_returns_the_client_secret_of_a_setup_intent_for_the_subscriptions_customer(api, world, team):
    payg(world)
    reply = setup_intent(api)
    assert reply.status == 200, reply.text
    body = reply.json
    assert set(body) == {"client_secret", "publishable_key"} and body["publishable_key"] == "pk_test_local"
    intent_id = body["client_secret"].split("_secret_")[0]
    intent = stripe_client(api.stack).setup_intents.retrieve(intent_id)
    assert intent.client_secret == body["client_secret"]
    assert intent.customer == subscription().customer_id and intent.customer


# ------------------------------------------------------------------ reading the card


def current_card(api, as_=PAT, subscription_id=SUBSCRIPTION, team_id=TEAM):
    return api.get(f"{base(team_id)}/subscriptions/{subscription_id}", as_=as_)


def test_the_current_card_is_read_as_saved_and_follows_an_update(api, world, team):
    from usage_ledger.service.operator import subscription_view

    payg(world)
    reply = current_card(api)
    assert reply.status == 200, reply.text
    assert reply.json == {"subscription_id": SUBSCRIPTION, "resource_id": "minutes", "purchaser_user_id": "pat",
                          "payment_method": subscription_view(subscription())["payment_method"]}
    assert reply.json["payment_method"]["last4"] == "4242"
    new_card = world.card(OTHER_CARD, exp_month=7, exp_year=2031)
    assert update_card(api, new_card).status == 200
    assert current_card(api, as_=ALICE).json["payment_method"] == {
        "id": new_card, "brand": "visa", "last4": "4444", "exp_month": 7, "exp_year": 2031}


@pytest.mark.parametrize("who, status", [(PAT, 200), (ALICE, 200), (SAM, 403), (HUB, 403), (STRANGER, 404)],
                         ids=["purchaser", "primary_admin", "secondary_admin", "hub_admin", "non-member"])
def test_only_the_purchaser_or_a_primary_admin_reads_the_card(api, world, team, who, status):
    payg(world)
    reply = current_card(api, as_=who)
    if status == 200:
        assert reply.status == 200, reply.text
    else:
        problem(reply, status)
    world.subscription(TEAM, "minutes", "flex", subscription_id="flex-1", quantity=10)
    problem(current_card(api, as_=ALICE, subscription_id="flex-1"), 404)
    problem(current_card(api, as_=SAM, subscription_id="flex-1"), 403)


# ------------------------------------------------------------------ updating the card


def test_a_good_card_is_saved_on_the_subscription_and_the_next_charge_uses_it(api, world, team, clock):
    from usage_ledger.service.operator import subscription_view

    payg(world)
    before = subscription()
    new_card = world.card(OTHER_CARD, exp_month=7, exp_year=2031)
    reply = update_card(api, new_card)
    assert reply.status == 200, reply.text
    assert reply.json == {"subscription_id": SUBSCRIPTION, "retried_invoices": [], "payment_method": {
        "id": new_card, "brand": "visa", "last4": "4444", "exp_month": 7, "exp_year": 2031}}
    after = subscription()
    assert subscription_view(after)["payment_method"] == reply.json["payment_method"]
    assert after.customer_id == before.customer_id  # the card joins the subscription's own Customer
    assert stripe_client(api.stack).payment_methods.retrieve(new_card).customer == before.customer_id

    ingest(api, clock, utc(2026, 2, 1), 20)
    close_billing(api.stack, utc(2026, 2, 15, 1))
    assert only_invoice(api)["status"] == "paid"
    (intent,) = payment_intents(api.stack)
    assert intent.payment_method == new_card and intent.status == "succeeded" and intent.amount == 250


@pytest.mark.parametrize("kind", ["unknown", "not-a-card"])
def test_an_unknown_or_non_card_payment_method_is_422_on_payment_method_and_nothing_changes(api, world, team,
                                                                                              kind):
    payg(world)
    if kind == "unknown":
        payment_method = "pm_unknown"
    else:
        payment_method = stripe_client(api.stack).payment_methods.create(params={
            "type": "sepa_debit", "sepa_debit": {"iban": "DE89370400440532013000"}}).id
    before = ledger_items(api.stack)
    reply = update_card(api, payment_method)
    body = problem(reply, 422)
    assert [error["path"] for error in body["errors"]] == ["payment_method"]
    assert ledger_items(api.stack) == before


@pytest.mark.parametrize("body", [{}, {"payment_method": ""}, {"payment_method": {"id": "pm_x"}},
                                  {"payment_method": "pm_x", "extra": 1}])
def test_a_malformed_body_is_422_naming_the_field(api, world, team, body):
    payg(world)
    reply = api.call("PUT", f"{base()}/subscriptions/{SUBSCRIPTION}/payment-method", as_=PAT, body=body)
    assert problem(reply, 422)["errors"]


def test_updating_the_card_charges_the_failed_invoice_once_on_it_before_answering(api, world, failed_invoice):
    good = world.card()
    reply = update_card(api, good)
    assert reply.status == 200, reply.text
    assert reply.json["retried_invoices"] == [{"invoice_id": failed_invoice["invoice_id"], "status": "paid"}]
    assert only_invoice(api)["status"] == "paid"
    declined, paid = payment_intents(api.stack)  # one PaymentIntent per attempt
    assert declined.status != "succeeded" and paid.status == "succeeded"
    assert paid.payment_method == good and paid.amount == 750

    again = update_card(api, world.card())  # nothing left to retry: no further charge
    assert again.status == 200 and again.json["retried_invoices"] == []
    assert len(payment_intents(api.stack)) == 2


def test_a_card_that_declines_again_leaves_the_invoice_failed(api, world, failed_invoice):
    reply = update_card(api, world.card(CARD_DECLINED_ON_CHARGE))
    assert reply.status == 200, reply.text
    assert reply.json["retried_invoices"] == [{"invoice_id": failed_invoice["invoice_id"],
                                               "status": "payment_failed"}]
    assert len(payment_intents(api.stack)) == 2


# ------------------------------------------------------------------ pay now


class ChargesDown:
    """The real gateway, except that charging times out (an outage, never a decline)."""

    def __init__(self, real):
        self.real, self.publishable_key, self.max_call_seconds = real, real.publishable_key, real.max_call_seconds

    def save_card(self, *args, **kwargs):
        return self.real.save_card(*args, **kwargs)

    def setup_intent(self, customer_id):
        return self.real.setup_intent(customer_id)

    def charge(self, **_):
        raise ProcessorUnavailable("the processor timed out")


class ProcessorDown:
    publishable_key = "pk_test_local"
    max_call_seconds = 8.0

    def save_card(self, *args, **kwargs):
        raise ProcessorUnavailable("the processor timed out")

    setup_intent = charge = save_card


def test_pay_now_on_a_failed_invoice_pays_it(api, world, failed_invoice, compose):
    from usage_ledger import bootstrap

    # the card is replaced while charges are down: saved, the retry answers 503 and writes nothing to the invoice
    compose(payments=ChargesDown(bootstrap.container().payments))
    reply = update_card(api, world.card())
    assert problem(reply, 503) and reply.headers.get("Retry-After") == "30"
    assert only_invoice(api)["status"] == "payment_failed"
    compose()

    paid = pay(api, failed_invoice["invoice_id"])
    assert paid.status == 200, paid.text
    assert paid.json["invoice_id"] == failed_invoice["invoice_id"] and paid.json["status"] == "paid"
    assert set(paid.json) == set(failed_invoice)  # the invoice as GET shows it (contract section 3)
    assert only_invoice(api)["status"] == "paid"
    assert [intent.status == "succeeded" for intent in payment_intents(api.stack)] == [False, True]


def test_pay_now_with_the_declining_card_is_one_more_failed_attempt(api, failed_invoice):
    reply = pay(api, failed_invoice["invoice_id"])
    assert reply.status == 200, reply.text
    assert reply.json["status"] == "payment_failed"
    assert len(payment_intents(api.stack)) == 2


def test_pay_now_on_a_paid_invoice_is_409_and_charges_nothing(api, world, team, clock):
    payg(world)
    ingest(api, clock, utc(2026, 2, 1), 20)
    close_billing(api.stack, utc(2026, 2, 15, 1))
    invoice = only_invoice(api)
    assert invoice["status"] == "paid"
    problem(pay(api, invoice["invoice_id"]), 409)
    assert len(payment_intents(api.stack)) == 1


def test_pay_now_on_an_unknown_invoice_is_404(api, world, team):
    payg(world)
    problem(pay(api, "in_20260214_0000000000000000", as_=ALICE), 404)


def test_a_processor_outage_is_503_with_retry_after_and_writes_nothing(api, world, failed_invoice, compose):
    def settled_state():  # the attempt claim may stay behind (the next attempt asks the processor first)
        return [{key: value for key, value in item.items() if not key.startswith("claim_")}
                for item in ledger_items(api.stack)]

    before = settled_state()
    compose(payments=ProcessorDown())
    for reply in (setup_intent(api), update_card(api, "pm_anything"), pay(api, failed_invoice["invoice_id"])):
        body = problem(reply, 503)
        assert body["type"].endswith("/payment-processor-unavailable")
        assert reply.headers.get("Retry-After") == "30"
    assert settled_state() == before


# ------------------------------------------------------------------ who may (contract section 2)


@pytest.mark.parametrize("who, status", [(PAT, 200), (ALICE, 200), (SAM, 403), (HUB, 403), (STRANGER, 404)],
                         ids=["purchaser", "primary_admin", "secondary_admin", "hub_admin", "non-member"])
def test_only_the_purchaser_or_a_primary_admin_may_use_the_payment_routes(api, world, failed_invoice, who, status):
    invoice_id = failed_invoice["invoice_id"]
    before = ledger_items(api.stack)
    for reply in (setup_intent(api, as_=who), pay(api, invoice_id, as_=who)):
        if status == 200:
            assert reply.status == 200, reply.text
        else:
            problem(reply, status)
    reply = update_card(api, world.card(), as_=who)
    if status == 200:
        assert reply.status == 200, reply.text
    else:
        problem(reply, status)
        assert ledger_items(api.stack) == before


def test_another_teams_subscription_or_invoice_is_404(api, world, failed_invoice):
    world.team("team-b", admins=("bob",))
    bob = Identity.user("bob")
    invoice_id = failed_invoice["invoice_id"]
    before = ledger_items(api.stack)
    # team-a's ids under team-b's path, asked by team-b's primary admin: none of team-b's
    problem(setup_intent(api, as_=bob, team_id="team-b"), 404)
    problem(update_card(api, world.card(), as_=bob, team_id="team-b"), 404)
    problem(pay(api, invoice_id, as_=bob, team_id="team-b"), 404)
    # team-a's path: bob is not a member
    problem(setup_intent(api, as_=bob), 404)
    problem(pay(api, invoice_id, as_=bob), 404)
    assert ledger_items(api.stack) == before


def test_a_prepaid_or_unknown_subscription_is_404_for_a_primary_admin_and_403_for_others(api, world, team):
    world.subscription(TEAM, "minutes", "flex", subscription_id="flex-1", quantity=10)
    for subscription_id in ("flex-1", "no-such-sub"):
        problem(setup_intent(api, as_=ALICE, subscription_id=subscription_id), 404)
        problem(update_card(api, "pm_x", as_=ALICE, subscription_id=subscription_id), 404)
        # a member who may not pay learns nothing of which subscriptions exist
        problem(setup_intent(api, as_=SAM, subscription_id=subscription_id), 403)


# ------------------------------------------------------------------ past_due


def entitlement(api, quantity):
    reply = api.get(f"/v1/teams/{TEAM}/entitlements/minutes", as_=OPERATOR, query=f"quantity={quantity}")
    assert reply.status == 200, reply.text
    return reply.json


def payg_block(api):
    reply = api.get(f"{base()}/balances/minutes", as_=ALICE)
    assert reply.status == 200, reply.text
    return reply.json["payg"]


def test_past_due_shows_on_the_card_and_stops_payg_in_the_entitlement_until_paid(api, world, failed_invoice, clock,
                                                                                  dynamodb_calls):
    world.subscription(TEAM, "minutes", "flex", subscription_id="flex-1", quantity=2,
                       starts_at="2026-02-01T00:00:00Z")
    # the declined first attempt put the invoice in the subscription's past_due set
    assert payg_block(api)["status"] == "past_due"
    dynamodb_calls.clear()
    prepaid = entitlement(api, 40)  # 2 units: the flex covers them
    assert len(dynamodb_calls) == 1, dynamodb_calls  # still one request: the subscription items carry past_due
    assert prepaid["allowed"] is True and prepaid["covered_by"] == "prepaid"
    beyond = entitlement(api, 60)  # 3 units: only payg would cover the third
    assert beyond["allowed"] is False and beyond["covered_by"] is None

    ingest(api, clock, utc(2026, 2, 16), 60)  # still recorded and billed: 2 flex units, 1 in the open payg cycle
    block = payg_block(api)
    assert block["status"] == "past_due" and block["charged_units"] == 1 and block["cycle_start"] == "2026-02-15"
    assert entitlement(api, 20)["allowed"] is False  # the flex is used up; payg is past_due

    reply = update_card(api, world.card())  # the failed invoice is paid on the new card
    assert reply.json["retried_invoices"] == [{"invoice_id": failed_invoice["invoice_id"], "status": "paid"}]
    assert payg_block(api)["status"] == "active"
    back = entitlement(api, 20)
    assert back["allowed"] is True and back["covered_by"] == "payg"


def test_requests_per_payment_route(api, world, failed_invoice, dynamodb_calls):
    """DynamoDB requests each route makes (docs/data-model.md), for the primary admin and the purchaser."""
    invoice_id = failed_invoice["invoice_id"]

    def count(call):
        dynamodb_calls.clear()
        reply = call()
        assert reply.status == 200, reply.text
        return [operation for operation, _ in dynamodb_calls]

    # member, subscription id guard, subscription; the purchaser who is not a primary_admin: +2 (the guard's lookup)
    assert len(count(lambda: setup_intent(api, as_=ALICE))) == 3
    assert len(count(lambda: setup_intent(api, as_=PAT))) == 5
    # reading the card: the same three (five for the purchaser), no processor call
    assert len(count(lambda: current_card(api, as_=ALICE))) == 3
    assert len(count(lambda: current_card(api, as_=PAT))) == 5
    # pay now: member, invoice (guard), the attempt's claim, the subscription's current card, the attempt
    # recorded (one transaction: invoice, due index, past_due set, email claim), the email marked sent
    assert count(lambda: pay(api, invoice_id, as_=ALICE)) == [
        "GetItem", "GetItem", "UpdateItem", "GetItem", "TransactWriteItems", "UpdateItem"]
    # card update with one failed invoice: member, guard + subscription, the conditional UpdateItem, then
    # the retry: the subscription (its past_due set), the invoice, its claim, the card, the attempt, the email
    mark_failed = update_card(api, world.card(CARD_DECLINED_ON_CHARGE), as_=ALICE)  # fails again: stays failed
    assert mark_failed.json["retried_invoices"][0]["status"] == "payment_failed"
    operations = count(lambda: update_card(api, world.card(), as_=ALICE))
    assert operations == ["GetItem", "GetItem", "GetItem", "UpdateItem", "GetItem", "GetItem", "GetItem",
                          "UpdateItem", "GetItem", "TransactWriteItems", "UpdateItem"], operations
