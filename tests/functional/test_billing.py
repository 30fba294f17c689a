"""Billing through the handlers: ingest -> CloseBillingCyclesFunction -> invoices, charges, emails, routes."""
import base64
import json
import threading
from datetime import timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import (
    Identity,
    close_billing,
    cloud_event,
    drain_events,
    send_events,
    utc,
)
from sent_mail import sent_emails
from usage_ledger.domain.errors import ProcessorUnavailable

from infra.localstripe import LOCAL_SECRET_KEY

ALICE = Identity.user("alice")


# ------------------------------------------------------------------ helpers








def ingest(api, clock, at, events):
    """Send events as a producer would at `at`, and let IngestFunction take them at `at`."""
    clock.set(at)
    reply = send_events(api, events)
    assert reply.status == 202, reply.text
    drain_events(api.stack)


def usage(team_id, quantity, at):
    return cloud_event(team_id, "minutes", quantity, at)


def emails():
    return sent_emails()  # SendEmail and raw (with the PDF) alike


def ledger_items(stack, prefix):
    table = boto3.resource("dynamodb").Table(stack.physical["LedgerTable"])
    items, kwargs = [], {}
    while True:
        page = table.scan(**kwargs)
        items += [item for item in page["Items"] if item["PK"].startswith(prefix)]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def payments(stack, team_id="team-a", subscription_id="payg-1"):
    """The PaymentIntents at localstripe for the subscription's own Customer, oldest first."""
    import stripe
    from usage_ledger import bootstrap

    subscription = bootstrap.container().ledger_store.subscription_by_id(team_id, subscription_id)
    client = stripe.StripeClient(LOCAL_SECRET_KEY, base_addresses={"api": stack.parameters["StripeApiBase"]}).v1
    intents = [intent for intent in client.payment_intents.list(params={"limit": 100}).auto_paging_iter()
               if intent.customer == subscription.customer_id]
    return sorted(intents, key=lambda intent: intent.created)


def invoices(api, team_id="team-a", as_=ALICE, query=""):
    reply = api.get(f"/v1/teams/{team_id}/invoices", as_=as_, query=query)
    assert reply.status == 200, reply.text
    return reply.json


def periods(listing):
    return [(item["period_start"], item["period_end"]) for item in listing["items"]]


@pytest.fixture
def team(world):
    world.resource("minutes", kind="api", size=20)
    world.team("team-a")
    return "team-a"


def payg(world, team_id="team-a", purchased_at="2026-01-15T10:00:00Z", timezone="UTC", **fields):
    return world.subscription(team_id, "minutes", "payg", purchased_at=purchased_at, starts_at=purchased_at,
                              timezone=timezone, subscription_id=fields.pop("subscription_id", "payg-1"), **fields)


# ------------------------------------------------------------------ cycles and invoices


def test_full_units_are_invoiced_and_the_partial_remainder_rolls_into_the_next_cycle(api, world, team, clock):
    payg(world)  # cycles Jan 15 - Feb 14, Feb 15 - Mar 14 (UTC)
    ingest(api, clock, utc(2026, 2, 10), [usage(team, 50, utc(2026, 2, 10))])  # 2 units, 10 pending
    ingest(api, clock, utc(2026, 2, 20), [usage(team, 15, utc(2026, 2, 20))])  # 25 -> 1 unit, 5 pending

    assert close_billing(api.stack, utc(2026, 2, 15, 0, 59))["closed"] == 0  # ended, but inside the grace period
    summary = close_billing(api.stack, utc(2026, 2, 15, 1))
    assert summary == {"closed": 1, "invoiced": 1, "payments_failed": 0, "failed": 0, "skipped": 0, "attempts": 1,
                       "paid": 1}
    first = invoices(api)["items"]
    assert [(i["period_start"], i["period_end"], i["total"], i["status"]) for i in first] == [
        ("2026-01-15", "2026-02-14", 500, "paid")]
    assert first[0]["lines"] == [{"resource_id": "minutes", "charged_units": 2, "unit_amount": 250, "amount": 500}]

    close_billing(api.stack, utc(2026, 3, 15, 2))
    listing = invoices(api)
    assert periods(listing) == [("2026-02-15", "2026-03-14"), ("2026-01-15", "2026-02-14")]
    assert listing["items"][0]["total"] == 250  # the 5 pending base units are never charged
    assert listing["next_cursor"] is None


def test_a_cycle_without_units_closes_without_an_invoice(api, world, team, clock):
    payg(world)
    ingest(api, clock, utc(2026, 3, 1), [usage(team, 10, utc(2026, 3, 1))])  # no full unit
    assert close_billing(api.stack, utc(2026, 4, 1))["invoiced"] == 0
    assert invoices(api)["items"] == [] and emails() == []


def test_cycles_follow_local_dates_of_a_los_angeles_purchase(api, world, team, clock):
    # 05:00Z on Mar 1 is 21:00 on Feb 28 in Los Angeles: the anchor is the 28th, local
    payg(world, purchased_at="2026-03-01T05:00:00Z", timezone="America/Los_Angeles")
    inside = utc(2026, 3, 28, 6, 30)  # 23:30 PDT on Mar 27: the last local day of cycle 0
    after = utc(2026, 3, 28, 7, 30)  # 00:30 PDT on Mar 28: cycle 1
    ingest(api, clock, utc(2026, 3, 28, 7, 45), [usage(team, 40, inside), usage(team, 20, after)])

    assert close_billing(api.stack, utc(2026, 3, 28, 7, 59))["closed"] == 0  # cycle 0 ends at 07:00Z (midnight PDT)
    assert close_billing(api.stack, utc(2026, 3, 28, 8))["invoiced"] == 1
    (invoice,) = invoices(api)["items"]
    assert (invoice["period_start"], invoice["period_end"]) == ("2026-02-28", "2026-03-27")
    assert invoice["lines"][0]["charged_units"] == 2
    assert invoice["invoice_id"].startswith("in_20260327_")


def test_a_month_end_anchor_clamps_to_short_months_and_returns(api, world, team, clock):
    payg(world, purchased_at="2026-01-31T12:00:00Z")
    for quantity, at in [
        (20, utc(2026, 2, 27, 23)),  # cycle 0: Jan 31 - Feb 27
        (40, utc(2026, 2, 28, 1)),  # cycle 1: Feb 28 - Mar 30
        (60, utc(2026, 3, 31)),  # cycle 2: Mar 31 - Apr 29
    ]:  # each arrives while its cycle is open
        ingest(api, clock, at + timedelta(minutes=30), [usage(team, quantity, at)])
    summary = close_billing(api.stack, utc(2026, 5, 1))
    assert summary["closed"] == 3 and summary["invoiced"] == 3
    listing = invoices(api)
    assert periods(listing) == [("2026-03-31", "2026-04-29"), ("2026-02-28", "2026-03-30"),
                                ("2026-01-31", "2026-02-27")]
    assert [item["lines"][0]["charged_units"] for item in listing["items"]] == [3, 2, 1]
    assert len(emails()) == 3


def test_late_events_within_grace_stay_in_their_cycle_and_after_close_go_to_the_open_one(api, world, team, clock):
    payg(world)
    ingest(api, clock, utc(2026, 2, 15, 0, 30), [usage(team, 20, utc(2026, 2, 14, 23, 50))])  # within grace
    assert close_billing(api.stack, utc(2026, 2, 15, 1))["invoiced"] == 1
    ingest(api, clock, utc(2026, 2, 15, 1, 30), [usage(team, 40, utc(2026, 2, 14, 23, 55))])  # after close

    (closed,) = invoices(api)["items"]
    assert closed["lines"][0]["charged_units"] == 1  # the closed invoice is never reopened
    card = api.get("/v1/teams/team-a/balances/minutes", as_=ALICE).json
    assert card["payg"]["cycle_start"] == "2026-02-15" and card["payg"]["charged_units"] == 2

    close_billing(api.stack, utc(2026, 3, 15, 1))
    newest = invoices(api)["items"][0]
    assert newest["period_start"] == "2026-02-15" and newest["lines"][0]["charged_units"] == 2


# ------------------------------------------------------------------ exactly once


@pytest.mark.filterwarnings("ignore:No application metrics")  # threads share one Metrics buffer here
def test_three_concurrent_runs_issue_one_invoice_one_charge_one_email(api, world, team, clock):
    payg(world)
    ingest(api, clock, utc(2026, 2, 1), [usage(team, 60, utc(2026, 2, 1))])
    barrier = threading.Barrier(3)
    results, errors = [], []

    def run(container):
        try:
            barrier.wait()  # three scheduled runs at once, each with its own workers draining the queue
            results.append(close_billing(api.stack, utc(2026, 2, 15, 2), container))
        except Exception as error:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(f"c{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == 3
    assert sum(result["closed"] for result in results) == 1
    assert sum(result["invoiced"] for result in results) == 1
    assert len(invoices(api)["items"]) == 1 and len(payments(api.stack)) == 1 and len(emails()) == 1
    assert close_billing(api.stack, utc(2026, 2, 15, 3))["closed"] == 0  # and a later run has nothing left to do
    assert len(emails()) == 1


class FailingMailer:
    """SES answering with an error to every send."""

    def __init__(self, code: str = "Throttling") -> None:
        self.code = code

    def send(self, *args, **kwargs):
        raise ClientError({"Error": {"Code": self.code, "Message": "unavailable"}}, "SendEmail")


def test_a_failed_email_leaves_the_invoice_due_and_the_next_run_sends_it_once(api, world, team, clock, compose):
    payg(world)
    ingest(api, clock, utc(2026, 2, 1), [usage(team, 60, utc(2026, 2, 1))])
    compose(mailer=FailingMailer("Throttling"))
    summary = close_billing(api.stack, utc(2026, 2, 15, 1))
    assert (summary["closed"], summary["paid"], summary["failed"]) == (1, 1, 1)
    (invoice,) = invoices(api)["items"]
    assert invoice["status"] == "paid" and emails() == []

    compose()
    summary = close_billing(api.stack, utc(2026, 2, 15, 2))
    assert (summary["closed"], summary["invoiced"], summary["attempts"], summary["failed"]) == (0, 0, 0, 0)
    assert len(invoices(api)["items"]) == 1 and len(payments(api.stack)) == 1 and len(emails()) == 1


class UnreachableGateway:
    def charge(self, **kwargs):
        raise ProcessorUnavailable("the processor timed out")


def test_a_gateway_error_leaves_the_invoice_open_and_the_next_run_charges_it_once(api, world, team, clock,
                                                                                  compose):
    payg(world)
    ingest(api, clock, utc(2026, 2, 1), [usage(team, 60, utc(2026, 2, 1))])
    compose(payments=UnreachableGateway())
    summary = close_billing(api.stack, utc(2026, 2, 15, 1))
    assert (summary["closed"], summary["failed"], summary["attempts"]) == (1, 1, 0)
    (invoice,) = invoices(api)["items"]
    assert (invoice["status"], invoice["attempt_count"]) == ("open", 0)
    assert payments(api.stack) == [] and emails() == []

    compose()
    assert close_billing(api.stack, utc(2026, 2, 15, 2))["attempts"] == 1
    (invoice,) = invoices(api)["items"]
    assert invoice["status"] == "paid" and len(payments(api.stack)) == 1 and len(emails()) == 1


def test_the_handler_falls_back_to_the_clock_without_an_event_time(api, world, team, clock):
    payg(world)
    ingest(api, clock, utc(2026, 2, 1), [usage(team, 20, utc(2026, 2, 1))])
    scheduled = {"detail-type": "Scheduled Event", "detail": {}}
    assert close_billing(api.stack, utc(2026, 2, 15, 1), event=scheduled)["closed"] == 1


# ------------------------------------------------------------------ payment and email


def test_an_expired_card_gives_payment_failed_and_an_email_to_update_it(api, world, team, clock):
    # valid through Jan 31, 2026; localstripe would charge it, our expiry check does not try
    payg(world, payment_method={"id": world.card(exp_month=1, exp_year=2026)})
    ingest(api, clock, utc(2026, 2, 1), [usage(team, 20, utc(2026, 2, 1))])
    summary = close_billing(api.stack, utc(2026, 2, 15, 1))
    assert summary["payments_failed"] == 1
    (invoice,) = invoices(api)["items"]
    assert invoice["status"] == "payment_failed"
    assert payments(api.stack) == []
    (message,) = emails()
    assert message.destinations["ToAddresses"] == ["alice@example.com"]
    assert "Payment failed" in message.subject and "update your card" in message.subject
    assert "Update your payment method" in message.body and "4242" in message.body


def test_a_card_is_valid_through_the_end_of_its_expiry_month(api, world, team, clock):
    payg(world, payment_method={"id": world.card(exp_month=2, exp_year=2026)})
    ingest(api, clock, utc(2026, 2, 1), [usage(team, 20, utc(2026, 2, 1))])
    close_billing(api.stack, utc(2026, 2, 15, 1))
    assert invoices(api)["items"][0]["status"] == "paid"
    (message,) = emails()
    assert message.subject == "Invoice 1 for TEAM-A: 2.50 USD"


def test_the_rendered_invoice_escapes_the_team_name_and_formats_money(api, world, team, clock):
    assert api.put("/v1/admin/teams/team-a", {"name": "<script>alert(1)</script> & Co"}).status in (200, 201)
    payg(world, purchased_at="2026-03-01T05:00:00Z", timezone="America/Los_Angeles")
    ingest(api, clock, utc(2026, 3, 10), [usage(team, 300, utc(2026, 3, 10))])  # 15 units x 250 = 3750
    close_billing(api.stack, utc(2026, 3, 28, 8))
    (item,) = invoices(api)["items"]

    reply = api.get(f"/v1/teams/team-a/invoices/{item['invoice_id']}", as_=ALICE,
                    headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert reply.status == 200 and reply.content_type.startswith("text/html")
    html = reply.text
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert "37.50 USD" in html and "2.50 USD" in html
    assert "February 28, 2026 to March 27, 2026" in html  # local dates, in words
    assert "Visa ending in 4242" in html and "alice@example.com" in html
    assert "<script>alert" not in emails()[0].body

    as_json = api.get(f"/v1/teams/team-a/invoices/{item['invoice_id']}", as_=ALICE)
    assert as_json.content_type == "application/json" and as_json.json == item
    assert set(item) == {"invoice_id", "number", "subscription_id", "period_start", "period_end", "lines", "total",
                         "currency", "status", "attempt_count", "next_payment_attempt", "paid_at", "issued_at",
                         "paid_with", "action_required", "amount_due", "credited", "credit_notes"}
    assert (item["amount_due"], item["credited"], item["credit_notes"]) == (0, 0, [])  # paid, never credited
    assert item["issued_at"] == "2026-03-28T08:00:00Z" and item["currency"] == "usd"


# ------------------------------------------------------------------ routes


@pytest.fixture
def five_invoices(api, world, team, clock):
    payg(world)
    for month in range(1, 6):  # each month's usage arrives while its cycle is open
        ingest(api, clock, utc(2026, month, 20, 1), [usage(team, 20, utc(2026, month, 20))])
    assert close_billing(api.stack, utc(2026, 7, 1))["invoiced"] == 5
    return [item["invoice_id"] for item in invoices(api)["items"]]


def test_invoices_page_newest_first_with_an_opaque_cursor(api, five_invoices):
    assert five_invoices == sorted(five_invoices, reverse=True)
    seen, cursor, pages = [], None, 0
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = invoices(api, query=query)
        pages += 1
        seen += [item["invoice_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == five_invoices and pages == 3
    assert len(invoices(api)["items"]) == 5  # default limit 50


@pytest.mark.parametrize("query, path", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"),
    ("cursor=not-a-cursor!", "cursor"),
    ("cursor=" + base64.urlsafe_b64encode(b'{"PK":"TEAM#team-b#INVOICE","SK":"in_20260214_x"}').decode(), "cursor"),
    ("cursor=" + base64.urlsafe_b64encode(b'{"PK":"TEAM#team-a","SK":"META"}').decode(), "cursor"),
])
def test_bad_limits_and_cursors_are_422_naming_the_parameter(api, five_invoices, query, path):
    reply = api.get("/v1/teams/team-a/invoices", as_=ALICE, query=query)
    assert reply.status == 422 and reply.content_type == "application/problem+json", reply.text
    assert [error["path"] for error in reply.json["errors"]] == [path]


def test_unknown_and_other_teams_invoices_are_404(api, world, five_invoices):
    world.team("team-b", admins=("bob",))
    for unknown in ("in_20990101_nope", "x" * 2000):
        reply = api.get(f"/v1/teams/team-a/invoices/{unknown}", as_=ALICE)
        assert reply.status == 404 and reply.content_type == "application/problem+json"
    reply = api.get(f"/v1/teams/team-b/invoices/{five_invoices[0]}", as_=Identity.user("bob"))
    assert reply.status == 404
    assert invoices(api, "team-b", as_=Identity.user("bob")) == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("roles, status", [(["hub_admin"], 403), ([], 403), (["sso_admin"], 200),
                                           (["secondary_admin"], 200)])
def test_only_admins_read_invoices(api, world, five_invoices, roles, status):
    world.member("team-a", "carol", roles)
    carol = Identity.user("carol")
    assert api.get("/v1/teams/team-a/invoices", as_=carol).status == status
    assert api.get(f"/v1/teams/team-a/invoices/{five_invoices[0]}", as_=carol).status == status


def test_non_members_get_404(api, world, five_invoices):
    world.team("team-b", admins=("bob",))
    bob = Identity.user("bob")
    assert api.get("/v1/teams/team-a/invoices", as_=bob).status == 404
    assert api.get(f"/v1/teams/team-a/invoices/{five_invoices[0]}", as_=bob).status == 404


# ------------------------------------------------------------------ cost


def test_requests_per_closed_cycle(api, world, team, clock):
    """DynamoDB requests one run spends per invoiced and charged cycle (two GSI1 queries for the whole
    run: due cycles, due payments)."""
    from usage_ledger.adapters import aws

    payg(world)
    for month in range(1, 6):  # each month's usage arrives while its cycle is open
        ingest(api, clock, utc(2026, month, 20, 1), [usage(team, 20, utc(2026, month, 20))])
    calls = []
    aws.client("dynamodb").meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    assert close_billing(api.stack, utc(2026, 7, 1))["invoiced"] == 5
    assert calls.count("Query") == 2
    per_cycle = (len(calls) - 2) / 5
    print(f"DynamoDB requests per invoiced cycle: {per_cycle}: {sorted(set(calls))}")
    assert per_cycle <= 13
    assert json.dumps(calls)  # keep the list printable on failure


def test_a_run_that_dies_holding_the_lease_is_taken_over_once_the_lease_runs_out(api, world, team, clock,
                                                                                compose):
    from usage_ledger.adapters.dynamodb.billing import BillingStore

    class DiesBeforeReleasing(BillingStore):
        def issue(self, invoice):
            raise ConnectionError("the container dies while issuing")

        def release_cycle(self, ref, token):  # as if the container died holding the lease
            pass

    class DiesHoldingTheEmail(BillingStore):
        def release_email(self, invoice, token):  # as if the container died while sending
            pass

    payg(world)
    ingest(api, clock, utc(2026, 2, 1), [usage(team, 20, utc(2026, 2, 1))])
    compose(billing_store=DiesBeforeReleasing())
    assert close_billing(api.stack, utc(2026, 2, 15, 1))["failed"] == 1
    compose()
    assert close_billing(api.stack, utc(2026, 2, 15, 1, 5))["skipped"] == 1  # the lease still holds
    assert invoices(api)["items"] == [] and emails() == []
    assert close_billing(api.stack, utc(2026, 2, 15, 2))["closed"] == 1
    assert len(invoices(api)["items"]) == 1 and len(payments(api.stack)) == 1 and len(emails()) == 1

    # the same for the email claim: a run that dies holding it is taken over once its lease runs out
    close_billing(api.stack, utc(2026, 3, 15, 1))
    assert len(invoices(api)["items"]) == 1  # no units, no invoice
    ingest(api, clock, utc(2026, 3, 20), [usage(team, 20, utc(2026, 3, 20))])
    compose(mailer=FailingMailer("ServiceUnavailable"), billing_store=DiesHoldingTheEmail())
    assert close_billing(api.stack, utc(2026, 4, 15, 1))["failed"] == 1
    compose()
    close_billing(api.stack, utc(2026, 4, 15, 1, 5))  # the email claim still holds
    assert len(emails()) == 1
    close_billing(api.stack, utc(2026, 4, 15, 2))
    assert len(invoices(api)["items"]) == 2 and len(payments(api.stack)) == 2 and len(emails()) == 2


def test_a_late_unit_for_a_past_cycle_that_never_had_units_goes_to_the_open_cycle(api, world, clock):
    """A past-due cycle with nothing stored closed without an invoice; no late invoice is opened for it."""
    from conftest import cloud_event, drain_events, send_events, utc

    world.resource("minutes", size=1)
    world.team("team-late")
    world.subscription("team-late", "minutes", "payg", purchased_at="2026-09-10T00:00:00Z",
                       starts_at="2026-09-10T00:00:00Z")
    clock.set(utc(2026, 11, 25, 12))
    send_events(api, [cloud_event("team-late", "minutes", 4, utc(2026, 9, 20))])  # in Sep 10 - Oct 9
    drain_events(api.stack)
    card = api.get("/v1/teams/team-late/balances/minutes", as_=Identity.user("alice")).json
    assert card["payg"]["cycle_start"] == "2026-11-10" and card["payg"]["charged_units"] == 4


def test_the_same_late_unit_lands_in_the_same_cycle_whatever_the_old_cycle_holds(api, world, clock):
    """Contract section 1: a cycle takes units applied up to its end plus the grace period, never
    later. Two teams get the same late unit at the same moment; one's old cycle already holds
    units, the other's is empty: both bill it in the cycle open when it is applied."""
    world.resource("minutes", size=1)
    for team_id in ("team-busy", "team-idle"):
        world.team(team_id)
        world.subscription(team_id, "minutes", "payg", purchased_at="2026-09-10T00:00:00Z",
                           starts_at="2026-09-10T00:00:00Z", subscription_id=f"payg-{team_id}")
    ingest(api, clock, utc(2026, 9, 15), [cloud_event("team-busy", "minutes", 3, utc(2026, 9, 15))])

    late = utc(2026, 10, 9, 23, 30)  # inside Sep 10 - Oct 9 (UTC), applied 2 days after its grace ran out
    ingest(api, clock, utc(2026, 10, 12), [cloud_event(team_id, "minutes", 5, late, id=f"late-{team_id}")
                                         for team_id in ("team-busy", "team-idle")])

    for team_id in ("team-busy", "team-idle"):
        card = api.get(f"/v1/teams/{team_id}/balances/minutes", as_=ALICE).json
        assert card["payg"]["cycle_start"] == "2026-10-10" and card["payg"]["charged_units"] == 5, team_id
    close_billing(api.stack, utc(2026, 11, 10, 1))
    for team_id, old_cycle_units in (("team-busy", 3), ("team-idle", 0)):
        lines = {item["period_start"]: item["lines"][0]["charged_units"]
                 for item in invoices(api, team_id=team_id)["items"]}
        expected = {"2026-10-10": 5} | ({"2026-09-10": old_cycle_units} if old_cycle_units else {})
        assert lines == expected, team_id
