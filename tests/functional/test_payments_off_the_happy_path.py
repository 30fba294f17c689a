"""Payments one step off the happy path, through the handlers against localstripe (contract section 6):
another team's card, zero totals, the card that paid, 3-D Secure (through the processor's event and
through a second `pay`), signed processor events, and the processor dropping a charge's answer."""
import hashlib
import hmac
import http.server
import json
import threading
import time
import urllib.request

import pytest
from conftest import OPERATOR, Identity, close_billing, cloud_event, drain_events, paths, problem, send_events, utc
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from pdf_text import pdf_text
from sent_mail import sent_emails

from infra.localstripe import (
    CARD_AUTHENTICATION_REQUIRED,
    CARD_DECLINED_ON_CHARGE,
    LOCAL_SECRET_KEY,
    LOCAL_WEBHOOK_SECRET,
    register_webhook,
)

TEAM, OTHER_TEAM, SUBSCRIPTION = "team-a", "team-b", "payg-1"
PAT = Identity.user("pat")  # team A's purchaser
BOB = Identity.user("bob")  # team B's primary admin
CLOSE_AT = utc(2026, 2, 15, 1)  # closes Jan 15 - Feb 14 and makes the first attempt
WEBHOOK = "/v1/stripe/webhooks"


# ------------------------------------------------------------------ helpers


def stripe_client(stack):
    import stripe

    return stripe.StripeClient(LOCAL_SECRET_KEY, base_addresses={"api": stack.parameters["StripeApiBase"]}).v1


def container():
    from usage_ledger import bootstrap

    return bootstrap.container()


def subscription(team_id=TEAM, subscription_id=SUBSCRIPTION):
    return container().ledger_store.subscription_by_id(team_id, subscription_id)


def intents(stack, team_id=TEAM, subscription_id=SUBSCRIPTION):
    """The PaymentIntents at localstripe for the subscription's own Customer, oldest first."""
    customer = subscription(team_id, subscription_id).customer_id
    found = [intent for intent in stripe_client(stack).payment_intents.list(params={"limit": 100}).auto_paging_iter()
             if intent.customer == customer]
    return sorted(found, key=lambda intent: intent.created)


def emails():
    return sent_emails()


def mail_count():
    return len(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


def invoice_of(api, team_id=TEAM, as_=PAT):
    reply = api.get(f"/v1/teams/{team_id}/invoices", as_=as_)
    assert reply.status == 200, reply.text
    (invoice,) = reply.json["items"]
    return invoice


def pay(api, invoice_id, as_=PAT, team_id=TEAM):
    return api.post(f"/v1/teams/{team_id}/invoices/{invoice_id}/pay", None, as_=as_)


def update_card(api, payment_method, as_=PAT, team_id=TEAM, subscription_id=SUBSCRIPTION):
    return api.call("PUT", f"/v1/teams/{team_id}/subscriptions/{subscription_id}/payment-method", as_=as_,
                    body={"payment_method": payment_method})


def authenticate(stack, client_secret, success=True):
    """What localstripe's Stripe.js stand-in does when the customer confirms the 3-D Secure dialog."""
    intent_id = client_secret.split("_secret_")[0]
    request = urllib.request.Request(
        f"{stack.parameters['StripeApiBase']}/v1/payment_intents/{intent_id}/_authenticate?success="
        f"{'true' if success else 'false'}", data=json.dumps({"client_secret": client_secret}).encode(),
        method="POST", headers={"Content-Type": "application/json", "Authorization": f"Bearer {LOCAL_SECRET_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def payg(world, card, team_id=TEAM, purchaser="pat", **fields):
    return world.subscription(team_id, "minutes", "payg", subscription_id=SUBSCRIPTION, purchaser_user_id=purchaser,
                              purchased_at="2026-01-15T10:00:00Z", starts_at="2026-01-15T10:00:00Z",
                              payment_method={"id": card}, **fields)


def bill_one_cycle(api, clock, units=3):
    clock.set(utc(2026, 2, 1))
    assert send_events(api, [cloud_event(TEAM, "minutes", 20 * units, utc(2026, 2, 1))]).status == 202
    drain_events(api.stack)
    return close_billing(api.stack, CLOSE_AT)


@pytest.fixture
def teams(world):
    world.resource("minutes", kind="api", size=20)
    world.team(TEAM, admins=("alice",))
    world.member(TEAM, "pat", ["sso_admin"])
    world.team(OTHER_TEAM, admins=("bob",))


class Deliveries:
    """An HTTP endpoint registered at localstripe as the webhook URL: it keeps what Stripe would POST
    to /v1/stripe/webhooks (the exact body and its Stripe-Signature), for the test to hand to the handler."""

    def __init__(self, stack) -> None:
        self.received: list[tuple[bytes, str]] = []
        self.arrived = threading.Condition()
        deliveries = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with deliveries.arrived:
                    deliveries.received.append((body, self.headers["Stripe-Signature"]))
                    deliveries.arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        register_webhook(stack.parameters["StripeApiBase"], f"http://127.0.0.1:{self.server.server_port}/hook",
                         webhook_id="usage-ledger-tests")

    def of(self, event_type, intent_id, timeout=15.0):
        """The delivery of `event_type` for the PaymentIntent (localstripe sends it about 1 s later)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for body, signature in self.received:
                    event = json.loads(body)
                    if event["type"] == event_type and event["data"]["object"]["id"] == intent_id:
                        return body, signature
                left = deadline - time.monotonic()
                assert left > 0, f"no {event_type} for {intent_id} arrived"
                self.arrived.wait(left)

    def close(self):
        self.server.shutdown()


@pytest.fixture
def deliveries(stack):
    found = Deliveries(stack)
    yield found
    found.close()


def deliver(api, body, signature):
    headers = {"content-type": "application/json; charset=utf-8"}
    if signature is not None:
        headers["stripe-signature"] = signature
    return api.call("POST", WEBHOOK, raw_body=body, headers=headers)


def sign(body: bytes, secret=LOCAL_WEBHOOK_SECRET, at=None):
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), b"%d." % at + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


# ------------------------------------------------------------------ another team's card


def test_team_bs_card_offered_on_team_as_create_is_422_and_stays_with_team_b(api, world, teams):
    payg(world, world.card(), team_id=OTHER_TEAM, purchaser="bob")
    b_card = subscription(OTHER_TEAM).payment_method.id
    b_customer = subscription(OTHER_TEAM).customer_id

    reply = api.post(f"/v1/admin/teams/{TEAM}/subscriptions", {
        "subscription_id": SUBSCRIPTION, "resource_id": "minutes", "type": "payg",
        "starts_at": "2026-01-15T10:00:00Z", "purchased_at": "2026-01-15T10:00:00Z", "timezone": "UTC",
        "unit_amount": 250, "currency": "usd", "purchaser_user_id": "pat", "payment_method": {"id": b_card},
    }, as_=OPERATOR)
    assert paths(reply) == ["payment_method.id"]
    assert "4242" not in reply.text and "2030" not in reply.text  # nothing of the card is shown
    assert subscription(TEAM) is None
    assert stripe_client(api.stack).payment_methods.retrieve(b_card).customer == b_customer


def test_team_bs_card_put_on_team_as_subscription_is_422_and_nothing_moves(api, world, teams):
    payg(world, world.card(), team_id=OTHER_TEAM, purchaser="bob")
    b_card, b_customer = subscription(OTHER_TEAM).payment_method.id, subscription(OTHER_TEAM).customer_id
    payg(world, world.card("5555555555554444"))
    a_card = subscription(TEAM).payment_method

    reply = update_card(api, b_card)
    assert paths(reply) == ["payment_method"]
    assert "4242" not in reply.text
    assert subscription(TEAM).payment_method == a_card
    assert stripe_client(api.stack).payment_methods.retrieve(b_card).customer == b_customer
    # the team's own card, saved again, is still fine
    assert update_card(api, a_card.id).status == 200


# ------------------------------------------------------------------ zero totals


def test_a_zero_total_is_issued_paid_with_no_attempt_no_charge_and_no_failure_email(api, world, teams, clock):
    payg(world, world.card(), unit_amount=0)
    before = mail_count()
    assert bill_one_cycle(api, clock)["invoiced"] == 1
    invoice = invoice_of(api)
    assert invoice["total"] == 0 and invoice["status"] == "paid" and invoice["attempt_count"] == 0
    assert invoice["paid_at"] == "2026-02-15T01:00:00Z" and invoice["paid_with"] is None
    assert intents(api.stack) == [] and mail_count() == before + 1  # the invoice itself, once
    (message,) = emails()[before:]
    assert message.subject == f"Invoice {invoice['number']} for TEAM-A: 0.00 USD" and message.attachments
    assert "could not charge" not in message.text
    card = api.get(f"/v1/teams/{TEAM}/balances/minutes", as_=Identity.user("alice")).json
    assert card["payg"]["status"] == "active"
    assert close_billing(api.stack, utc(2026, 2, 20))["attempts"] == 0  # never due for payment
    assert mail_count() == before + 1
    assert pay(api, invoice["invoice_id"]).status == 409


# ------------------------------------------------------------------ the card that paid


def test_an_invoice_paid_on_a_new_card_names_that_card_in_its_json_html_pdf_and_receipt(api, world, teams, clock):
    payg(world, world.card(CARD_DECLINED_ON_CHARGE))
    bill_one_cycle(api, clock)
    failed = invoice_of(api)
    assert failed["status"] == "payment_failed" and failed["paid_with"] is None

    reply = update_card(api, world.card("5555555555554444"))
    assert reply.json["retried_invoices"] == [{"invoice_id": failed["invoice_id"], "status": "paid"}]
    paid = invoice_of(api)
    new_card = subscription().payment_method
    assert paid["paid_with"] == {"id": new_card.id, "brand": new_card.brand, "last4": "4444"}
    path = f"/v1/teams/{TEAM}/invoices/{paid['invoice_id']}"
    html = api.get(path, as_=PAT, headers={"accept": "text/html"}).text
    assert "Paid with" in html and "ending in 4444" in html and "ending in 0341" not in html.split("Attempts")[0]
    pdf = pdf_text(api.get(path, as_=PAT, headers={"accept": "application/pdf"}).content)
    assert "Paid with" in pdf and "ending in 4444" in pdf
    receipt = emails()[-1]
    assert receipt.subject.startswith("Receipt for invoice")
    assert "ending in 4444" in receipt.text and "Paid with" in receipt.text
    assert "ending in 4444" in pdf_text(receipt.attachments[0].data)


# ------------------------------------------------------------------ 3-D Secure


@pytest.fixture
def needs_authentication(api, world, teams, clock):
    """A payg subscription on a card that asks for 3-D Secure: its first (off-session) attempt failed."""
    payg(world, world.card(CARD_AUTHENTICATION_REQUIRED))
    assert bill_one_cycle(api, clock)["payments_failed"] == 1
    invoice = invoice_of(api)
    assert invoice["status"] == "payment_failed" and invoice["action_required"] is True
    return invoice


def test_an_attempt_that_needs_authentication_fails_and_its_email_asks_to_confirm(api, needs_authentication):
    invoice = needs_authentication
    assert invoice["attempt_count"] == 1 and invoice["paid_with"] is None
    (intent,) = intents(api.stack)
    assert intent.status == "requires_action"  # nothing charged
    from usage_ledger.domain.links import invoice_link

    message = emails()[-1]
    assert "please confirm the payment" in message.subject and "update your card" not in message.subject
    link = invoice_link(container().settings.portal_base_url, TEAM, invoice["invoice_id"]).replace("&", "&amp;")
    assert "Your bank asks you to confirm the payment" in message.body
    assert f'<a href="{link}">Confirm the payment</a>' in message.body
    assert "Update your payment method" in message.body  # another card is still the other way out


def test_pay_answers_next_action_and_the_processors_event_pays_the_invoice_once(api, needs_authentication,
                                                                             deliveries):
    invoice_id = needs_authentication["invoice_id"]
    reply = pay(api, invoice_id)
    assert reply.status == 200, reply.text
    action = reply.json["next_action"]
    assert action["type"] == "confirm_payment" and action["publishable_key"] == "pk_test_local"
    assert reply.json["status"] == "payment_failed" and reply.json["action_required"] is True
    on_session = intents(api.stack)[-1]
    assert on_session.client_secret == action["client_secret"] and on_session.status == "requires_action"
    # asked again before the customer confirms: the same PaymentIntent, nothing new
    again = pay(api, invoice_id)
    assert again.json["next_action"]["client_secret"] == action["client_secret"]
    assert len(intents(api.stack)) == 2  # the off-session attempt and the one the page confirms

    assert authenticate(api.stack, action["client_secret"])["status"] == "succeeded"
    body, signature = deliveries.of("payment_intent.succeeded", on_session.id)
    mails = mail_count()
    answer = deliver(api, body, signature)
    assert answer.status == 200, answer.text
    assert answer.json["acted"] is True
    paid = invoice_of(api)
    assert paid["status"] == "paid" and paid["action_required"] is False and paid["next_payment_attempt"] is None
    assert paid["paid_with"]["last4"] == "3184"
    assert mail_count() == mails + 1 and emails()[-1].subject.startswith("Receipt for invoice")
    assert container().billing_store.get_invoice(TEAM, invoice_id).charge_id == on_session.id
    assert invoice_id not in subscription().past_due_invoices

    # the same event delivered again: acknowledged, not acted on
    replay = deliver(api, body, signature)
    assert replay.status == 200 and replay.json["acted"] is False
    assert mail_count() == mails + 1 and invoice_of(api) == paid
    assert len(intents(api.stack)) == 2  # never a charge more
    assert pay(api, invoice_id).status == 409


def test_a_second_pay_after_the_customer_confirmed_pays_without_a_new_charge(api, needs_authentication):
    invoice_id = needs_authentication["invoice_id"]
    action = pay(api, invoice_id).json["next_action"]
    authenticate(api.stack, action["client_secret"])
    before = len(intents(api.stack))

    reply = pay(api, invoice_id)
    assert reply.status == 200, reply.text
    assert reply.json["status"] == "paid" and "next_action" not in reply.json
    assert len(intents(api.stack)) == before
    confirmed = action["client_secret"].split("_secret_")[0]
    assert container().billing_store.get_invoice(TEAM, invoice_id).charge_id == confirmed
    assert emails()[-1].subject.startswith("Receipt for invoice")


def test_an_event_for_a_payment_intent_of_no_invoice_of_ours_changes_nothing(api, world, needs_authentication):
    """Signed with our secret, naming our invoice in its copy of the metadata: the processor's own
    PaymentIntent decides, and one made elsewhere on the account (another invoice's) pays nothing."""
    invoice_id = needs_authentication["invoice_id"]
    elsewhere = stripe_client(api.stack).payment_intents.create(params={
        "amount": 750, "currency": "usd", "payment_method": world.card(), "confirm": True})
    assert elsewhere.status == "succeeded"
    for intent_id in ("pi_unknown", elsewhere.id):
        stranger = {"id": f"evt_{intent_id}", "type": "payment_intent.succeeded", "object": "event",
                    "data": {"object": {"id": intent_id, "object": "payment_intent",
                                        "metadata": {"team_id": TEAM, "invoice_id": invoice_id}}}}
        body = json.dumps(stranger).encode()
        reply = deliver(api, body, sign(body))
        assert reply.status == 200 and reply.json["acted"] is False
    assert invoice_of(api)["status"] == "payment_failed"


def test_an_event_is_acted_on_from_the_processors_payment_intent_not_the_events_copy(api, needs_authentication):
    """A hand-built event carrying only the PaymentIntent's id (no metadata) pays its invoice all the same."""
    invoice_id = needs_authentication["invoice_id"]
    action = pay(api, invoice_id).json["next_action"]
    authenticate(api.stack, action["client_secret"])
    intent_id = action["client_secret"].split("_secret_")[0]
    body = json.dumps({"id": "evt_bare", "type": "payment_intent.succeeded", "object": "event",
                       "data": {"object": {"id": intent_id, "object": "payment_intent"}}}).encode()
    reply = deliver(api, body, sign(body))
    assert reply.status == 200 and reply.json["acted"] is True
    assert invoice_of(api)["status"] == "paid"


# ------------------------------------------------------------------ forged events


@pytest.mark.parametrize("forgery", ["wrong secret", "changed body", "old timestamp", "no signature"])
def test_a_forged_event_is_400_and_changes_nothing(api, needs_authentication, deliveries, forgery):
    invoice_id = needs_authentication["invoice_id"]
    action = pay(api, invoice_id).json["next_action"]
    authenticate(api.stack, action["client_secret"])
    body, signature = deliveries.of("payment_intent.succeeded", action["client_secret"].split("_secret_")[0])
    forged = {
        "wrong secret": (body, sign(body, secret="whsec_someone_else")),
        "changed body": (body.replace(b'"succeeded"', b'"succeeded" '), signature),
        "old timestamp": (body, sign(body, at=int(time.time()) - 301)),
        "no signature": (body, None),
    }[forgery]
    mails = mail_count()
    reply = deliver(api, *forged)
    assert problem(reply, 400)["title"] == "Bad signature"
    assert invoice_of(api)["status"] == "payment_failed" and mail_count() == mails
    # the genuine delivery is still acted on: the forgery took no marker
    assert deliver(api, body, signature).json["acted"] is True


# ------------------------------------------------------------------ the processor drops a charge's answer


class DroppingProxy:
    """Forwards to localstripe, but a PaymentIntent create reaches it and its answer never comes back
    (localstripe stopped mid-charge, as the client sees it)."""

    def __init__(self, upstream: str) -> None:
        self.creates = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                request = urllib.request.Request(upstream + self.path, data=body, method=self.command,
                                                 headers={k: v for k, v in self.headers.items()
                                                          if k.lower() not in ("host", "content-length")})
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        status, payload = answer.status, answer.read()
                except urllib.error.HTTPError as error:
                    status, payload = error.code, error.read()
                if self.command == "POST" and self.path.rstrip("/") == "/v1/payment_intents":
                    proxy.creates += 1
                    self.close_connection = True  # taken upstream; the client hears nothing
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _forward

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_a_charge_whose_answer_is_lost_is_made_once_and_the_invoice_is_right_afterwards(api, world, teams, clock,
                                                                                      compose):
    from usage_ledger.adapters.payments import StripeGateway

    payg(world, world.card())
    proxy = DroppingProxy(api.stack.parameters["StripeApiBase"])
    try:
        compose(payments=StripeGateway(proxy.url, lambda: LOCAL_SECRET_KEY, "pk_test_local"))
        run = bill_one_cycle(api, clock)
        assert run["invoiced"] == 1 and run["attempts"] == 0  # the outage recorded nothing
        assert proxy.creates == 1  # the SDK did not retry into a second charge
    finally:
        proxy.close()
    compose()  # the processor answers again
    assert invoice_of(api)["status"] == "open"
    (intent,) = intents(api.stack)
    assert intent.status == "succeeded"

    assert close_billing(api.stack, CLOSE_AT)["paid"] == 1  # the next run asks before charging
    invoice = invoice_of(api)
    assert invoice["status"] == "paid" and invoice["attempt_count"] == 1 and invoice["paid_with"]["last4"] == "4242"
    assert [i.id for i in intents(api.stack)] == [intent.id]
    assert container().billing_store.get_invoice(TEAM, invoice["invoice_id"]).charge_id == intent.id


def test_a_card_update_with_no_time_left_for_a_charge_saves_the_card_and_leaves_the_invoice_to_the_schedule(
        api, world, teams, clock, monkeypatch):
    from infra.lambdas import FakeLambdaContext

    payg(world, world.card(CARD_DECLINED_ON_CHARGE))
    bill_one_cycle(api, clock)
    failed = invoice_of(api)
    new_card = world.card("5555555555554444")
    with monkeypatch.context() as patch:  # 9 s left in the function: less than one charge (8 s) and its record
        patch.setattr(FakeLambdaContext, "get_remaining_time_in_millis", lambda self: 9_000)
        reply = update_card(api, new_card)
    assert reply.status == 200, reply.text
    assert reply.json["payment_method"]["last4"] == "4444"
    assert reply.json["retried_invoices"] == [{"invoice_id": failed["invoice_id"], "status": "payment_failed"}]
    assert len(intents(api.stack)) == 1 and invoice_of(api) == failed

    # with time enough, the next scheduled retry charges the saved card
    assert close_billing(api.stack, utc(2026, 2, 16, 2))["paid"] == 1
    assert invoice_of(api)["paid_with"]["last4"] == "4444"


def test_a_payment_confirmed_whose_event_never_came_is_found_by_the_next_retry_not_charged_again(
        api, needs_authentication):
    invoice_id = needs_authentication["invoice_id"]
    action = pay(api, invoice_id).json["next_action"]
    authenticate(api.stack, action["client_secret"])  # the page closed before its second pay; no event handled
    before = len(intents(api.stack))

    due = container().billing_store.get_invoice(TEAM, invoice_id).next_payment_attempt
    assert close_billing(api.stack, due)["paid"] == 1
    assert len(intents(api.stack)) == before
    invoice = container().billing_store.get_invoice(TEAM, invoice_id)
    assert invoice.status == "paid" and invoice.charge_id == action["client_secret"].split("_secret_")[0]


def test_a_confirmation_that_comes_after_the_invoice_was_paid_another_way_is_logged_not_recorded(
        api, world, needs_authentication, deliveries, caplog):
    invoice_id = needs_authentication["invoice_id"]
    action = pay(api, invoice_id).json["next_action"]
    assert update_card(api, world.card()).json["retried_invoices"][0]["status"] == "paid"  # another card paid it
    paid = invoice_of(api)

    authenticate(api.stack, action["client_secret"])  # then the customer confirms the old payment too
    late = action["client_secret"].split("_secret_")[0]
    reply = deliver(api, *deliveries.of("payment_intent.succeeded", late))
    assert reply.status == 200 and reply.json["acted"] is False
    assert invoice_of(api) == paid and container().billing_store.get_invoice(TEAM, invoice_id).charge_id != late
    assert any("paid twice" in record.getMessage() for record in caplog.records)
