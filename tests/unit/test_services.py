"""The use cases on in-memory fakes, composed as a deployment composes them (usage_ledger.bootstrap)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fakes import (
    FakeAlertStore,
    FakeBillingStore,
    FakeGateway,
    FakeIngestStore,
    FakeLedgerStore,
    FakeMailer,
    FakeQueue,
    FakeRenderer,
)
from usage_ledger.bootstrap import Container
from usage_ledger.config import Settings
from usage_ledger.domain.alert import WindowNotice
from usage_ledger.domain.billing import PAID, PaygCycle
from usage_ledger.domain.commands import CreateAlert, RecordUsage
from usage_ledger.domain.errors import Contended, NotFound, ValidationFailed
from usage_ledger.domain.model import App, Member, PaymentMethod, Resource, Subscription, Team, UsageEvent

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
SETTINGS = Settings(ledger_table="-", usage_table="-", dedupe_table="-", events_queue_url="-",
                    sender_email="billing@example.com", billing_grace_minutes=60, entitlement_max_age_seconds=5,
                    portal_base_url="http://portal")
MINUTES = Resource("minutes", "api", "Minutes", "processing minute", Decimal(20))
ALICE = Member("team-a", "alice", "alice@example.com", frozenset({"primary_admin"}), True)


@pytest.fixture
def ledger() -> FakeLedgerStore:
    store = FakeLedgerStore()
    store.put_resource(MINUTES)
    store.put_team(Team("team-a", "Team A"))
    store.put_member(ALICE)
    store.create_subscription(Subscription("team-a", "flex-1", "minutes", "flex", NOW - timedelta(days=30),
                                           quantity=10), listed_for_alerts=True)
    return store


@pytest.fixture
def services(ledger):
    ingest_store = FakeIngestStore(ledger)
    return Container(settings=SETTINGS, ledger_store=ledger, ingest_store=ingest_store, event_queue=FakeQueue(),
                     billing_store=FakeBillingStore(), alert_store=FakeAlertStore(), mailer=FakeMailer(),
                     renderer=FakeRenderer(), payments=FakeGateway())


def usage(quantity: int, *, event_id: str, at: datetime = NOW - timedelta(days=1)) -> UsageEvent:
    return UsageEvent("test", event_id, "team-a", "minutes", Decimal(quantity), at)


# ------------------------------------------------------------------ ingest


def test_a_request_naming_an_unknown_resource_and_team_is_refused_whole(services):
    good, bad = usage(20, event_id="1"), UsageEvent("test", "2", "team-x", "nope", Decimal(1), NOW)
    with pytest.raises(ValidationFailed) as refused:
        services.ingest.accept(RecordUsage(events=(("[0].", good), ("[1].", bad))))
    assert [error.path for error in refused.value.errors] == ["[1].data.resource_id"]
    assert services.event_queue.messages == []


def test_each_event_counts_once_however_often_its_batch_is_applied(services, ledger):
    events = [usage(30, event_id="1"), usage(30, event_id="2"), usage(30, event_id="1")]
    assert services.ingest.apply_message("batch-1", events, NOW).counted == 2
    assert services.ingest.apply_message("batch-1", events, NOW).counted == 2  # a redelivery: already applied
    assert services.ingest.apply_message("batch-2", events, NOW).counted == 0  # a copy in another batch
    state = ledger.ledger("team-a", "minutes").state
    assert (state.charged_units, state.pending_usage) == (3, Decimal(0))


def test_a_commit_that_loses_races_redecides_and_gives_up_after_twelve(services, ledger):
    services.ingest_store.races_to_lose = 3
    services.ingest.apply_message("batch-1", [usage(20, event_id="1")], NOW)
    assert ledger.ledger("team-a", "minutes").state.charged_units == 1
    services.ingest_store.races_to_lose = 12
    with pytest.raises(Contended):
        services.ingest.apply_message("batch-2", [usage(20, event_id="2")], NOW)
    assert ledger.ledger("team-a", "minutes").state.charged_units == 1


def two_teams(ledger):
    ledger.put_team(Team("team-b", "Team B"))
    ledger.create_subscription(Subscription("team-b", "flex-b", "minutes", "flex", NOW - timedelta(days=30),
                                            quantity=10), listed_for_alerts=True)
    return [usage(20, event_id="a1"),
            UsageEvent("test", "b1", "team-b", "minutes", Decimal(40), NOW - timedelta(days=1))]


def test_a_group_that_fails_for_its_data_is_set_aside_and_the_other_groups_are_counted(services, ledger):
    events = two_teams(ledger)
    services.ingest_store.fail_commits_for["team-b"] = ValueError("an item DynamoDB will never take")
    applied = services.ingest.apply_message("batch-1", events, NOW)
    assert (applied.counted, applied.set_aside) == (1, 1)
    assert ledger.ledger("team-a", "minutes").state.charged_units == 1
    assert ledger.ledger("team-b", "minutes").state.charged_units == 0
    [(key, (kept, reason))] = services.ingest_store.set_aside_items.items()
    assert key == ("batch-1", "team-b", "minutes") and [e.id for e in kept] == ["b1"]
    assert "ValueError" in reason


def test_events_whose_strings_are_not_unicode_are_set_aside_unclaimed_and_their_group_is_counted(services, ledger):
    good = usage(20, event_id="ok")
    bad = UsageEvent("test", "x\ud800", "team-a", "minutes", Decimal(20), NOW - timedelta(days=1), user_id="u\udfff")
    applied = services.ingest.apply_message("batch-1", [bad, good], NOW)
    assert (applied.counted, applied.duplicates, applied.set_aside) == (1, 0, 1)
    assert ledger.ledger("team-a", "minutes").state.charged_units == 1
    assert ("test", "x\ud800") not in services.ingest_store.claims  # it could not have been keyed
    [(key, (kept, reason))] = services.ingest_store.set_aside_items.items()
    assert key == ("batch-1", None, None) and kept == [bad] and reason == "not valid Unicode: id, user_id"


def test_a_passing_failure_fails_the_message_after_the_other_groups_are_applied_and_a_redelivery_counts_once(
        services, ledger):
    from usage_ledger.service.ingest import RetryLater

    events = two_teams(ledger)
    services.ingest_store.fail_commits_for["team-a"] = ConnectionError("the network")
    with pytest.raises(RetryLater) as retry:
        services.ingest.apply_message("batch-1", events, NOW)
    assert (retry.value.applied.counted, retry.value.applied.set_aside) == (1, 0)
    assert services.ingest_store.set_aside_items == {}
    del services.ingest_store.fail_commits_for["team-a"]
    assert services.ingest.apply_message("batch-1", events, NOW).counted == 2  # the redelivery
    assert ledger.ledger("team-a", "minutes").state.charged_units == 1
    assert ledger.ledger("team-b", "minutes").state.charged_units == 2


def test_on_its_last_receive_a_message_that_still_fails_is_set_aside_per_group_not_failed(services, ledger,
                                                                                           monkeypatch):
    from usage_ledger.retry import EVENTS_MAX_RECEIVES
    from usage_ledger.service.ingest import Message

    events = two_teams(ledger)
    services.ingest_store.fail_commits_for["team-a"] = ConnectionError("the network")
    last = Message("m-1", "batch-1", events, receive_count=EVENTS_MAX_RECEIVES)
    outcome = services.ingest.apply_batch([last], NOW)
    assert outcome.failed == [] and (outcome.counted, outcome.set_aside) == (1, 1)
    [(key, (_, reason))] = services.ingest_store.set_aside_items.items()
    assert key == ("batch-1", "team-a", "minutes") and "ConnectionError: the network" in reason

    # a claim that still fails: its events, unclaimed, are set aside per (team, resource)
    def no_claims(*_args):
        raise ConnectionError("the network")

    monkeypatch.setattr(services.ingest_store, "claim", no_claims)
    outcome = services.ingest.apply_batch([Message("m-2", "batch-2", events, receive_count=EVENTS_MAX_RECEIVES)], NOW)
    assert outcome.failed == [] and outcome.set_aside == len(events)
    assert {key for key in services.ingest_store.set_aside_items if key[0] == "batch-2"} == {
        ("batch-2", "team-a", "minutes"), ("batch-2", "team-b", "minutes")}
    earlier = services.ingest.apply_batch([Message("m-3", "batch-3", events, receive_count=EVENTS_MAX_RECEIVES - 1)],
                                          NOW)
    assert earlier.failed == ["m-3"] and earlier.set_aside == 0  # before the last receive: retried


# ------------------------------------------------------------------ billing


@pytest.fixture
def due_cycle(services, ledger):
    card = PaymentMethod("pm_1", "visa", "4242", 12, 2030)
    ledger.put_member(Member("team-a", "bob", "bob@example.com", frozenset(), False))
    ledger.create_subscription(Subscription("team-a", "payg-1", "minutes", "payg", NOW - timedelta(days=60),
                                            purchased_at=NOW - timedelta(days=60), timezone="UTC", unit_amount=250,
                                            currency="usd", purchaser_user_id="bob", payment_method=card,
                                            customer_id="cus_1"),
                               listed_for_alerts=True)
    return services.billing_store.add_cycle(PaygCycle("team-a", "minutes", "payg-1", 1, "2026-10-27", "2026-11-26",
                                                      NOW - timedelta(days=2), charged_units=4))


def test_a_due_cycle_closes_into_one_invoice_one_charge_one_email(services, due_cycle):
    assert services.billing.close_due_cycles(NOW)["invoiced"] == 1
    assert services.billing.close_due_cycles(NOW)["closed"] == 0  # nothing left to do
    (invoice,) = services.billing_store.invoices.values()
    assert (invoice.status, invoice.total, invoice.purchaser_email) == (PAID, 1000, "bob@example.com")
    assert len(services.payments.charges) == 1 and len(services.mailer.sent) == 1


def test_a_processor_outage_leaves_the_attempt_due_and_the_next_run_charges_once(services, due_cycle):
    services.payments.outages_left = 1
    summary = services.billing.close_due_cycles(NOW)
    assert (summary["closed"], summary["invoiced"], summary["failed"], summary["attempts"]) == (1, 1, 1, 0)
    assert services.payments.charges == {} and services.mailer.sent == []
    assert services.billing.close_due_cycles(NOW)["paid"] == 1  # the claim was released: at once
    (invoice,) = services.billing_store.invoices.values()
    assert (invoice.status, invoice.attempt_count, invoice.number) == (PAID, 1, 1)
    assert len(services.payments.charges) == 1 and len(services.mailer.sent) == 1


def test_a_failed_email_is_sent_by_the_next_run_without_a_second_charge(services, due_cycle):
    services.mailer.failures_left = 1
    assert services.billing.close_due_cycles(NOW)["failed"] == 1
    assert services.billing.close_due_cycles(NOW) == {"closed": 0, "invoiced": 0, "payments_failed": 0,
                                                      "failed": 0, "skipped": 0, "attempts": 0, "paid": 0}
    assert len(services.payments.charges) == 1 and len(services.mailer.sent) == 1
    assert services.billing.close_due_cycles(NOW)["failed"] == 0 and len(services.mailer.sent) == 1


# ------------------------------------------------------------------ alerts


def test_a_window_notifies_once_and_rearms_when_the_projection_leaves_it(services, ledger):
    alert = services.alerting.create_alert(CreateAlert("team-a", ALICE, "Low", (10,), ("minutes",), ("alice",)), NOW)
    services.ingest.apply_message("b1", [usage(160, event_id="1")], NOW)  # 8 of 10 used in a day: 1 left
    assert services.alerting.evaluate(NOW).emails_sent == 1
    assert services.alerting.evaluate(NOW).emails_sent == 0  # disarmed
    notice = WindowNotice(alert["alert_id"], "minutes", 10)
    assert not services.alert_store.states[("team-a", notice)].armed
    ledger.ledger("team-a", "minutes").subscriptions[0] = Subscription(
        "team-a", "flex-1", "minutes", "flex", NOW - timedelta(days=30), quantity=10_000)
    assert services.alerting.evaluate(NOW).emails_sent == 0
    assert ("team-a", notice) not in services.alert_store.states  # re-armed


def test_a_failed_send_rearms_the_notice_for_the_next_run(services):
    services.alerting.create_alert(CreateAlert("team-a", ALICE, "Low", (10, 5), ("minutes",), ("alice",)), NOW)
    services.ingest.apply_message("b1", [usage(180, event_id="1")], NOW)
    services.mailer.failures_left = 2
    outcome = services.alerting.evaluate(NOW)
    assert (outcome.emails_sent, outcome.send_failures) == (0, 2)
    assert services.alerting.evaluate(NOW).emails_sent == 2
    assert services.alerting.evaluate(NOW).emails_sent == 0


# ------------------------------------------------------------------ members and their removal


def admin(user_id: str, *roles: str) -> Member:
    return Member("team-a", user_id, f"{user_id}@example.com", frozenset(roles or ("secondary_admin",)), True)


def test_the_member_list_pages_by_user_id(services, ledger):
    for user_id in ("dora", "bob", "carl"):
        ledger.put_member(admin(user_id))
    ledger.put_member(Member("team-b", "zed", "zed@example.com", frozenset({"primary_admin"}), True))
    first = services.membership.list_members("team-a", 3, None)
    assert [item["user_id"] for item in first["items"]] == ["alice", "bob", "carl"]
    assert first["items"][0] == {"user_id": "alice", "email": "alice@example.com", "roles": ["primary_admin"]}
    second = services.membership.list_members("team-a", 3, first["next_cursor"])
    assert second == {"items": [{"user_id": "dora", "email": "dora@example.com", "roles": ["secondary_admin"]}],
                      "next_cursor": None}


def test_a_removed_member_is_not_found_and_a_second_removal_is_404(services, ledger):
    ledger.put_member(admin("bob"))
    services.operator.remove_member("team-a", "bob")
    with pytest.raises(NotFound):
        services.membership.member("team-a", "bob")
    for team_id, user_id in (("team-a", "bob"), ("team-a", "nobody"), ("team-x", "alice")):
        with pytest.raises(NotFound):
            services.operator.remove_member(team_id, user_id)
    with pytest.raises(NotFound):
        services.operator.remove_app("team-a", "app-1")


def run_out(services, event_id: str = "1") -> None:
    services.ingest.apply_message(f"b{event_id}", [usage(160, event_id=event_id)], NOW)  # 8 of 10 used: 1 day left


def emailed(services) -> list[list[str]]:
    return [sorted(to) for to, _ in services.mailer.sent]


def test_removed_and_demoted_recipients_are_not_emailed(services, ledger):
    ledger.put_member(admin("bob"))
    ledger.put_member(admin("carl", "sso_admin"))
    ledger.put_member(admin("dora"))
    services.alerting.create_alert(CreateAlert("team-a", ALICE, "Low", (10,), ("minutes",), ("bob", "carl", "dora")),
                                   NOW)
    services.operator.remove_member("team-a", "bob")
    ledger.put_member(admin("carl", "hub_admin"))  # demoted: no admin role left
    run_out(services)
    assert services.alerting.evaluate(NOW).emails_sent == 1
    assert emailed(services) == [["dora@example.com"]]


def test_an_alert_without_an_eligible_recipient_emails_the_primary_admins(services, ledger):
    ledger.put_member(admin("bob"))
    ledger.put_member(admin("pam", "primary_admin"))
    ledger.put_member(admin("sam", "sso_admin"))  # an admin, not a primary one: not a stand-in
    created = services.alerting.create_alert(CreateAlert("team-a", ALICE, "Low", (10,), ("minutes",), ("bob",)), NOW)
    services.operator.remove_member("team-a", "bob")
    assert services.alerting.get_alert("team-a", created["alert_id"])["ineligible_recipient_user_ids"] == ["bob"]
    run_out(services)
    assert services.alerting.evaluate(NOW).emails_sent == 1
    assert emailed(services) == [["alice@example.com", "pam@example.com"]]


def test_with_nobody_to_email_the_notice_stays_armed_until_someone_can_hear_it(services, ledger):
    ledger.put_member(admin("bob"))
    services.alerting.create_alert(CreateAlert("team-a", ALICE, "Low", (10,), ("minutes",), ("bob",)), NOW)
    services.operator.remove_member("team-a", "bob")
    services.operator.remove_member("team-a", "alice")  # the only primary admin
    run_out(services)
    assert services.alerting.evaluate(NOW).emails_sent == 0
    ledger.put_member(admin("pam", "primary_admin"))
    assert services.alerting.evaluate(NOW).emails_sent == 1
    assert emailed(services) == [["pam@example.com"]]


def test_app_owners_api_emails_stop_with_the_app_or_the_membership(services, ledger):
    ledger.put_member(Member("team-a", "olga", "olga@example.com", frozenset(), False))  # owner, no role
    ledger.put_member(Member("team-a", "otto", "otto@example.com", frozenset(), False))
    ledger.put_app(App("team-a", "app-1", "App 1", "olga"))
    ledger.put_app(App("team-a", "app-2", "App 2", "otto"))
    services.operator.remove_app("team-a", "app-1")
    services.operator.remove_member("team-a", "otto")  # app-2 stays, its owner is gone
    services.ingest.apply_message("b1", [usage(200, event_id="1")], NOW)  # 10 of 10: exhausted
    assert services.alerting.evaluate(NOW, ["team-a"]).emails_sent == 0  # nobody left to tell
    ledger.put_member(Member("team-a", "hank", "hank@example.com", frozenset({"hub_admin"}), False))
    assert services.alerting.evaluate(NOW, ["team-a"]).emails_sent == 1
    assert emailed(services) == [["hank@example.com"]]


def test_alert_views_read_only_the_page_recipients(services, ledger):
    ledger.put_member(admin("bob"))
    for recipients in (("alice",), ("alice", "bob")):
        services.alerting.create_alert(CreateAlert("team-a", ALICE, "Low", (10,), ("minutes",), recipients), NOW)
    ledger.member_reads.clear()
    page = services.alerting.list_alerts("team-a", 50, None)
    assert ledger.member_reads == [["alice", "bob"]]  # one read, of the recipients only
    assert [item["ineligible_recipient_user_ids"] for item in page["items"]] == [[], []]
    services.operator.remove_member("team-a", "bob")
    page = services.alerting.list_alerts("team-a", 50, None)
    assert sorted(item["ineligible_recipient_user_ids"] for item in page["items"]) == [[], ["bob"]]
