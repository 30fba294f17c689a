"""Credit notes through the handlers and against localstripe (contract section 7): refunds of paid
invoices that add up at the processor, lowered amount_due and void on unpaid ones, racing notes
never past the total, idempotent ids, the team's own gapless numbers, the email and the PDF."""
import threading
from datetime import timedelta

import pytest
from conftest import OPERATOR, Identity, close_billing, cloud_event, drain_events, paths, problem, send_events, utc
from pdf_text import pdf_text
from sent_mail import sent_emails
from usage_ledger.domain.errors import ProcessorUnavailable

from infra.localstripe import CARD_DECLINED_ON_CHARGE, CARD_OK, LOCAL_SECRET_KEY

ALICE = Identity.user("alice")
CLOSE_AT = utc(2026, 2, 15, 1)  # closes Jan 15 - Feb 14 (UTC) and makes the first attempt
PDF = {"accept": "application/pdf"}


@pytest.fixture
def team(world):
    world.resource("minutes", kind="api", size=20)
    world.team("team-a")
    return "team-a"


def billed(api, world, clock, card=CARD_OK, minutes=40, team_id="team-a", subscription_id="payg-1"):
    """An invoice of minutes/20 units at 2.50 USD, closed and first attempted at CLOSE_AT."""
    world.subscription(team_id, "minutes", "payg", purchased_at="2026-01-15T10:00:00Z",
                       starts_at="2026-01-15T10:00:00Z", subscription_id=subscription_id,
                       payment_method={"id": world.card(number=card)})
    clock.set(utc(2026, 2, 1))
    assert send_events(api, [cloud_event(team_id, "minutes", minutes, utc(2026, 2, 1))]).status == 202
    drain_events(api.stack)
    close_billing(api.stack, CLOSE_AT)
    items = api.get(f"/v1/teams/{team_id}/invoices", as_=ALICE).json["items"]
    return next(item for item in items if item["subscription_id"] == subscription_id)


def credit(api, invoice, amount, reason="duplicate", team_id="team-a", **fields):
    return api.post(f"/v1/admin/teams/{team_id}/invoices/{invoice['invoice_id']}/credit-notes",
                    {"amount": amount, "reason": reason, **fields}, as_=OPERATOR)


def invoice_now(api, invoice, team_id="team-a"):
    reply = api.get(f"/v1/teams/{team_id}/invoices/{invoice['invoice_id']}", as_=ALICE)
    assert reply.status == 200, reply.text
    return reply.json


def stripe_client(stack):
    import stripe

    return stripe.StripeClient(LOCAL_SECRET_KEY, base_addresses={"api": stack.parameters["StripeApiBase"]}).v1


def refunds_at_processor(stack, payment_intent):
    listing = stripe_client(stack).refunds.list(params={"payment_intent": payment_intent, "limit": 100})
    return list(listing.auto_paging_iter())


def intents_of(stack, invoice, team_id="team-a"):
    """The invoice's PaymentIntents (localstripe lives as long as the test process: by our Customer)."""
    customer = container().ledger_store.subscription_by_id(team_id, invoice["subscription_id"]).customer_id
    return [intent for intent in stripe_client(stack).payment_intents.list(params={"limit": 100}).auto_paging_iter()
            if intent.customer == customer]


def paying_intent(stack, invoice):
    return next(intent for intent in intents_of(stack, invoice) if intent.status == "succeeded")


def container():
    from usage_ledger import bootstrap

    return bootstrap.container()


def past_due(team_id="team-a", subscription_id="payg-1"):
    return container().ledger_store.subscription_by_id(team_id, subscription_id).past_due_invoices


# ------------------------------------------------------------------ paid invoices: refunds


def test_a_partial_then_a_full_credit_note_on_a_paid_invoice_refund_the_paying_intent(api, world, team, clock):
    invoice = billed(api, world, clock, minutes=80)  # 4 units: 10.00 USD, paid
    assert (invoice["status"], invoice["total"], invoice["amount_due"], invoice["credited"]) == ("paid", 1000, 0, 0)
    intent = paying_intent(api.stack, invoice)

    first = credit(api, invoice, 300, "product_unsatisfactory", memo="The 3rd job failed")
    assert first.status == 201, first.text
    note = first.json
    assert (note["number"], note["amount"], note["currency"], note["memo"]) == (1, 300, "usd", "The 3rd job failed")
    assert note["refund"]["amount"] == 300 and note["refund"]["status"] == "succeeded"
    assert note["credit_note_id"].startswith("cn_") and note["invoice_id"] == invoice["invoice_id"]

    second = credit(api, invoice, 700, "duplicate", credit_note_id="cn-rest")
    assert second.status == 201 and second.json["number"] == 2, second.text
    refunds = refunds_at_processor(api.stack, intent.id)
    assert sorted(refund.amount for refund in refunds) == [300, 700]  # they add up to the total
    assert {refund.id for refund in refunds} == {note["refund"]["id"], second.json["refund"]["id"]}

    after = invoice_now(api, invoice)
    assert (after["status"], after["credited"], after["amount_due"]) == ("paid", 1000, 0)
    assert [(n["number"], n["amount"], n["reason"], n["refund"]["id"]) for n in after["credit_notes"]] == [
        (1, 300, "product_unsatisfactory", note["refund"]["id"]), (2, 700, "duplicate", second.json["refund"]["id"])]
    assert paths(credit(api, invoice, 1)) == ["amount"]  # nothing left to credit
    assert len(refunds_at_processor(api.stack, intent.id)) == 2


def test_a_replayed_credit_note_id_is_the_same_note_and_refunds_once_and_a_different_one_is_409(
        api, world, team, clock):
    invoice = billed(api, world, clock)
    first = credit(api, invoice, 200, credit_note_id="cn-1", memo="goodwill")
    again = credit(api, invoice, 200, credit_note_id="cn-1", memo="goodwill")
    assert first.status == 201 and again.status == 200, again.text
    assert again.json == first.json
    assert len(refunds_at_processor(api.stack, paying_intent(api.stack, invoice).id)) == 1
    problem(credit(api, invoice, 300, credit_note_id="cn-1", memo="goodwill"), 409)
    problem(credit(api, invoice, 200, "other", credit_note_id="cn-1", memo="goodwill"), 409)
    assert invoice_now(api, invoice)["credited"] == 200
    emails = [email for email in sent_emails() if email.subject.startswith("Credit note")]
    assert len(emails) == 1  # the purchaser's copy, once


class RefundOutageOnce:
    """The real gateway, but the first refund reaches the processor and its answer is lost."""

    def __init__(self, real):
        self.real, self.failed = real, False

    def __getattr__(self, name):
        return getattr(self.real, name)

    def refund(self, **kwargs):
        made = self.real.refund(**kwargs)
        if not self.failed:
            self.failed = True
            raise ProcessorUnavailable("the answer timed out")
        return made


def test_a_refund_whose_answer_was_lost_is_found_at_the_processor_on_the_replay(api, world, team, clock, compose):
    invoice = billed(api, world, clock)
    compose(payments=RefundOutageOnce(container().payments))
    lost = credit(api, invoice, 250, credit_note_id="cn-lost")
    assert lost.status == 503, lost.text  # the credit stands, its refund is owed
    assert invoice_now(api, invoice)["credited"] == 250
    replay = credit(api, invoice, 250, credit_note_id="cn-lost")
    assert replay.status == 200 and replay.json["refund"]["amount"] == 250, replay.text
    assert len(refunds_at_processor(api.stack, paying_intent(api.stack, invoice).id)) == 1  # never twice


# ------------------------------------------------------------------ unpaid invoices: amount due and void


def test_credit_notes_on_an_unpaid_invoice_lower_the_next_attempt_and_void_it_at_zero(api, world, team, clock):
    invoice = billed(api, world, clock, card=CARD_DECLINED_ON_CHARGE, minutes=80)  # 10.00 USD, declined
    assert (invoice["status"], invoice["amount_due"]) == ("payment_failed", 1000)
    assert past_due() == {invoice["invoice_id"]}

    partial = credit(api, invoice, 400, "order_change")
    assert partial.status == 201 and partial.json["refund"] is None, partial.text
    after = invoice_now(api, invoice)
    assert (after["status"], after["credited"], after["amount_due"]) == ("payment_failed", 400, 600)

    assert close_billing(api.stack, CLOSE_AT + timedelta(days=1))["attempts"] == 1  # the day-1 retry
    # the retry asked amount_due
    assert sorted(intent.amount for intent in intents_of(api.stack, invoice)) == [600, 1000]
    failed = [email for email in sent_emails() if email.subject.startswith("Payment failed")]
    assert "(10.00 USD)" in failed[0].subject and "(6.00 USD)" in failed[-1].subject  # what each attempt asked

    full = credit(api, invoice, 600, "order_change")
    assert full.status == 201, full.text
    voided = invoice_now(api, invoice)
    assert (voided["status"], voided["amount_due"], voided["next_payment_attempt"]) == ("void", 0, None)
    assert past_due() == frozenset()
    card = api.get("/v1/teams/team-a/balances/minutes", as_=ALICE).json
    assert card["payg"]["status"] == "active"
    assert close_billing(api.stack, CLOSE_AT + timedelta(days=3))["attempts"] == 0  # no attempt follows
    problem(api.post(f"/v1/teams/team-a/invoices/{invoice['invoice_id']}/pay", None, as_=ALICE), 409)
    assert paths(credit(api, invoice, 1)) == ["amount"]


def test_six_credit_notes_racing_on_one_invoice_never_credit_past_its_total(api, world, team, clock):
    invoice = billed(api, world, clock, card=CARD_DECLINED_ON_CHARGE, minutes=80)  # 1000 due
    barrier = threading.Barrier(6)
    replies = []

    def issue(index):
        barrier.wait()
        replies.append(credit(api, invoice, 200, credit_note_id=f"cn-race-{index}"))

    threads = [threading.Thread(target=issue, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = [reply.json for reply in replies if reply.status == 201]
    refused = [reply for reply in replies if reply.status != 201]
    assert len(created) == 5 and [paths(reply) for reply in refused] == [["amount"]]
    assert sorted(note["number"] for note in created) == [1, 2, 3, 4, 5]  # no gap, no repeat
    after = invoice_now(api, invoice)
    assert (after["credited"], after["amount_due"], after["status"]) == (1000, 0, "void")
    assert sorted(note["number"] for note in after["credit_notes"]) == [1, 2, 3, 4, 5]


def test_credit_notes_are_numbered_per_team_across_invoices(api, world, team, clock):
    first = billed(api, world, clock, subscription_id="payg-1")
    world.resource("assets", kind="resource", size=1)
    world.subscription("team-a", "assets", "payg", purchased_at="2026-01-15T10:00:00Z",
                       starts_at="2026-01-15T10:00:00Z", subscription_id="payg-2")
    clock.set(utc(2026, 2, 2))
    assert send_events(api, [cloud_event("team-a", "assets", 3, utc(2026, 2, 2))]).status == 202
    drain_events(api.stack)
    close_billing(api.stack, CLOSE_AT + timedelta(hours=1))
    second = next(item for item in api.get("/v1/teams/team-a/invoices", as_=ALICE).json["items"]
                  if item["subscription_id"] == "payg-2")
    world.team("team-b")
    other = billed(api, world, clock, team_id="team-b", subscription_id="payg-b")
    numbers = [credit(api, first, 100).json["number"], credit(api, second, 100).json["number"],
               credit(api, other, 100, team_id="team-b").json["number"], credit(api, first, 100).json["number"]]
    assert numbers == [1, 2, 1, 3]  # team-b has a sequence of its own
    assert (first["number"], second["number"]) == (1, 2)  # the invoices keep theirs


# ------------------------------------------------------------------ refusals, reading, the documents


def test_unknown_teams_invoices_and_bad_fields_are_refused(api, world, team, clock):
    invoice = billed(api, world, clock)
    problem(credit(api, invoice, 100, team_id="team-zz"), 404)
    problem(credit(api, {"invoice_id": "in_20260214_nope"}, 100), 404)
    assert paths(credit(api, invoice, 0)) == ["amount"]
    assert paths(credit(api, invoice, 100, "changed_mind")) == ["reason"]
    assert paths(credit(api, invoice, 501)) == ["amount"]  # past the 500 total
    reply = api.post(f"/v1/admin/teams/team-a/invoices/{invoice['invoice_id']}/credit-notes",
                     {"amount": 100, "reason": "other"}, as_=ALICE)
    problem(reply, 403)  # team users never reach the operator route


def test_the_credit_note_reads_as_json_and_pdf_and_its_email_attaches_the_pdf(api, world, team, clock):
    invoice = billed(api, world, clock)
    note = credit(api, invoice, 125, "fraudulent", memo="Card reported stolen").json
    path = f"/v1/teams/team-a/invoices/{invoice['invoice_id']}/credit-notes/{note['credit_note_id']}"
    assert api.get(path, as_=ALICE).json == note
    pdf = api.get(path, as_=ALICE, headers=PDF)
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    text = pdf_text(pdf.content)
    assert "Credit note 1" in text and "1.25 USD" in text and "Card reported stolen" in text
    assert f"Invoice {invoice['number']}" in text
    problem(api.get(f"/v1/teams/team-a/invoices/in_20260214_other/credit-notes/{note['credit_note_id']}",
                    as_=ALICE), 404)
    world.member("team-a", "hub", ["hub_admin"])
    problem(api.get(path, as_=Identity.user("hub")), 403)

    (email,) = [email for email in sent_emails() if email.subject.startswith("Credit note")]
    assert email.destinations["ToAddresses"] == ["alice@example.com"]
    assert "1.25 USD" in email.text and "Card reported stolen" in email.html
    (attached,) = email.attachments
    assert attached.filename == "credit-note-1.pdf" and "Credit note 1" in pdf_text(attached.data)

    html = api.get(f"/v1/teams/team-a/invoices/{invoice['invoice_id']}", as_=ALICE,
                   headers={"accept": "text/html"}).text
    assert "Credit notes" in html and "Amount due" in html and "-1.25 USD" in html
    invoice_pdf = pdf_text(
        api.get(f"/v1/teams/team-a/invoices/{invoice['invoice_id']}", as_=ALICE, headers=PDF).content)
    assert "Credit note 1" in invoice_pdf and "-1.25 USD" in invoice_pdf and "Refunded" in invoice_pdf
