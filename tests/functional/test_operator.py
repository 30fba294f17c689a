"""Operator routes: catalogue, teams, members, apps, subscriptions - validation and idempotency."""


def test_put_resource_creates_then_replaces(api):
    body = {"kind": "api", "display_name": "Minutes", "unit": "processing minute", "charge_unit_size": 20}
    first = api.put("/v1/admin/resources/minutes", body)
    assert first.status == 201, first.text
    assert first.json["charge_unit_size"] == 20 and first.json["low_balance_percent"] == 10
    again = api.put("/v1/admin/resources/minutes", {**body, "display_name": "Processing minutes"})
    assert again.status == 200
    assert again.json["display_name"] == "Processing minutes"


def test_resource_unit_size_cannot_change_once_set(api):
    body = {"kind": "api", "display_name": "Minutes", "unit": "minute", "charge_unit_size": 20}
    api.put("/v1/admin/resources/minutes", body)
    reply = api.put("/v1/admin/resources/minutes", {**body, "charge_unit_size": 10})
    assert reply.status == 409
    assert reply.content_type == "application/problem+json"




import pytest  # noqa: E402
from conftest import ANONYMOUS, OPERATOR, Identity  # noqa: E402

PAYG = {
    "subscription_id": "payg-1", "resource_id": "minutes", "type": "payg", "starts_at": "2026-07-15T00:00:00Z",
    "purchased_at": "2026-07-15T09:00:00-07:00", "timezone": "America/Los_Angeles", "unit_amount": 250,
    "currency": "usd", "purchaser_user_id": "alice",
}  # plus a card made at localstripe: payg_body()
FLEX = {"subscription_id": "flex-1", "resource_id": "minutes", "type": "flex", "quantity": 100,
        "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z", "refresh_period": "month"}


@pytest.fixture
def team(world):
    world.resource("minutes")
    return world.team("team-a")


def post_subscription(api, body, team_id="team-a"):
    return api.post(f"/v1/admin/teams/{team_id}/subscriptions", body, as_=OPERATOR)


def payg_body(world, **card):
    return {**PAYG, "payment_method": {"id": world.card(**card)}}


@pytest.mark.parametrize("type_", ["flex", "payg"])
def test_subscription_is_created_then_repeated_idempotently(api, world, team, type_):
    body = FLEX if type_ == "flex" else payg_body(world)
    first = post_subscription(api, body)
    assert first.status == 201, first.text
    assert first.json["subscription_id"] == body["subscription_id"]
    again = post_subscription(api, body)
    assert again.status == 200 and again.json == first.json


def test_payg_shows_the_card_as_the_processor_describes_it(api, world, team):
    body = payg_body(world, exp_month=3, exp_year=2031)
    reply = post_subscription(api, body)
    assert reply.status == 201, reply.text
    assert reply.json["payment_method"] == {"id": body["payment_method"]["id"], "brand": "visa",
                                            "last4": "4242", "exp_month": 3, "exp_year": 2031}
    other_card = post_subscription(api, {**body, "payment_method": {"id": world.card()}})
    assert other_card.status == 409  # the same id with another card is another grant


@pytest.mark.parametrize("card_id", ["pm_unknown", "not-an-id!"])
def test_a_payment_method_the_processor_does_not_know_is_422_on_its_id(api, world, team, card_id):
    reply = post_subscription(api, {**PAYG, "payment_method": {"id": card_id}})
    assert reply.status == 422, reply.text
    assert [error["path"] for error in reply.json["errors"]] == ["payment_method.id"]
    assert post_subscription(api, payg_body(world)).status == 201  # nothing was taken by the refusal


def test_a_conflicting_repeat_is_409(api, team):
    post_subscription(api, FLEX)
    reply = post_subscription(api, {**FLEX, "quantity": 101})
    assert reply.status == 409 and reply.content_type == "application/problem+json"
    world_resource = api.put("/v1/admin/resources/other", {"kind": "resource", "display_name": "O", "unit": "asset"})
    assert world_resource.status == 201
    assert post_subscription(api, {**FLEX, "resource_id": "other"}).status == 409


def test_subscription_id_is_generated_when_absent(api, team):
    body = {key: value for key, value in FLEX.items() if key != "subscription_id"}
    reply = post_subscription(api, body)
    assert reply.status == 201 and reply.json["subscription_id"].startswith("sub_")


@pytest.mark.parametrize("change, path", [
    ({"type": "gold"}, "type"),
    ({"quantity": 0}, "quantity"),
    ({"quantity": -5}, "quantity"),
    ({"quantity": 1.5}, "quantity"),
    ({"quantity": "10"}, "quantity"),
    ({"quantity": None}, "quantity"),
    ({"starts_at": "2026-01-01T00:00:00"}, "starts_at"),
    ({"starts_at": "not a date"}, "starts_at"),
    ({"ends_at": "2025-12-31T00:00:00Z"}, "ends_at"),
    ({"refresh_period": "week"}, "refresh_period"),
    ({"resource_id": "unknown"}, "resource_id"),
    ({"timezone": "Europe/Paris"}, "timezone"),
    ({"currency": "usd"}, "currency"),
    ({"unexpected": 1}, "unexpected"),
])
def test_prepaid_subscription_validation_names_the_field(api, team, change, path):
    reply = post_subscription(api, {**FLEX, **change})
    assert reply.status == 422, reply.text
    assert reply.content_type == "application/problem+json"
    assert path in [error["path"] for error in reply.json["errors"]]


@pytest.mark.parametrize("change, path", [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": None}, "timezone"),
    ({"currency": "USD"}, "currency"),
    ({"currency": "xyz"}, "currency"),
    ({"unit_amount": -1}, "unit_amount"),
    ({"unit_amount": 2.5}, "unit_amount"),
    ({"quantity": 10}, "quantity"),
    ({"refresh_period": "month"}, "refresh_period"),
    ({"purchaser_user_id": "stranger"}, "purchaser_user_id"),
    ({"payment_method": {"id": 42}}, "payment_method.id"),
    ({"payment_method": {"id": "pm_1", "brand": "visa"}}, "payment_method.brand"),
    ({"payment_method": None}, "payment_method"),
    ({"purchased_at": None}, "purchased_at"),
])
def test_payg_subscription_validation_names_the_field(api, world, team, change, path):
    reply = post_subscription(api, {**payg_body(world), **change})
    assert reply.status == 422, reply.text
    assert path in [error["path"] for error in reply.json["errors"]]


def test_a_refused_subscription_writes_nothing(api, team):
    assert post_subscription(api, {**FLEX, "quantity": 0}).status == 422
    assert post_subscription(api, FLEX).status == 201  # the id was not taken by the refused call


@pytest.mark.parametrize("path, body, field", [
    ("/v1/admin/resources/r1", {"kind": "thing", "display_name": "R", "unit": "u"}, "kind"),
    ("/v1/admin/resources/r1", {"kind": "api", "display_name": "", "unit": "u"}, "display_name"),
    ("/v1/admin/resources/r1", {"kind": "api", "display_name": "R", "unit": "u", "charge_unit_size": 0},
     "charge_unit_size"),
    ("/v1/admin/resources/r1", {"kind": "api", "display_name": "R", "unit": "u", "charge_unit_size": "20"},
     "charge_unit_size"),
    ("/v1/admin/resources/r1", {"kind": "api", "display_name": "R", "unit": "u", "low_balance_percent": 101},
     "low_balance_percent"),
    ("/v1/admin/resources/r1", {"kind": "api", "display_name": "R", "unit": "u", "resource_id": "r2"}, "resource_id"),
    ("/v1/admin/teams/t1", {"name": 5}, "name"),
    ("/v1/admin/teams/team-a/members/u1", {"email": "nope", "roles": []}, "email"),
    ("/v1/admin/teams/team-a/members/u1", {"email": "u@x.io", "roles": ["owner"]}, "roles[0]"),
    ("/v1/admin/teams/team-a/members/u1", {"email": "u@x.io", "roles": [], "full_access": "yes"}, "full_access"),
    ("/v1/admin/teams/team-a/apps/a1", {"name": "A", "owner_user_id": "stranger"}, "owner_user_id"),
])
def test_operator_validation_names_the_field(api, team, path, body, field):
    reply = api.put(path, body)
    assert reply.status == 422, reply.text
    assert field in [error["path"] for error in reply.json["errors"]]


def test_members_and_apps_need_an_existing_team(api, team):
    assert api.put("/v1/admin/teams/nope/members/u1", {"email": "u@x.io", "roles": []}).status == 404
    assert api.put("/v1/admin/teams/nope/apps/a1", {"name": "A", "owner_user_id": "alice"}).status == 404
    assert post_subscription(api, FLEX, team_id="nope").status == 404
    created = api.put("/v1/admin/teams/team-a/apps/a1", {"name": "A", "owner_user_id": "alice"})
    assert created.status == 201 and created.json["owner_user_id"] == "alice"


def test_operator_routes_take_iam_only(api, team):
    body = {"name": "X"}
    assert api.put("/v1/admin/teams/t9", body, as_=ANONYMOUS).status == 401
    refused = api.put("/v1/admin/teams/t9", body, as_=Identity.user("alice"))
    assert refused.status == 403 and refused.content_type == "application/problem+json"
    # refused before validation: a stranger learns nothing from a bad body either
    assert api.put("/v1/admin/teams/t9", {"bad": 1}, as_=ANONYMOUS).status == 401


def test_malformed_json_body_is_a_problem(api, team):
    reply = api.call("PUT", "/v1/admin/teams/t9", as_=OPERATOR, raw_body="{",
                     headers={"content-type": "application/json"})
    assert 400 <= reply.status < 500 and reply.content_type == "application/problem+json"


def test_a_body_that_is_not_json_is_a_415_problem(api, team):
    reply = api.call("PUT", "/v1/admin/teams/t9", as_=OPERATOR, raw_body='{"name":"X"}',
                     headers={"content-type": "application/x-www-form-urlencoded"})
    assert reply.status == 415 and reply.content_type == "application/problem+json"
    assert api.put("/v1/admin/teams/t9", {"name": "X"}).status == 201  # the refused call wrote nothing
