"""Ending a subscription through the handlers (contract section 7): the team's cancel of a payg and
the operator's of any grant, idempotent; a payg's last cycle ends at ends_at in its zone and closes
into a final invoice; usage past the end is covered by what is left or recorded as shortfall."""
from datetime import timedelta

import pytest
from conftest import OPERATOR, Identity, close_billing, cloud_event, drain_events, problem, rfc3339, send_events, utc

ALICE = Identity.user("alice")  # primary_admin
BOB = Identity.user("bob")  # the purchaser, a secondary_admin
CAROL = Identity.user("carol")  # a secondary_admin who did not buy it
# Los Angeles, bought Feb 28 local: cycle 0 is Feb 28 - Mar 27 (local dates)
PURCHASED = "2026-03-01T05:00:00Z"
CANCELLED_AT = utc(2026, 3, 12, 3)  # Mar 11, 20:00 PDT: the last cycle ends on Mar 11 local


@pytest.fixture
def team(world):
    world.resource("minutes", kind="api", size=20)
    world.team("team-a")
    world.member("team-a", "bob", ["secondary_admin"])
    world.member("team-a", "carol", ["secondary_admin"])
    return "team-a"


def ingest(api, clock, at, minutes, event_time=None):
    clock.set(at)
    assert send_events(api, [cloud_event("team-a", "minutes", minutes, event_time or at)]).status == 202
    drain_events(api.stack)


def payg(world, purchaser="bob"):
    return world.subscription("team-a", "minutes", "payg", purchased_at=PURCHASED, starts_at=PURCHASED,
                              timezone="America/Los_Angeles", subscription_id="payg-1", purchaser_user_id=purchaser)


def cancel(api, as_, subscription_id="payg-1", team_id="team-a"):
    return api.post(f"/v1/teams/{team_id}/subscriptions/{subscription_id}/cancel", None, as_=as_)


def card(api):
    reply = api.get("/v1/teams/team-a/balances/minutes", as_=ALICE)
    assert reply.status == 200, reply.text
    return reply.json


def invoices(api):
    return api.get("/v1/teams/team-a/invoices", as_=ALICE).json["items"]


def test_cancelling_payg_mid_cycle_bills_the_units_before_ends_at_in_a_final_invoice(api, world, team, clock):
    payg(world)
    ingest(api, clock, utc(2026, 3, 10), 60)  # 3 units
    ingest(api, clock, utc(2026, 3, 12, 2), 30)  # 1 unit, 10 minutes pending

    clock.set(CANCELLED_AT)
    reply = cancel(api, BOB)
    assert reply.status == 200, reply.text
    assert reply.json["ends_at"] == rfc3339(CANCELLED_AT) and reply.json["subscription_id"] == "payg-1"
    again = cancel(api, ALICE)  # cancelling again changes nothing
    clock.set(CANCELLED_AT + timedelta(minutes=5))
    assert again.status == 200 and again.json == reply.json
    assert cancel(api, BOB).json["ends_at"] == rfc3339(CANCELLED_AT)

    shown = card(api)  # ended, but its last cycle is still to be invoiced
    assert shown["payg"]["ends_at"] == rfc3339(CANCELLED_AT)
    assert (shown["payg"]["cycle_start"], shown["payg"]["cycle_end"]) == ("2026-02-28", "2026-03-11")
    assert (shown["payg"]["charged_units"], shown["payg"]["amount"]) == (4, 1000)

    # after the end: nothing covers the usage (no other subscription), so it is shortfall
    ingest(api, clock, CANCELLED_AT + timedelta(minutes=30), 50)  # 10 pending + 50: 3 units
    assert card(api)["shortfall_units"] == 3 and card(api)["payg"]["charged_units"] == 4

    assert close_billing(api.stack, CANCELLED_AT + timedelta(minutes=59))["closed"] == 0  # grace not passed
    summary = close_billing(api.stack, CANCELLED_AT + timedelta(hours=1, minutes=1))
    assert (summary["closed"], summary["invoiced"], summary["paid"]) == (1, 1, 1)
    (final,) = invoices(api)
    assert (final["period_start"], final["period_end"]) == ("2026-02-28", "2026-03-11")
    assert (final["lines"][0]["charged_units"], final["total"], final["status"]) == (4, 1000, "paid")

    # closed: the ended payg is gone from the card (nothing else covers the resource)
    assert api.get("/v1/teams/team-a/balances", as_=ALICE).json["balances"] == []
    ingest(api, clock, CANCELLED_AT + timedelta(days=2), 40)
    assert close_billing(api.stack, utc(2026, 3, 29, 9))["invoiced"] == 0  # never billed past its end
    assert len(invoices(api)) == 1


def test_a_late_event_from_before_ends_at_lands_in_the_final_cycle_while_it_is_open(api, world, team, clock):
    payg(world)
    ingest(api, clock, utc(2026, 3, 10), 20)
    clock.set(CANCELLED_AT)
    assert cancel(api, ALICE).status == 200
    # an event from before the end, applied after it but within the grace period
    ingest(api, clock, CANCELLED_AT + timedelta(minutes=20), 40, event_time=CANCELLED_AT - timedelta(minutes=1))
    close_billing(api.stack, CANCELLED_AT + timedelta(hours=2))
    (final,) = invoices(api)
    assert (final["period_end"], final["lines"][0]["charged_units"]) == ("2026-03-11", 3)


def test_only_the_purchaser_or_a_primary_admin_may_cancel_payg_and_only_payg(api, world, team, clock):
    payg(world)
    world.subscription("team-a", "minutes", "flex", subscription_id="flex-1", quantity=100)
    clock.set(CANCELLED_AT)
    problem(cancel(api, CAROL), 403)  # an admin who did not buy it
    problem(cancel(api, Identity.user("mallory")), 404)  # not a member
    problem(cancel(api, ALICE, subscription_id="flex-1"), 404)  # not payg: the operator's to end
    problem(cancel(api, ALICE, subscription_id="nope"), 404)
    problem(cancel(api, CAROL, subscription_id="flex-1"), 403)  # no purchaser: only a primary_admin goes on
    problem(cancel(api, ALICE, team_id="team-b"), 404)
    assert card(api)["payg"]["ends_at"] is None  # nothing ended
    assert cancel(api, BOB).status == 200


def test_an_operator_ends_a_prepaid_grant_and_usage_moves_to_what_is_left(api, world, team, clock):
    world.subscription("team-a", "minutes", "flex", subscription_id="flex-1", quantity=100,
                       starts_at="2026-01-01T00:00:00Z")
    world.subscription("team-a", "minutes", "flex", subscription_id="flex-2", quantity=40,
                       starts_at="2026-01-02T00:00:00Z")
    ingest(api, clock, utc(2026, 3, 1), 40)  # 2 units from flex-1 (it started first)
    assert (card(api)["available"], card(api)["total"]) == (138, 140)

    clock.set(utc(2026, 3, 2))
    path = "/v1/admin/teams/team-a/subscriptions/flex-1/cancel"
    ended = api.post(path, None, as_=OPERATOR)
    assert ended.status == 200 and ended.json["ends_at"] == "2026-03-02T00:00:00Z", ended.text
    clock.set(utc(2026, 3, 3))
    assert api.post(path, None, as_=OPERATOR).json["ends_at"] == "2026-03-02T00:00:00Z"  # idempotent
    problem(api.post("/v1/admin/teams/team-a/subscriptions/nope/cancel", None, as_=OPERATOR), 404)
    problem(api.post(path, None, as_=ALICE), 403)  # team users never reach the operator route

    shown = card(api)
    assert (shown["available"], shown["total"]) == (40, 40)  # its units are gone from the card
    assert [row["subscription_id"] for row in shown["subscriptions"]] == ["flex-2"]
    ingest(api, clock, utc(2026, 3, 3), 60)  # 3 units: flex-2
    ingest(api, clock, utc(2026, 3, 4), 1000)  # 50 units: 37 from flex-2, 13 short
    shown = card(api)
    assert (shown["available"], shown["shortfall_units"], shown["status"]) == (0, 13, "exhausted")


def test_an_earlier_end_stays(api, world, team, clock):
    world.subscription("team-a", "minutes", "flex", subscription_id="flex-1", quantity=100,
                       ends_at="2026-04-01T00:00:00Z")
    clock.set(utc(2026, 5, 1))  # already ended
    reply = api.post("/v1/admin/teams/team-a/subscriptions/flex-1/cancel", None, as_=OPERATOR)
    assert reply.status == 200 and reply.json["ends_at"] == "2026-04-01T00:00:00Z"



def test_cancels_racing_each_other_and_ingest_end_it_once(api, world, team, clock):
    import threading

    payg(world)
    ingest(api, clock, utc(2026, 3, 10), 20)
    clock.set(CANCELLED_AT)
    barrier, replies = threading.Barrier(4), []

    def run(index):
        barrier.wait()
        if index == 3:  # an event from before the end, applied while the cancels race
            replies.append(send_events(api, [cloud_event("team-a", "minutes", 20, CANCELLED_AT - timedelta(hours=1))]))
            drain_events(api.stack)
        else:
            replies.append(cancel(api, (ALICE, BOB, ALICE)[index]))

    threads = [threading.Thread(target=run, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(reply.status for reply in replies) == [200, 200, 200, 202]
    assert {reply.json["ends_at"] for reply in replies if reply.status == 200} == {rfc3339(CANCELLED_AT)}
    close_billing(api.stack, CANCELLED_AT + timedelta(hours=2))
    (final,) = invoices(api)
    assert (final["period_end"], final["lines"][0]["charged_units"]) == ("2026-03-11", 2)
