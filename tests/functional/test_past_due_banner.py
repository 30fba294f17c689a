"""The notices banner while a Pay as You Go subscription is past_due (contract section 3): an `error`
naming the resource and where to update the card, for every role that sees the resource, gone once
a new card pays the failed invoice."""
import pytest
from conftest import Identity, close_billing, cloud_event, drain_events, send_events, utc

from infra.localstripe import CARD_DECLINED_ON_CHARGE

TEAM = "team-a"
ALICE = Identity.user("alice")  # primary_admin and purchaser
HANA = Identity.user("hana")  # hub_admin: api resources only


def notices(api, as_):
    reply = api.get(f"/v1/teams/{TEAM}/notices", as_=as_)
    assert reply.status == 200, reply.text
    return reply.json["banner"]


def payg(world, resource_id, subscription_id):
    return world.subscription(TEAM, resource_id, "payg", subscription_id=subscription_id, purchaser_user_id="alice",
                              purchased_at="2026-01-15T10:00:00Z", starts_at="2026-01-15T10:00:00Z",
                              payment_method={"id": world.card(CARD_DECLINED_ON_CHARGE)})


@pytest.fixture
def declined(api, world, clock):
    """Two payg subscriptions whose first invoices were declined: an api (minutes) and a plain resource
    (seats), so the hub admin sees one past due and the primary admin both."""
    world.resource("minutes", kind="api", size=20)
    world.resource("seats", kind="resource", size=1)
    world.team(TEAM, admins=("alice",))
    world.member(TEAM, "hana", ["hub_admin"])
    payg(world, "minutes", "payg-minutes")
    payg(world, "seats", "payg-seats")
    assert notices(api, ALICE) is None
    clock.set(utc(2026, 2, 1))
    reply = send_events(api, [cloud_event(TEAM, "minutes", 40, utc(2026, 2, 1)),
                              cloud_event(TEAM, "seats", 3, utc(2026, 2, 1))])
    assert reply.status == 202, reply.text
    drain_events(api.stack)
    assert close_billing(api.stack, utc(2026, 2, 15, 1))["payments_failed"] == 2
    clock.set(utc(2026, 2, 15, 2))


def test_a_past_due_payg_raises_an_error_banner_for_each_role_that_sees_it(api, declined):
    banner = notices(api, ALICE)
    assert banner["level"] == "error" and banner["resource_ids"] == ["minutes", "seats"]
    assert "could not be charged" in banner["message"] and "Payment method" in banner["message"]
    hub = notices(api, HANA)  # seats is not an api resource: not hers to see
    assert hub["level"] == "error" and hub["resource_ids"] == ["minutes"]
    assert "seats" not in hub["message"].lower()


def test_the_banner_goes_once_a_new_card_pays(api, world, declined):
    for subscription_id in ("payg-minutes", "payg-seats"):
        reply = api.call("PUT", f"/v1/teams/{TEAM}/subscriptions/{subscription_id}/payment-method", as_=ALICE,
                         body={"payment_method": world.card()})
        assert reply.status == 200 and reply.json["retried_invoices"][0]["status"] == "paid", reply.text
    assert notices(api, ALICE) is None and notices(api, HANA) is None


def test_a_payg_row_of_the_card_names_its_purchaser_and_zone(api, declined):
    """The page asks for a subscription's card only where the caller may have it (the purchaser or a
    primary admin), and shows its invoices' times in the subscription's zone: both come on the card."""
    reply = api.get(f"/v1/teams/{TEAM}/balances/minutes", as_=ALICE)
    assert reply.status == 200, reply.text
    [row] = reply.json["subscriptions"]
    assert (row["type"], row["purchaser_user_id"], row["timezone"]) == ("payg", "alice", "UTC")
    assert reply.json["payg"]["status"] == "past_due"
