"""Tenant isolation: every template route, asked by everyone the contract refuses, refuses them alike.

One world is built per module (two teams with api and plain resources, flex and payg
subscriptions, ingested usage, closed invoices and alerts); each case asks one route as one
principal and checks the status the contract gives (section 2: 401 without identity, 404 for
anyone outside the team, a removed member included, 403 for a member without the role), a
problem+json body that shows nothing of the other team, and that nothing was written.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from conftest import (
    CLOSE_METRICS,
    FROZEN_AT,
    OPERATOR,
    Api,
    Clock,
    Identity,
    World,
    apply_environment,
    cloud_event,
    drain_events,
    reset_domain_caches,
    rfc3339,
    run_job,
    send_events,
    stripe_parameters,
    summary,
    utc,
)
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.ses.models import ses_backends
from moto.sqs.models import sqs_backends

from infra.apigw import ANONYMOUS, Route, routes_of
from infra.stack import Stack, deploy
from infra.template import load_template

ALPHA, BRAVO, NOWHERE = "team-alpha", "team-bravo", "team-nowhere"
ALPHA_ADMIN = Identity.user("alpha-ann")
STRANGER = Identity.user("mallory-nobody")
BRAVO_ROLES = {  # one member per role, and one with none
    "bravo-bea": ("primary_admin",),
    "bravo-ben": ("secondary_admin",),
    "bravo-bess": ("sso_admin",),
    "bravo-bart": ("hub_admin",),
    "bravo-bo": (),
}
BRAVO_ADMIN = Identity.user("bravo-bea")
REMOVED_ADMIN = Identity.user("bravo-rita")  # a primary_admin of bravo, removed by the operator
HUB_ADMIN = Identity.user("bravo-bart")
PROBLEM_JSON = "application/problem+json"

# who may do what (contract section 2)
ADMINS = frozenset({"primary_admin", "secondary_admin", "sso_admin"})
READERS = ADMINS | {"hub_admin"}
MANAGERS = frozenset({"primary_admin", "secondary_admin"})
PAYERS = frozenset({"primary_admin"})  # and the subscription's purchaser (bravo's is bravo-bea, a primary_admin)
NEW_CARD = "<a card made at localstripe when asked>"  # ask() swaps in a real PaymentMethod id

TEMPLATE_ROUTES = routes_of(Stack(template=load_template(), parameters={}))
# GET /v1/me names no team (it answers the caller's own teams: tests/functional/test_members.py)
SELF_ROUTES = [route for route in TEMPLATE_ROUTES if route.authorizer == "JWT" and "{team_id}" not in route.path]
TEAM_ROUTES = [route for route in TEMPLATE_ROUTES if route.authorizer == "JWT" and route not in SELF_ROUTES]
IAM_ROUTES = [route for route in TEMPLATE_ROUTES if route.authorizer == "AWS_IAM"]


# ------------------------------------------------------------------ the matrix


def new_alert_body() -> dict[str, Any]:
    """A configuration no bravo alert has: an allowed caller would get 201."""
    return {"name": "bravo-new-alert", "windows_days": [10], "resource_ids": ["assets"],
            "recipient_user_ids": ["bravo-ben"]}


@dataclass(frozen=True)
class Variant:
    """One way to ask a route: the valid request, or one Powertools would refuse with 422."""

    label: str
    path: dict[str, str] = field(default_factory=dict)  # path parameters overriding the sample ones
    query: str = ""
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    allowed: frozenset[str]  # roles the contract lets through
    ok: int  # what an allowed caller gets for the first (valid) variant
    variants: tuple[Variant, ...]
    writes: bool | None = None  # whether that answer writes; None: every method but GET does


VALID = Variant("valid")
ENTRIES: dict[str, Entry] = {
    "GET /v1/teams/{team_id}/balances": Entry(READERS, 200, (VALID, Variant("junk-query", query="limit=zero"))),
    "GET /v1/teams/{team_id}/balances/{resource_id}": Entry(READERS, 200, (
        VALID, Variant("malformed-id", path={"resource_id": "-bad id"}))),
    "GET /v1/teams/{team_id}/notices": Entry(READERS, 200, (VALID,)),
    "GET /v1/teams/{team_id}/usage": Entry(READERS, 200, (
        Variant("valid", query="from=2026-09-01&to=2026-11-25&group_by=user"),
        Variant("bad-query", query="from=nope&granularity=week&group_by=planet"))),
    "POST /v1/teams/{team_id}/alerts": Entry(MANAGERS, 201, (
        Variant("valid", body=new_alert_body()),
        Variant("bad-body", body={"name": "", "windows_days": [7], "resource_ids": [], "recipient_user_ids": 3}),
        Variant("empty-body", body={}))),
    "GET /v1/teams/{team_id}/alerts": Entry(ADMINS, 200, (VALID, Variant("bad-limit", query="limit=0"))),
    "GET /v1/teams/{team_id}/alerts/{alert_id}": Entry(ADMINS, 200, (
        VALID, Variant("malformed-id", path={"alert_id": "-bad id"}))),
    "DELETE /v1/teams/{team_id}/alerts/{alert_id}": Entry(MANAGERS, 204, (
        VALID, Variant("malformed-id", path={"alert_id": "-bad id"}))),
    "GET /v1/teams/{team_id}/invoices": Entry(ADMINS, 200, (VALID, Variant("bad-limit", query="limit=1000"))),
    "GET /v1/teams/{team_id}/invoices/{invoice_id}": Entry(ADMINS, 200, (
        VALID, Variant("html", headers={"accept": "text/html"}))),
    "GET /v1/teams/{team_id}/members": Entry(ADMINS, 200, (
        VALID, Variant("bad-limit", query="limit=101"), Variant("bad-cursor", query="cursor=garbage"))),
    "GET /v1/teams/{team_id}/subscriptions/{subscription_id}": Entry(PAYERS, 200, (
        VALID, Variant("malformed-id", path={"subscription_id": "-bad id"}))),
    "POST /v1/teams/{team_id}/subscriptions/{subscription_id}/payment-method/setup": Entry(
        PAYERS, 200, (VALID, Variant("malformed-id", path={"subscription_id": "-bad id"})), writes=False),
    "PUT /v1/teams/{team_id}/subscriptions/{subscription_id}/payment-method": Entry(PAYERS, 200, (
        Variant("valid", body={"payment_method": NEW_CARD}),
        Variant("unknown-card", body={"payment_method": "pm_unknown"}),
        Variant("bad-body", body={"payment_method": {"id": 7}}))),
    "POST /v1/teams/{team_id}/invoices/{invoice_id}/pay": Entry(PAYERS, 409, (VALID,), writes=False),  # all paid
    "GET /v1/teams/{team_id}/invoices/{invoice_id}/credit-notes/{credit_note_id}": Entry(ADMINS, 200, (
        VALID, Variant("pdf", headers={"accept": "application/pdf"}))),
    # the allowed caller's call ends bravo-payg (the last route of the template: the reads after it still answer)
    "POST /v1/teams/{team_id}/subscriptions/{subscription_id}/cancel": Entry(PAYERS, 200, (
        VALID, Variant("malformed-id", path={"subscription_id": "-bad id"}))),
}

# sample requests for the IAM routes: a body the operator could send (the refusal comes first)
IAM_BODIES: dict[str, Any] = {
    "PUT /v1/admin/resources/{resource_id}": {"kind": "api", "display_name": "Minutes", "unit": "minute",
                                               "charge_unit_size": 1, "low_balance_percent": 10},
    "PUT /v1/admin/teams/{team_id}": {"name": "Taken Over"},
    "PUT /v1/admin/teams/{team_id}/members/{user_id}": {"email": "mallory@evil.example",
                                                        "roles": ["primary_admin"], "full_access": True},
    "PUT /v1/admin/teams/{team_id}/apps/{app_id}": {"name": "Evil", "owner_user_id": "mallory-nobody"},
    "POST /v1/admin/teams/{team_id}/subscriptions": {"resource_id": "minutes", "type": "flex", "quantity": 1000000,
                                                      "starts_at": "2026-01-01T00:00:00Z"},
    "DELETE /v1/admin/teams/{team_id}/members/{user_id}": None,  # bravo's primary admin (see iam_request)
    "DELETE /v1/admin/teams/{team_id}/apps/{app_id}": None,
    "POST /v1/events": None,  # built per case: a batch for team bravo
    "GET /v1/teams/{team_id}/entitlements/{resource_id}": None,
    "POST /v1/admin/teams/{team_id}/subscriptions/{subscription_id}/cancel": None,
    "POST /v1/admin/teams/{team_id}/invoices/{invoice_id}/credit-notes": {"amount": 1, "reason": "other"},
}


@dataclass(frozen=True)
class Case:
    route: Route
    variant: Variant
    principal: str
    identity: Identity
    status: int

    @property
    def id(self) -> str:
        return f"{self.route.route_key} [{self.variant.label}] as {self.principal} -> {self.status}"


def refusal_cases() -> list[Case]:
    cases = []
    for route in TEAM_ROUTES:
        entry = ENTRIES.get(route.route_key)
        variants = entry.variants if entry else (VALID,)  # no entry: test_every_team_route_has_an_entry fails
        outsiders = [("anonymous", ANONYMOUS, 401), ("jwt-without-sub", Identity(sub=""), 401),
                     ("iam-caller", OPERATOR, 401),
                     ("other-team-primary-admin", ALPHA_ADMIN, 404), ("stranger", STRANGER, 404),
                     ("removed-primary-admin", REMOVED_ADMIN, 404)]
        lacking = [(f"{user}{list(roles)}", Identity.user(user), 403) for user, roles in BRAVO_ROLES.items()
                   if entry and not set(roles) & entry.allowed]
        for variant in variants:
            for principal, identity, status in outsiders + lacking:
                cases.append(Case(route, variant, principal, identity, status))
    return cases


CASES = refusal_cases()


# ------------------------------------------------------------------ the world, built once


def scheduled_event(at):
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": rfc3339(at), "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/hourly"], "detail": {}}


def close_cycles(stack, at):
    return summary(run_job(stack, "CloseBillingCyclesFunction", scheduled_event(at)), CLOSE_METRICS)


def ingest(api: Api, moment: Clock, at, events) -> None:
    moment.set(at)
    reply = send_events(api, events)
    assert reply.status == 202, reply.text
    drain_events(api.stack)


def build_world(api: Api, moment: Clock) -> SimpleNamespace:
    world = World(api)
    world.resource("minutes", kind="api", size=20)
    world.resource("calls", kind="api", size=1)
    world.resource("assets", kind="resource", size=1)
    world.resource("renders", kind="resource", size=1)  # only bravo subscribes to it

    world.team(ALPHA, admins=("alpha-ann",))
    assert api.put(f"/v1/admin/teams/{ALPHA}", {"name": "Alpha Anvils Inc"}).status in (200, 201)
    world.member(ALPHA, "alpha-sam", ["sso_admin"])
    assert api.put(f"/v1/admin/teams/{ALPHA}/apps/alpha-app",
                   {"name": "Alpha App", "owner_user_id": "alpha-ann"}).status in (200, 201)
    world.subscription(ALPHA, "minutes", "payg", subscription_id="alpha-payg", purchased_at="2026-09-15T00:00:00Z",
                       starts_at="2026-09-15T00:00:00Z", purchaser_user_id="alpha-ann")
    world.subscription(ALPHA, "assets", "flex", subscription_id="alpha-flex-assets", quantity=40)
    world.subscription(ALPHA, "calls", "flex", subscription_id="alpha-flex-calls", quantity=40)

    assert api.put(f"/v1/admin/teams/{BRAVO}", {"name": "Bravo Widgets Ltd"}).status in (200, 201)
    for user, roles in BRAVO_ROLES.items():
        world.member(BRAVO, user, list(roles))
    world.member(BRAVO, "bravo-rita", ["primary_admin"])  # removed below, once she has left her mark
    assert api.put(f"/v1/admin/teams/{BRAVO}/apps/bravo-app",
                   {"name": "Bravo Secret App", "owner_user_id": "bravo-bea"}).status in (200, 201)
    world.subscription(BRAVO, "minutes", "flex", subscription_id="bravo-flex-minutes", quantity=2)
    world.subscription(BRAVO, "minutes", "payg", subscription_id="bravo-payg", purchased_at="2026-09-01T00:00:00Z",
                       starts_at="2026-09-01T00:00:00Z", purchaser_user_id="bravo-bea",
                       payment_method={"id": world.card(exp_month=12, exp_year=2031)})
    world.subscription(BRAVO, "assets", "flex", subscription_id="bravo-flex-assets", quantity=50)
    world.subscription(BRAVO, "renders", "flex", subscription_id="bravo-flex-renders", quantity=10)
    world.subscription(BRAVO, "calls", "token_flex", subscription_id="bravo-token-calls", quantity=30)

    def bravo(resource, quantity, at):
        return cloud_event(BRAVO, resource, quantity, at, user_id="bravo-ben", app_id="bravo-app")

    def alpha(resource, quantity, at):
        return cloud_event(ALPHA, resource, quantity, at, user_id="alpha-ann", app_id="alpha-app")

    ingest(api, moment, utc(2026, 9, 10), [bravo("minutes", 200, utc(2026, 9, 10))])  # 2 flex + 8 payg units
    ingest(api, moment, utc(2026, 10, 5), [bravo("minutes", 100, utc(2026, 10, 5)),
                                           alpha("minutes", 60, utc(2026, 10, 5))])
    ingest(api, moment, utc(2026, 11, 24), [bravo("assets", 7, utc(2026, 11, 24)),
                                            bravo("renders", 9, utc(2026, 11, 24)),
                                            bravo("calls", 4, utc(2026, 11, 24)),
                                            alpha("assets", 2, utc(2026, 11, 24)),
                                            alpha("calls", 1, utc(2026, 11, 24))])
    for at in (utc(2026, 10, 1, 2), utc(2026, 10, 15, 2), utc(2026, 11, 1, 2)):
        assert close_cycles(api.stack, at)["failed"] == 0

    moment.set(FROZEN_AT)
    bravo_alerts = []
    for body in ({"name": "bravo-runout-one", "windows_days": [10, 5], "resource_ids": ["minutes"],
                  "recipient_user_ids": ["bravo-bea", "bravo-rita"]},
                 {"name": "bravo-runout-two", "windows_days": [5], "resource_ids": ["assets", "renders"],
                  "recipient_user_ids": ["bravo-ben", "bravo-bess"]}):
        reply = api.post(f"/v1/teams/{BRAVO}/alerts", body, as_=BRAVO_ADMIN)
        assert reply.status == 201, reply.text
        bravo_alerts.append(reply.json["alert_id"])
    assert api.call("DELETE", f"/v1/admin/teams/{BRAVO}/members/bravo-rita", as_=OPERATOR).status == 204
    alpha_alert = api.post(f"/v1/teams/{ALPHA}/alerts", {
        "name": "alpha-runout", "windows_days": [10], "resource_ids": ["minutes"],
        "recipient_user_ids": ["alpha-ann"]}, as_=ALPHA_ADMIN)
    assert alpha_alert.status == 201, alpha_alert.text

    bravo_invoices = api.get(f"/v1/teams/{BRAVO}/invoices", as_=BRAVO_ADMIN).json["items"]
    alpha_invoices = api.get(f"/v1/teams/{ALPHA}/invoices", as_=ALPHA_ADMIN).json["items"]
    assert len(bravo_invoices) == 2 and len(alpha_invoices) == 1, (bravo_invoices, alpha_invoices)
    bravo_invoice_ids = [item["invoice_id"] for item in bravo_invoices]
    credited = api.post(f"/v1/admin/teams/{BRAVO}/invoices/{bravo_invoice_ids[0]}/credit-notes",
                        {"credit_note_id": "bravo-credit-1", "amount": 1, "reason": "other"}, as_=OPERATOR)
    assert credited.status == 201, credited.text

    secrets = {BRAVO, "Bravo Widgets Ltd", "Bravo Secret App", "bravo-app", "bravo-runout-one", "bravo-runout-two",
               "bravo-flex-minutes", "bravo-payg", "bravo-flex-assets", "bravo-flex-renders", "bravo-token-calls",
               "bravo-credit-1", *bravo_alerts, *bravo_invoice_ids}
    for user in (*BRAVO_ROLES, "bravo-rita"):
        secrets |= {user, f"{user}@example.com"}
    return SimpleNamespace(
        api=api, stack=api.stack, secrets=secrets,
        bravo_alerts=bravo_alerts, bravo_invoices=bravo_invoice_ids, alpha_alert=alpha_alert.json["alert_id"],
        alpha_invoices=[item["invoice_id"] for item in alpha_invoices],
        samples={  # path parameters naming real things of each team
            BRAVO: {"team_id": BRAVO, "resource_id": "minutes", "alert_id": bravo_alerts[0],
                    "invoice_id": bravo_invoice_ids[0], "user_id": "bravo-bea", "app_id": "bravo-app",
                    "subscription_id": "bravo-payg", "credit_note_id": "bravo-credit-1"},
        },
    )


@pytest.fixture(scope="module")
def bed():
    from usage_ledger import clock as domain_clock

    with mock_aws():
        stack = deploy(boto3.session.Session(region_name="us-east-1"), parameters=stripe_parameters())
        apply_environment(stack)
        moment = Clock(FROZEN_AT)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(domain_clock, "now", moment)
            built = build_world(Api(stack), moment)
        yield built
    reset_domain_caches()


# ------------------------------------------------------------------ helpers


def state(stack: Stack) -> dict[str, Any]:
    """Everything a request could write: every item of every table of the template, the events
    queue, the emails sent. Read from moto's store: a scan through the API costs ~1 ms an item."""
    tables = {}
    dynamodb = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    for logical, resource in stack.template["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            items = dynamodb.get_table(stack.physical[logical]).all_items()
            tables[logical] = sorted(json.dumps(item.to_json(), sort_keys=True) for item in items)
    queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_queue(stack.attributes[("EventsFifoQueue", "QueueName")])
    return {"tables": tables, "queued": queue.approximate_number_of_messages,
            "emails": len(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)}


def sample_path(route: Route, values: dict[str, str]) -> str:
    try:
        return route.path.format(**values)
    except KeyError as missing:
        pytest.fail(f"no sample value for path parameter {missing} of {route.route_key}")


def ask(bed, route: Route, variant: Variant, identity: Identity, team_id: str = BRAVO):
    values = {**bed.samples[BRAVO], "team_id": team_id, **variant.path}
    path = sample_path(route, values)
    body = variant.body
    if body == {"payment_method": NEW_CARD}:
        body = {"payment_method": World(bed.api).card(exp_month=12, exp_year=2031)}
    reply = bed.api.call(route.method, path, as_=identity, body=body, query=variant.query,
                         headers=dict(variant.headers))
    request_text = f"{path}?{variant.query} {json.dumps(variant.body)}"
    return reply, request_text


def assert_refused_without_leaking(bed, reply, request_text: str, status: int) -> None:
    assert reply.status == status, reply.text
    assert reply.content_type == PROBLEM_JSON, reply.headers
    problem = reply.json
    assert problem["status"] == status and problem["type"].startswith("https://") and problem["title"]
    # what the caller did not send, the caller must not be shown
    leaked = sorted(secret for secret in bed.secrets if secret in reply.text and secret not in request_text)
    assert not leaked, f"refusal shows {leaked}: {reply.text}"


# ------------------------------------------------------------------ coverage of the template


def test_every_team_route_of_the_template_has_a_matrix_entry():
    assert TEAM_ROUTES, "no JWT routes found in template.yaml"
    assert [route.route_key for route in SELF_ROUTES] == ["GET /v1/me"]
    assert {route.route_key for route in TEAM_ROUTES} == set(ENTRIES)
    assert IAM_ROUTES and {route.route_key for route in IAM_ROUTES} == set(IAM_BODIES)
    covered = {case.route.route_key for case in CASES}
    assert covered == set(ENTRIES)


def test_an_allowed_caller_gets_through_on_every_team_route(bed):
    """The samples name real things: a refusal below is the rule at work, not a bad path."""
    for route in TEAM_ROUTES:
        entry = ENTRIES[route.route_key]
        variant = entry.variants[0]
        if route.method == "DELETE":  # delete a throwaway alert, leave the world as it was
            made = bed.api.post(f"/v1/teams/{BRAVO}/alerts", new_alert_body(), as_=BRAVO_ADMIN)
            assert made.status == 201, made.text
            variant = Variant("valid", path={"alert_id": made.json["alert_id"]})
        before = state(bed.stack)
        reply, _ = ask(bed, route, variant, BRAVO_ADMIN)
        assert reply.status == entry.ok, (route.route_key, reply.text)
        writes = entry.writes if entry.writes is not None else route.method != "GET"
        assert (state(bed.stack) != before) == writes  # and `state` sees a write
        if route.route_key == "POST /v1/teams/{team_id}/alerts":
            assert bed.api.call("DELETE", f"/v1/teams/{BRAVO}/alerts/{reply.json['alert_id']}",
                                as_=BRAVO_ADMIN).status == 204


ALLOWED_READS = [(route, user) for route in TEAM_ROUTES if route.method == "GET" and route.route_key in ENTRIES
                 for user, roles in BRAVO_ROLES.items() if set(roles) & ENTRIES[route.route_key].allowed]


@pytest.mark.parametrize("route, user", ALLOWED_READS, ids=lambda value: getattr(value, "route_key", value))
def test_each_role_the_contract_allows_may_read(bed, route, user):
    entry = ENTRIES[route.route_key]
    reply, _ = ask(bed, route, entry.variants[0], Identity.user(user))
    assert reply.status == entry.ok, reply.text


# ------------------------------------------------------------------ the refusal matrix


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_refused_callers_get_the_contract_status_see_nothing_and_change_nothing(bed, case):
    assert case.route.route_key in ENTRIES, f"{case.route.route_key}: add it to ENTRIES"
    before = state(bed.stack)
    reply, request_text = ask(bed, case.route, case.variant, case.identity)
    assert_refused_without_leaking(bed, reply, request_text, case.status)
    assert state(bed.stack) == before
    if case.status == 404:  # existence is not leaked: a team that exists reads like one that does not
        elsewhere, _ = ask(bed, case.route, case.variant, case.identity, team_id=NOWHERE)
        assert (elsewhere.status, elsewhere.text.replace(NOWHERE, BRAVO)) == (reply.status, reply.text)


def test_a_member_without_the_role_gets_403_even_for_an_invalid_alert_body(bed):
    """The role decides before the body is validated: 403, never 422, for sso_admin and the others."""
    for user in ("bravo-bess", "bravo-bart", "bravo-bo"):
        for body in ({"name": ""}, {}, {"windows_days": [7]}):
            reply = bed.api.post(f"/v1/teams/{BRAVO}/alerts", body, as_=Identity.user(user))
            assert reply.status == 403, (user, body, reply.text)
            assert reply.content_type == PROBLEM_JSON


def test_a_member_without_the_role_gets_403_even_for_invalid_query_or_path(bed):
    for path, query in ((f"/v1/teams/{BRAVO}/invoices", "limit=0"), (f"/v1/teams/{BRAVO}/alerts", "cursor=%00"),
                        (f"/v1/teams/{BRAVO}/alerts/-bad", "")):
        reply = bed.api.get(path, as_=HUB_ADMIN, query=query)
        assert reply.status == 403, (path, reply.text)


# ------------------------------------------------------------------ team bravo's things under team alpha's path


def test_bravo_invoices_under_alpha_path_are_not_found(bed):
    for invoice_id in bed.bravo_invoices:
        for accept in ("application/json", "text/html"):
            reply = bed.api.get(f"/v1/teams/{ALPHA}/invoices/{invoice_id}", as_=ALPHA_ADMIN,
                                headers={"accept": accept})
            assert_refused_without_leaking(bed, reply, invoice_id, 404)
    listing = bed.api.get(f"/v1/teams/{ALPHA}/invoices", as_=ALPHA_ADMIN)
    assert listing.status == 200
    assert [item["invoice_id"] for item in listing.json["items"]] == bed.alpha_invoices
    assert not [secret for secret in bed.secrets if secret in listing.text]


def test_bravo_alerts_under_alpha_path_are_not_found_and_not_deleted(bed):
    before = state(bed.stack)
    for alert_id in bed.bravo_alerts:
        for method in ("GET", "DELETE"):
            reply = bed.api.call(method, f"/v1/teams/{ALPHA}/alerts/{alert_id}", as_=ALPHA_ADMIN)
            assert_refused_without_leaking(bed, reply, alert_id, 404)
    assert state(bed.stack) == before
    listing = bed.api.get(f"/v1/teams/{ALPHA}/alerts", as_=ALPHA_ADMIN)
    assert [item["alert_id"] for item in listing.json["items"]] == [bed.alpha_alert]
    assert not [secret for secret in bed.secrets if secret in listing.text]


def test_bravo_subscription_and_invoices_under_alpha_path_are_not_found_and_not_charged(bed):
    """Alpha's primary admin may pay alpha's invoices: bravo's ids under alpha's path are 404, never 403."""
    before = state(bed.stack)
    payment_method = bed.api.post(f"/v1/teams/{ALPHA}/subscriptions/bravo-payg/payment-method/setup", None,
                                  as_=ALPHA_ADMIN)
    assert_refused_without_leaking(bed, payment_method, "bravo-payg", 404)
    card = World(bed.api).card()
    reply = bed.api.call("PUT", f"/v1/teams/{ALPHA}/subscriptions/bravo-payg/payment-method", as_=ALPHA_ADMIN,
                         body={"payment_method": card})
    assert_refused_without_leaking(bed, reply, f"bravo-payg {card}", 404)
    for invoice_id in bed.bravo_invoices:
        reply = bed.api.post(f"/v1/teams/{ALPHA}/invoices/{invoice_id}/pay", None, as_=ALPHA_ADMIN)
        assert_refused_without_leaking(bed, reply, invoice_id, 404)
    assert state(bed.stack) == before


@pytest.mark.parametrize("kind", ["alerts", "invoices", "members"])
def test_a_bravo_cursor_does_not_page_through_alpha_path(bed, kind):
    page = bed.api.get(f"/v1/teams/{BRAVO}/{kind}", as_=BRAVO_ADMIN, query="limit=1").json
    assert page["next_cursor"], page
    reply = bed.api.get(f"/v1/teams/{ALPHA}/{kind}", as_=ALPHA_ADMIN, query=f"cursor={page['next_cursor']}")
    assert_refused_without_leaking(bed, reply, page["next_cursor"], 422)
    assert [error["path"] for error in reply.json["errors"]] == ["cursor"]


def test_bravo_only_resource_and_recipients_under_alpha_path(bed):
    reply = bed.api.get(f"/v1/teams/{ALPHA}/balances/renders", as_=ALPHA_ADMIN)
    assert_refused_without_leaking(bed, reply, "renders", 404)
    before = state(bed.stack)
    for body, path in (({"name": "x", "windows_days": [5], "resource_ids": ["minutes"],
                         "recipient_user_ids": ["bravo-bea"]}, "recipient_user_ids[0]"),
                       ({"name": "x", "windows_days": [5], "resource_ids": ["renders"],
                         "recipient_user_ids": ["alpha-ann"]}, "resource_ids[0]")):
        reply = bed.api.post(f"/v1/teams/{ALPHA}/alerts", body, as_=ALPHA_ADMIN)
        assert_refused_without_leaking(bed, reply, json.dumps(body), 422)
        assert [error["path"] for error in reply.json["errors"]] == [path]
    assert state(bed.stack) == before


ALPHA_QUANTITIES = {0, 60, 2, 1, 3}  # alpha's daily or monthly totals; bravo's (200, 100, 7, 9, 4, 20) differ


@pytest.mark.parametrize("query", ["group_by=user", "group_by=app", "group_by=resource", "resource_id=renders",
                                   "resource_id=minutes&granularity=month"])
def test_alpha_usage_reports_show_nothing_of_bravo(bed, query):
    reply = bed.api.get(f"/v1/teams/{ALPHA}/usage", as_=ALPHA_ADMIN, query=f"from=2026-09-01&{query}")
    assert reply.status == 200, reply.text
    assert not [secret for secret in bed.secrets if secret in reply.text], reply.text
    for series in reply.json["series"]:
        assert all(point["quantity"] in ALPHA_QUANTITIES for point in series["points"]), series


def test_alpha_balances_and_notices_show_nothing_of_bravo(bed):
    for path in ("balances", "notices", "balances/minutes", "balances/assets"):
        reply = bed.api.get(f"/v1/teams/{ALPHA}/{path}", as_=ALPHA_ADMIN)
        assert reply.status == 200, reply.text
        assert not [secret for secret in bed.secrets if secret in reply.text], reply.text


# ------------------------------------------------------------------ hub_admin and plain resources


@pytest.mark.parametrize("path, query", [
    ("balances/assets", ""), ("balances/renders", ""),
    ("usage", "resource_id=assets"), ("usage", "resource_id=renders&group_by=user"),
])
def test_hub_admin_is_refused_plain_resources(bed, path, query):
    before = state(bed.stack)
    reply = bed.api.get(f"/v1/teams/{BRAVO}/{path}", as_=HUB_ADMIN, query=query)
    assert reply.status == 403 and reply.content_type == PROBLEM_JSON, reply.text
    assert state(bed.stack) == before


def test_hub_admin_sees_only_api_resources(bed):
    cards = bed.api.get(f"/v1/teams/{BRAVO}/balances", as_=HUB_ADMIN).json["balances"]
    assert sorted(card["resource_id"] for card in cards) == ["calls", "minutes"]
    assert {card["kind"] for card in cards} == {"api"}
    series = bed.api.get(f"/v1/teams/{BRAVO}/usage", as_=HUB_ADMIN, query="from=2026-09-01").json["series"]
    assert sorted(item["key"]["resource_id"] for item in series) == ["calls", "minutes"]
    for path in ("balances/minutes", "balances/calls", "notices"):
        assert bed.api.get(f"/v1/teams/{BRAVO}/{path}", as_=HUB_ADMIN).status == 200


# ------------------------------------------------------------------ IAM routes (operator and producer)


def iam_request(route: Route) -> tuple[str, dict[str, str], str]:
    if route.route_key == "POST /v1/events":
        batch = [cloud_event(BRAVO, "minutes", 10_000, FROZEN_AT)]
        return "/v1/events", {"content-type": "application/cloudevents-batch+json"}, json.dumps(batch)
    body = IAM_BODIES.get(route.route_key)
    # a write names a stranger (made primary admin if the refusal failed); a removal names bravo's
    # primary admin and app, so a removal that got through would show in the state
    user_id = "bravo-bea" if route.method == "DELETE" else "mallory-nobody"
    values = {"team_id": BRAVO, "resource_id": "minutes", "user_id": user_id, "app_id": "bravo-app",
              "subscription_id": "bravo-flex-minutes", "invoice_id": "in_20261001_refused"}
    return sample_path(route, values), {"content-type": "application/json"}, (json.dumps(body) if body else None)


@pytest.mark.parametrize("route", IAM_ROUTES, ids=lambda route: route.route_key)
@pytest.mark.parametrize("principal, identity, status", [
    ("anonymous", ANONYMOUS, 401), ("team-user", BRAVO_ADMIN, 403), ("stranger", STRANGER, 403)])
def test_iam_routes_refuse_callers_without_iam_identity(bed, route, principal, identity, status):
    path, headers, raw = iam_request(route)
    before = state(bed.stack)
    reply = bed.api.call(route.method, path, as_=identity, headers=headers, raw_body=raw)
    assert_refused_without_leaking(bed, reply, f"{path} {raw}", status)
    assert state(bed.stack) == before


def test_the_entitlement_check_answers_an_iam_caller(bed):
    """The producer sample path is real: the refusals above are the IAM rule at work."""
    reply = bed.api.get(f"/v1/teams/{BRAVO}/entitlements/minutes", as_=OPERATOR)
    assert reply.status == 200 and reply.json["team_id"] == BRAVO


# ------------------------------------------------------------------ a removed admin


def test_a_removed_admin_is_gone_from_the_member_list_and_shown_ineligible_on_alerts(bed):
    members = bed.api.get(f"/v1/teams/{BRAVO}/members", as_=BRAVO_ADMIN).json["items"]
    assert "bravo-rita" not in [item["user_id"] for item in members]
    reply = bed.api.get(f"/v1/teams/{BRAVO}/alerts/{bed.bravo_alerts[0]}", as_=BRAVO_ADMIN).json
    assert reply["recipient_user_ids"] == ["bravo-bea", "bravo-rita"]
    assert reply["ineligible_recipient_user_ids"] == ["bravo-rita"]
