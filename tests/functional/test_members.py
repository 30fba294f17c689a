"""Members through the handlers: the team's member list, removing members and apps, and what follows
(404 for the removed, ineligible recipients on alerts, the primary-admin fallback, app owners' API
emails), with the DynamoDB requests each new route makes."""
import pytest
from conftest import (
    ALERT_METRICS,
    ANONYMOUS,
    FROZEN_AT,
    OPERATOR,
    Identity,
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

ALICE, BOB, CAROL, HANK, OLGA = (Identity.user(name) for name in ("alice", "bob", "carol", "hank", "olga"))
MEMBERS = "/v1/teams/team-a/members"
ALERTS = "/v1/teams/team-a/alerts"
YESTERDAY = utc(2026, 11, 24, 10)


@pytest.fixture
def team(world):
    world.resource("minutes", kind="resource", size=1)
    world.resource("calls", kind="api", size=1)
    world.team("team-a")  # alice: primary_admin
    world.member("team-a", "bob", ["secondary_admin"])
    world.member("team-a", "carol", ["sso_admin"])
    world.member("team-a", "hank", ["hub_admin"])
    world.member("team-a", "olga", [])
    world.subscription("team-a", "minutes", "flex", quantity=100)
    return "team-a"


def remove(api, kind, team_id, some_id):
    return api.call("DELETE", f"/v1/admin/teams/{team_id}/{kind}/{some_id}", as_=OPERATOR)


def use(api, resource_id, units, user_id=None, app_id=None):
    reply = send_events(api, [cloud_event("team-a", resource_id, units, YESTERDAY, user_id=user_id, app_id=app_id)])
    assert reply.status == 202, reply.text
    drain_events(api.stack)


def sent():
    return sent_emails()


def evaluate(stack):
    event = {"version": "0", "id": "members-test", "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "time": rfc3339(FROZEN_AT), "region": "us-east-1", "resources": [],
             "detail": {}}
    return summary(run_job(stack, "EvaluateAlertsFunction", event), ALERT_METRICS)  # the hourly run and its workers


def alert(recipients, name="run-out"):
    return {"name": name, "windows_days": [10], "resource_ids": ["minutes"], "recipient_user_ids": list(recipients)}


def write_members(stack, team_id, count):
    """`count` plain members straight into moto's table (a request per item would take a minute):
    a team far larger than a test could build through the operator route."""
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(stack.physical["LedgerTable"])
    for number in range(count):
        user_id = f"user-{number:05d}"
        table.put_item({"PK": {"S": f"TEAM#{team_id}"}, "SK": {"S": f"MEMBER#{user_id}"}, "entity": {"S": "member"},
                        "team_id": {"S": team_id}, "user_id": {"S": user_id},
                        "email": {"S": f"{user_id}@example.com"}, "roles": {"L": []}, "full_access": {"BOOL": False}})


# ------------------------------------------------------------------ GET /members


def test_admins_list_the_members_by_user_id(api, team):
    reply = api.get(MEMBERS, as_=CAROL)
    assert reply.status == 200, reply.text
    assert reply.json == {"items": [
        {"user_id": "alice", "email": "alice@example.com", "roles": ["primary_admin"]},
        {"user_id": "bob", "email": "bob@example.com", "roles": ["secondary_admin"]},
        {"user_id": "carol", "email": "carol@example.com", "roles": ["sso_admin"]},
        {"user_id": "hank", "email": "hank@example.com", "roles": ["hub_admin"]},
        {"user_id": "olga", "email": "olga@example.com", "roles": []},
    ], "next_cursor": None}


@pytest.mark.parametrize("caller, status", [(ALICE, 200), (BOB, 200), (CAROL, 200), (HANK, 403), (OLGA, 403),
                                            (Identity.user("mallory"), 404), (OPERATOR, 401)])
def test_who_may_list_members(api, team, caller, status):
    reply = api.get(MEMBERS, as_=caller)
    assert reply.status == status, reply.text
    if status != 200:
        assert reply.content_type == "application/problem+json" and "bob" not in reply.text


def test_the_member_list_pages_with_a_cursor_bound_to_the_team(api, world, team):
    world.team("team-b", admins=("zed",))
    seen, cursor = [], None
    for _ in range(3):
        page = api.get(MEMBERS, as_=ALICE, query="limit=2" + (f"&cursor={cursor}" if cursor else "")).json
        seen += [item["user_id"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert seen == ["alice", "bob", "carol", "hank", "olga"] and cursor is None
    first = api.get(MEMBERS, as_=ALICE, query="limit=1").json
    assert first["next_cursor"]
    for query, field in (("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
                         ("cursor=garbage", "cursor"), ("cursor=" + "a" * 600, "cursor")):
        reply = api.get(MEMBERS, as_=ALICE, query=query)
        assert reply.status == 422 and [e["path"] for e in reply.json["errors"]] == [field], (query, reply.text)
    # team-a's cursor does not page through team-b
    reply = api.get("/v1/teams/team-b/members", as_=Identity.user("zed"), query=f"cursor={first['next_cursor']}")
    assert reply.status == 422 and [e["path"] for e in reply.json["errors"]] == ["cursor"]


def test_a_large_team_is_listed_one_page_per_request(api, team, dynamodb_calls):
    write_members(api.stack, "team-a", 1000)
    dynamodb_calls.clear()
    page = api.get(MEMBERS, as_=ALICE, query="limit=100").json
    assert len(page["items"]) == 100 and page["next_cursor"]
    operations = [operation for operation, _ in dynamodb_calls]
    assert operations == ["GetItem", "Query"]  # the caller's membership, then one page
    query = dynamodb_calls[1][1]
    assert query["Limit"] == 101  # the page and one more (is there a next page?): never the partition
    assert "begins_with" in query["KeyConditionExpression"]
    assert "MEMBER#" in str(query["ExpressionAttributeValues"])
    dynamodb_calls.clear()
    api.get(MEMBERS, as_=ALICE, query=f"cursor={page['next_cursor']}")
    assert [operation for operation, _ in dynamodb_calls] == ["GetItem", "Query"]
    assert dynamodb_calls[1][1]["Limit"] == 51 and dynamodb_calls[1][1]["ExclusiveStartKey"]


# ------------------------------------------------------------------ DELETE member / app


def test_a_removed_member_is_a_stranger_to_the_team(api, world, team, dynamodb_calls):
    use(api, "minutes", 7, user_id="bob")
    dynamodb_calls.clear()
    assert remove(api, "members", "team-a", "bob").status == 204
    assert [operation for operation, _ in dynamodb_calls] == ["DeleteItem"]  # one request, nothing fanned out
    for path in ("balances", "usage", "alerts", "invoices", "members", "notices"):
        reply = api.get(f"/v1/teams/team-a/{path}", as_=BOB)
        assert reply.status == 404 and reply.content_type == "application/problem+json", (path, reply.text)
    assert create_alert(api, alert(["alice"]), as_=BOB).status == 404
    assert "bob" not in [item["user_id"] for item in api.get(MEMBERS, as_=ALICE).json["items"]]
    # usage already recorded under them stays
    series = api.get("/v1/teams/team-a/usage", as_=ALICE, query="group_by=user&from=2026-11-24").json["series"]
    (bob,) = [item for item in series if item["key"] == {"user_id": "bob"}]
    assert {"period": "2026-11-24", "quantity": 7} in bob["points"]
    # unknown, or removed already: 404
    for team_id, user_id in (("team-a", "bob"), ("team-a", "nobody"), ("team-x", "alice")):
        reply = remove(api, "members", team_id, user_id)
        assert reply.status == 404 and reply.content_type == "application/problem+json", reply.text
    # put back, they are a member again
    world.member("team-a", "bob", ["secondary_admin"])
    assert api.get(MEMBERS, as_=BOB).status == 200


def test_removing_a_member_of_one_team_leaves_their_other_teams(api, world, team):
    world.team("team-b", admins=("bob",))
    assert remove(api, "members", "team-a", "bob").status == 204
    assert api.get("/v1/teams/team-a/balances", as_=BOB).status == 404
    assert api.get("/v1/teams/team-b/members", as_=BOB).status == 200


def test_an_app_is_removed_once(api, team, dynamodb_calls):
    assert api.put("/v1/admin/teams/team-a/apps/app-1", {"name": "App", "owner_user_id": "olga"}).status == 201
    dynamodb_calls.clear()
    assert remove(api, "apps", "team-a", "app-1").status == 204
    assert [operation for operation, _ in dynamodb_calls] == ["DeleteItem"]
    for team_id, app_id in (("team-a", "app-1"), ("team-a", "nope"), ("team-x", "app-1")):
        assert remove(api, "apps", team_id, app_id).status == 404


@pytest.mark.parametrize("kind", ["members", "apps"])
def test_removal_is_for_iam_callers_only(api, team, kind):
    some_id = "bob" if kind == "members" else "app-1"
    for caller, status in ((ALICE, 403), (ANONYMOUS, 401)):
        reply = api.call("DELETE", f"/v1/admin/teams/team-a/{kind}/{some_id}", as_=caller)
        assert reply.status == status and reply.content_type == "application/problem+json", reply.text
    assert api.get(MEMBERS, as_=BOB).status == 200


# ------------------------------------------------------------------ alerts after a removal


def create_alert(api, body, as_=ALICE):
    return api.post(ALERTS, body, as_=as_)


def test_alerts_show_recipients_who_are_no_longer_admins(api, world, team, dynamodb_calls):
    created = create_alert(api, alert(["alice", "bob", "carol"]))
    assert created.status == 201 and created.json["ineligible_recipient_user_ids"] == []
    # membership, the team's resources (RES#), the recipients' member items, the alert and its guard
    assert [operation for operation, _ in dynamodb_calls] == ["GetItem", "Query", "BatchGetItem",
                                                              "TransactWriteItems"]
    other = create_alert(api, alert(["bob"], name="bob only")).json
    assert remove(api, "members", "team-a", "bob").status == 204
    world.member("team-a", "carol", ["hub_admin"])  # demoted: not an admin any more
    alert_id = created.json["alert_id"]
    dynamodb_calls.clear()
    detail = api.get(f"{ALERTS}/{alert_id}", as_=ALICE).json
    assert detail["recipient_user_ids"] == ["alice", "bob", "carol"]  # the alert itself is not rewritten
    assert detail["ineligible_recipient_user_ids"] == ["bob", "carol"]
    assert [operation for operation, _ in dynamodb_calls] == ["GetItem", "GetItem", "BatchGetItem"]
    dynamodb_calls.clear()
    items = {item["alert_id"]: item for item in api.get(ALERTS, as_=ALICE).json["items"]}
    assert items[alert_id]["ineligible_recipient_user_ids"] == ["bob", "carol"]
    assert items[other["alert_id"]]["ineligible_recipient_user_ids"] == ["bob"]
    assert [operation for operation, _ in dynamodb_calls] == ["GetItem", "Query", "BatchGetItem"]
    # a member put back as an admin is eligible again
    world.member("team-a", "bob", ["secondary_admin"])
    assert api.get(f"{ALERTS}/{other['alert_id']}", as_=ALICE).json["ineligible_recipient_user_ids"] == []


def test_alert_views_read_the_recipients_member_items_not_the_team(api, team, dynamodb_calls):
    create_alert(api, alert(["alice", "bob"]))
    create_alert(api, alert(["bob", "carol"], name="two"))
    write_members(api.stack, "team-a", 1000)  # after: moto copies the table for each transaction
    dynamodb_calls.clear()
    assert api.get(ALERTS, as_=ALICE).status == 200
    (batch,) = [params for operation, params in dynamodb_calls if operation == "BatchGetItem"]
    (keys,) = [request["Keys"] for request in batch["RequestItems"].values()]
    assert sorted(key["SK"]["S"] for key in keys) == ["MEMBER#alice", "MEMBER#bob", "MEMBER#carol"]
    assert all(request.get("ConsistentRead") for request in batch["RequestItems"].values())
    assert [operation for operation, _ in dynamodb_calls] == ["GetItem", "Query", "BatchGetItem"]


def test_a_team_with_no_alerts_reads_no_members_for_them(api, team, dynamodb_calls):
    assert api.get(ALERTS, as_=ALICE).json == {"items": [], "next_cursor": None}
    assert [operation for operation, _ in dynamodb_calls] == ["GetItem", "Query"]


def test_removed_and_demoted_recipients_get_no_email(api, world, team):
    create_alert(api, alert(["alice", "bob", "carol"]))
    assert remove(api, "members", "team-a", "bob").status == 204
    world.member("team-a", "carol", [])  # demoted
    use(api, "minutes", 95)  # 5 left at 95 a week: within 10 days
    assert evaluate(api.stack) == {"teams": 1, "emails_sent": 1}
    (message,) = sent()
    assert message.destinations["ToAddresses"] == ["alice@example.com"]
    assert "recipient of this alert" in message.body


def test_an_alert_with_no_eligible_recipient_left_emails_the_primary_admins(api, world, team):
    world.member("team-a", "pam", ["primary_admin", "hub_admin"])
    create_alert(api, alert(["bob", "carol"]))
    assert remove(api, "members", "team-a", "bob").status == 204
    world.member("team-a", "carol", ["hub_admin"])
    use(api, "minutes", 95)
    assert evaluate(api.stack) == {"teams": 1, "emails_sent": 1}
    (message,) = sent()
    assert sorted(message.destinations["ToAddresses"]) == ["alice@example.com", "pam@example.com"]
    assert "as a primary admin of TEAM-A: none of this alert's recipients" in message.body  # told why
    assert evaluate(api.stack)["emails_sent"] == 0  # still once per window


def test_app_owners_api_emails_stop_with_the_app_and_with_the_membership(api, world, team):
    world.subscription("team-a", "calls", "flex", quantity=100)
    world.member("team-a", "otto", [])
    for app_id, owner in (("app-1", "olga"), ("app-2", "otto")):
        assert api.put(f"/v1/admin/teams/team-a/apps/{app_id}", {"name": app_id, "owner_user_id": owner}).status == 201
    assert remove(api, "apps", "team-a", "app-1").status == 204  # olga owns nothing now
    assert remove(api, "members", "team-a", "otto").status == 204  # app-2 stays; its owner is gone
    use(api, "calls", 92)  # low
    assert evaluate(api.stack)["emails_sent"] == 1
    (message,) = sent()
    assert message.destinations["ToAddresses"] == ["hank@example.com"]  # the hub admin only


# ------------------------------------------------------------------ GET /v1/me


def test_me_lists_the_callers_teams_and_roles_in_each(api, world, team, dynamodb_calls):
    world.team("team-b", admins=())
    world.member("team-b", "hank", ["secondary_admin"])
    world.team("team-c", admins=())  # hank is not in it
    dynamodb_calls.clear()
    reply = api.get("/v1/me", as_=HANK)
    assert reply.status == 200, reply.text
    assert reply.json == {"user_id": "hank", "teams": [
        {"team_id": "team-a", "name": "TEAM-A", "roles": ["hub_admin"]},
        {"team_id": "team-b", "name": "TEAM-B", "roles": ["secondary_admin"]}]}
    # one index Query of the user's keys and one BatchGetItem of those teams and memberships
    assert [operation for operation, _ in dynamodb_calls] == ["Query", "BatchGetItem"]
    # a member without a role sees the team (the page explains that nothing is shown to them)
    assert api.get("/v1/me", as_=OLGA).json["teams"] == [{"team_id": "team-a", "name": "TEAM-A", "roles": []}]
    assert api.get("/v1/me", as_=Identity.user("stranger")).json == {"user_id": "stranger", "teams": []}


def test_me_follows_role_changes_and_removal(api, world, team):
    world.member("team-a", "olga", ["primary_admin"])
    assert api.get("/v1/me", as_=OLGA).json["teams"][0]["roles"] == ["primary_admin"]
    assert remove(api, "members", "team-a", "olga").status == 204
    assert api.get("/v1/me", as_=OLGA).json["teams"] == []


def test_me_needs_a_signed_in_user(api, team):
    reply = api.get("/v1/me", as_=ANONYMOUS)
    assert reply.status == 401 and reply.content_type == "application/problem+json"
    assert api.get("/v1/me", as_=OPERATOR).status in (401, 403)
