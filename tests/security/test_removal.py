"""Member and app removal, attacked (issue 17, "members and apps cannot be removed"): each case is
the reproduction that found the gap, then the path tricks an operator caller could try to remove
another team's member or app. A removed admin against every team route is in the isolation matrix
(test_isolation.py, principal "removed-primary-admin")."""
import json

import pytest
from conftest import (
    ALERT_METRICS,
    FROZEN_AT,
    OPERATOR,
    Identity,
    Reply,
    cloud_event,
    drain_events,
    rfc3339,
    run_job,
    send_events,
    summary,
    utc,
)
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from sent_mail import sent_emails

from infra.apigw import http_event
from infra.lambdas import FakeLambdaContext, load_handler

ALICE, BOB = Identity.user("alice"), Identity.user("bob")
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def teams(world):
    world.resource("minutes", kind="resource", size=1)
    world.resource("calls", kind="api", size=1)
    world.team("team-a")  # alice: primary_admin
    world.member("team-a", "bob", ["secondary_admin"])
    world.member("team-a", "olga", [])
    world.subscription("team-a", "minutes", "flex", quantity=100)
    world.subscription("team-a", "calls", "flex", quantity=100)
    world.team("team-b", admins=("bea",))
    world.member("team-b", "bob", ["primary_admin"])  # bob is in both teams
    assert world.api.put("/v1/admin/teams/team-b/apps/app-b", {"name": "B", "owner_user_id": "bea"}).status == 201
    return world


def ledger_items(stack) -> list[str]:
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(stack.physical["LedgerTable"])
    return sorted(json.dumps(item.to_json(), sort_keys=True) for item in table.all_items())


def sent():
    return sent_emails()


def evaluate(stack):
    event = {"version": "0", "id": "removal", "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "time": rfc3339(FROZEN_AT), "region": "us-east-1", "resources": [],
             "detail": {}}
    return summary(run_job(stack, "EvaluateAlertsFunction", event), ALERT_METRICS)  # the hourly run and its workers


def use(api, resource_id, units):
    assert send_events(api, [cloud_event("team-a", resource_id, units, utc(2026, 11, 24, 10))]).status == 202
    drain_events(api.stack)


def remove(api, kind, team_id, some_id):
    return api.call("DELETE", f"/v1/admin/teams/{team_id}/{kind}/{some_id}", as_=OPERATOR)


def run_out_alert(api, recipients):
    reply = api.post("/v1/teams/team-a/alerts", {"name": "run-out", "windows_days": [10], "resource_ids": ["minutes"],
                                                 "recipient_user_ids": recipients}, as_=ALICE)
    assert reply.status == 201, reply.text
    return reply.json["alert_id"]


# ------------------------------------------------------------------ the reproductions


def test_roles_emptied_kept_a_member_403_removal_makes_them_a_stranger_404(api, teams):
    teams.member("team-a", "bob", [])  # all the operator could do before
    assert api.get("/v1/teams/team-a/balances", as_=BOB).status == 403  # still a member: the team is revealed
    assert remove(api, "members", "team-a", "bob").status == 204
    reply = api.get("/v1/teams/team-a/balances", as_=BOB)
    stranger = api.get("/v1/teams/team-nowhere/balances", as_=BOB)
    assert (reply.status, reply.text.replace("team-a", "X")) == (404, stranger.text.replace("team-nowhere", "X"))
    assert api.get("/v1/teams/team-b/members", as_=BOB).status == 200  # their other team is untouched


def test_a_demoted_recipient_is_not_emailed_and_is_shown_ineligible(api, teams):
    alert_id = run_out_alert(api, ["alice", "bob"])
    teams.member("team-a", "bob", ["hub_admin"])  # demoted: no admin role left
    use(api, "minutes", 95)
    assert evaluate(api.stack)["emails_sent"] == 1
    assert [message.destinations["ToAddresses"] for message in sent()] == [["alice@example.com"]]
    shown = api.get(f"/v1/teams/team-a/alerts/{alert_id}", as_=ALICE).json
    assert shown["ineligible_recipient_user_ids"] == ["bob"]


def test_an_alert_left_without_recipients_tells_the_primary_admins(api, teams):
    run_out_alert(api, ["bob"])
    assert remove(api, "members", "team-a", "bob").status == 204
    use(api, "minutes", 95)
    assert evaluate(api.stack)["emails_sent"] == 1  # before: nobody was told
    assert [message.destinations["ToAddresses"] for message in sent()] == [["alice@example.com"]]


def test_an_app_owner_without_a_role_stops_getting_api_emails_when_the_app_goes(api, teams):
    assert api.put("/v1/admin/teams/team-a/apps/app-1", {"name": "App", "owner_user_id": "olga"}).status == 201
    use(api, "calls", 92)  # low
    assert evaluate(api.stack)["emails_sent"] == 1
    assert sent()[-1].destinations["ToAddresses"] == ["olga@example.com"]
    assert remove(api, "apps", "team-a", "app-1").status == 204
    use(api, "calls", 8)  # exhausted: nobody left to tell (no hub admin, no app)
    assert evaluate(api.stack)["emails_sent"] == 0 and len(sent()) == 1


# ------------------------------------------------------------------ removing another team's member by path tricks


def delete_raw(api, kind, raw_path, decoded):
    """DELETE with a raw path of our choosing and the path parameters API Gateway would hand over
    decoded (`decoded`): the handler must go by its own match of the raw path, and refuse."""
    parameter = "user_id" if kind == "members" else "app_id"
    route = next(route for route in api.routes
                 if route.route_key == f"DELETE /v1/admin/teams/{{team_id}}/{kind}/{{{parameter}}}")
    event = http_event(route, raw_path, decoded, identity=OPERATOR)
    response = load_handler(api.stack, route.function)(event, FakeLambdaContext(route.function))
    return Reply(response["statusCode"], response.get("headers") or {}, response.get("body") or "")


TRICKS = [  # (raw path, what API Gateway would decode as path parameters)
    ("/v1/admin/teams/team-a/members/bea", {"team_id": "team-a", "user_id": "bea"}),  # team-b's member, team-a's path
    ("/v1/admin/teams/Team-B/members/bea", {"team_id": "Team-B", "user_id": "bea"}),
    ("/v1/admin/teams/team-a/members/..%2F..%2Fteam-b%2Fmembers%2Fbea",
     {"team_id": "team-a", "user_id": "../../team-b/members/bea"}),
    ("/v1/admin/teams/team-a%2F..%2Fteam-b/members/bea", {"team_id": "team-a/../team-b", "user_id": "bea"}),
    ("/v1/admin/teams/team-b%23x/members/bea", {"team_id": "team-b#x", "user_id": "bea"}),
    ("/v1/admin/teams/team-a/members/MEMBER%23bea", {"team_id": "team-a", "user_id": "MEMBER#bea"}),
    ("/v1/admin/teams/team-b/members/bea%00", {"team_id": "team-b", "user_id": "bea\x00"}),
    ("/v1/admin/teams/team-b/members/bea\n", {"team_id": "team-b", "user_id": "bea\n"}),
    ("/v1/admin/teams/team-b/members/bea%20", {"team_id": "team-b", "user_id": "bea "}),
    ("/v1/admin/teams/team-b/members/ｂea", {"team_id": "team-b", "user_id": "ｂea"}),  # full-width b
    ("/v1/admin/teams/team-b/members/*", {"team_id": "team-b", "user_id": "*"}),
    ("/v1/admin/teams/team-b//members/bea", {"team_id": "team-b", "user_id": "bea"}),
    ("/v1/admin/teams/team-b/members/bea/../bob", {"team_id": "team-b", "user_id": "bob"}),
    ("/v1/admin/teams/team-b/apps/bea", {"team_id": "team-b", "app_id": "bea"}),  # a member id where an app goes
]


@pytest.mark.parametrize("raw_path, decoded", TRICKS, ids=[raw for raw, _ in TRICKS])
def test_a_path_trick_removes_nothing(api, teams, raw_path, decoded):
    before = ledger_items(api.stack)
    reply = delete_raw(api, "apps" if "app_id" in decoded else "members", raw_path, decoded)
    assert reply.status in (404, 422), reply.text
    assert reply.content_type == PROBLEM_JSON
    assert ledger_items(api.stack) == before
    assert api.get("/v1/teams/team-b/members", as_=Identity.user("bea")).status == 200


def test_another_teams_app_is_not_removed_by_this_teams_path(api, teams):
    before = ledger_items(api.stack)
    assert remove(api, "apps", "team-a", "app-b").status == 404
    assert ledger_items(api.stack) == before
    assert remove(api, "apps", "team-b", "app-b").status == 204
