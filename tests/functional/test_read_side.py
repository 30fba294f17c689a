"""Read side through the handlers: balance cards, the API banner, usage reports, who may read."""
import csv
import io

import pytest
from conftest import ANONYMOUS, OPERATOR, Identity, cloud_event, drain_events, send_events, utc

ALICE = Identity.user("alice")
HANA = Identity.user("hana")


@pytest.fixture
def team(world):
    world.resource("minutes", kind="api", size=20)
    world.resource("assets", kind="resource", size=1)
    world.team("team-a")
    world.member("team-a", "hana", ["hub_admin"])
    world.member("team-a", "carl", [])
    world.team("team-b", admins=("bob",))
    return "team-a"


def ingest(api, *events):
    assert send_events(api, list(events)).status == 202
    drain_events(api.stack)


def card(api, resource_id="minutes", team_id="team-a", as_=ALICE):
    reply = api.get(f"/v1/teams/{team_id}/balances/{resource_id}", as_=as_)
    assert reply.status == 200, reply.text
    return reply.json


def test_card_shows_every_contract_field(api, world, team, clock):
    world.subscription(team, "assets", "flex", quantity=150, refresh_period="month", starts_at="2026-01-31T00:00:00Z",
                       ends_at="2027-01-31T00:00:00Z")
    world.subscription(team, "assets", "free", quantity=10)
    ingest(api, *[cloud_event(team, "assets", 2, utc(2026, 11, day, 9)) for day in range(18, 25)])
    body = api.get(f"/v1/teams/{team}/balances", as_=ALICE).json
    assert body["team_id"] == team and body["as_of"] == "2026-11-25T12:00:00Z"
    [assets] = [c for c in body["balances"] if c["resource_id"] == "assets"]
    assert {"resource_id", "kind", "display_name", "unit", "charge_unit_size", "available", "total",
            "total_purchased", "pending_usage", "shortfall_units", "status", "ends_at", "ends_in_days",
            "refreshes_at", "refreshes_in_days", "days_remaining", "projected_depletion_date",
            "subscriptions", "payg"} <= set(assets)
    # 14 units consumed: 10 free (no refresh), 4 from flex's November period
    assert (assets["available"], assets["total"], assets["total_purchased"]) == (146, 160, 150)
    # Jan 31 anchor: the current period began Oct 31 and the next starts Nov 30 (clamped)
    assert assets["refreshes_at"] == "2026-11-30T00:00:00Z" and assets["refreshes_in_days"] == 4
    assert assets["ends_at"] == "2027-01-31T00:00:00Z" and assets["ends_in_days"] == 66
    # 14 units over the 7 whole days before today -> 2 a day -> 146 / 2 = 73 days
    assert assets["days_remaining"] == 73 and assets["projected_depletion_date"] == "2027-02-06"
    assert [s["type"] for s in assets["subscriptions"]] == ["free", "flex"]
    assert assets["status"] == "ok" and assets["payg"] is None


def test_refresh_resets_availability_without_a_job(api, world, team, clock):
    world.subscription(team, "assets", "flex", quantity=5, refresh_period="month", starts_at="2026-01-31T00:00:00Z")
    clock.set(utc(2026, 11, 29, 23, 59))
    ingest(api, cloud_event(team, "assets", 5, utc(2026, 11, 29, 9)))
    assert card(api, "assets")["available"] == 0
    clock.set(utc(2026, 11, 30, 0, 0))
    assert card(api, "assets")["available"] == 5


def test_leap_year_yearly_refresh_clamps_to_feb_28(api, world, team, clock):
    world.subscription(team, "assets", "flex", quantity=5, refresh_period="year", starts_at="2024-02-29T00:00:00Z")
    clock.set(utc(2027, 2, 27, 12))
    assert card(api, "assets")["refreshes_at"] == "2027-02-28T00:00:00Z"


def test_projection_window_counts_only_the_seven_whole_days_before_today(api, world, team, clock):
    world.subscription(team, "assets", "flex", quantity=100)
    # today (Nov 25) and 8 days ago are outside the window
    ingest(api, cloud_event(team, "assets", 7, utc(2026, 11, 18, 0)),
           cloud_event(team, "assets", 50, utc(2026, 11, 25, 1)),
           cloud_event(team, "assets", 30, utc(2026, 11, 17, 23, 59)))
    c = card(api, "assets")
    assert c["available"] == 13 and c["days_remaining"] == 13  # 13 / (7 / 7)


def test_nothing_consumed_in_window_gives_null_projection(api, world, team):
    world.subscription(team, "assets", "flex", quantity=100)
    c = card(api, "assets")
    assert c["days_remaining"] is None and c["projected_depletion_date"] is None


def test_subscription_ending_today_and_future_subscription(api, world, team, clock):
    world.subscription(team, "assets", "flex", quantity=10, ends_at="2026-11-25T18:00:00Z", subscription_id="ending")
    world.subscription(team, "assets", "flex", quantity=99, starts_at="2026-12-01T00:00:00Z", subscription_id="later")
    c = card(api, "assets")
    assert c["ends_in_days"] == 0 and c["available"] == 10 and c["total"] == 10
    clock.set(utc(2026, 11, 25, 18))
    c = card(api, "assets")
    assert c["available"] == 0 and [s["subscription_id"] for s in c["subscriptions"]] == ["later"]


def test_banner_turns_warning_then_error(api, world, team):
    world.subscription(team, "minutes", "flex", quantity=10)
    assert api.get(f"/v1/teams/{team}/notices", as_=HANA).json["banner"] is None
    ingest(api, cloud_event(team, "minutes", 180, utc(2026, 11, 24)))
    banner = api.get(f"/v1/teams/{team}/notices", as_=HANA).json["banner"]
    assert banner["level"] == "warning" and banner["resource_ids"] == ["minutes"]
    ingest(api, cloud_event(team, "minutes", 20, utc(2026, 11, 24)))
    assert api.get(f"/v1/teams/{team}/notices", as_=HANA).json["banner"]["level"] == "error"


def test_usage_buckets_by_utc_day_across_midnight(api, world, team):
    world.subscription(team, "minutes", "flex", quantity=10)
    # 23:30 at -05:00 is 04:30 UTC the next day; 00:30 at +02:00 is 22:30 UTC the day before
    ingest(api, cloud_event(team, "minutes", 5, "2026-11-20T23:30:00-05:00", user_id="u1"),
           cloud_event(team, "minutes", 7, "2026-11-21T00:30:00+02:00", user_id="u2", app_id="app-1"))
    body = api.get(f"/v1/teams/{team}/usage", as_=ALICE,
                   query="from=2026-11-20&to=2026-11-22&granularity=day&group_by=resource").json
    [series] = body["series"]
    assert series["key"] == {"resource_id": "minutes"}
    assert series["points"] == [{"period": "2026-11-20", "quantity": 7}, {"period": "2026-11-21", "quantity": 5},
                                {"period": "2026-11-22", "quantity": 0}]
    by_user = api.get(f"/v1/teams/{team}/usage", as_=ALICE,
                      query="from=2026-11-01&to=2026-11-30&granularity=month&group_by=user").json
    assert [(s["key"], s["points"]) for s in by_user["series"]] == [
        ({"user_id": "u1"}, [{"period": "2026-11", "quantity": 5}]),
        ({"user_id": "u2"}, [{"period": "2026-11", "quantity": 7}]),
    ]
    by_app = api.get(f"/v1/teams/{team}/usage", as_=ALICE, query="from=2026-10-15&to=2026-11-20&granularity=month"
                     "&group_by=app").json
    assert by_app["series"] == [{"key": {"app_id": "app-1"}, "points": [{"period": "2026-10", "quantity": 0},
                                                                         {"period": "2026-11", "quantity": 7}]}]


@pytest.mark.parametrize("query, path", [
    ("from=2024-11-24&to=2026-11-25", "from"),
    ("from=2026-11-20&to=2026-11-19", "to"),
    ("from=2026-11-20&granularity=week", "granularity"),
    ("from=2026-11-20&group_by=team", "group_by"),
    ("from=20261120", "from"),
    ("resource_id=nope", "resource_id"),
])
def test_usage_refuses_bad_parameters_naming_them(api, team, query, path):
    reply = api.get(f"/v1/teams/{team}/usage", as_=ALICE, query=query)
    assert reply.status == 422 and reply.content_type == "application/problem+json"
    assert path in [error["path"] for error in reply.json["errors"]]


def test_usage_reaches_exactly_24_months_back(api, team):
    assert api.get(f"/v1/teams/{team}/usage", as_=ALICE, query="from=2024-11-25&to=2024-12-01").status == 200


def test_who_may_read(api, world, team):
    world.subscription(team, "minutes", "flex", quantity=10)
    world.subscription(team, "assets", "flex", quantity=10)
    hub = api.get(f"/v1/teams/{team}/balances", as_=HANA).json["balances"]
    assert [c["resource_id"] for c in hub] == ["minutes"]
    assert api.get(f"/v1/teams/{team}/balances/assets", as_=HANA).status == 403
    assert api.get(f"/v1/teams/{team}/balances", as_=Identity.user("carl")).status == 403
    stranger = api.get(f"/v1/teams/{team}/balances", as_=Identity.user("bob"))
    assert stranger.status == 404 and stranger.content_type == "application/problem+json"
    assert api.get("/v1/teams/no-such-team/balances", as_=ALICE).status == 404
    assert api.get(f"/v1/teams/{team}/balances", as_=ANONYMOUS).status == 401
    assert api.get(f"/v1/teams/{team}/notices", as_=Identity.user("carl")).status == 403
    # a resource the caller may not see is a 403 even when the rest of the query is wrong
    assert api.get(f"/v1/teams/{team}/usage", as_=HANA, query="resource_id=assets&from=nope").status == 403


def test_entitlement_check(api, world, team):
    world.subscription(team, "minutes", "flex", quantity=1)
    path = f"/v1/teams/{team}/entitlements/minutes"
    first = api.get(path, as_=OPERATOR)
    assert first.status == 200 and first.headers["Cache-Control"] == "private, max-age=5"
    assert first.json["allowed"] is True and first.json["units_needed"] == 1 and first.json["covered_by"] == "prepaid"
    ingest(api, cloud_event(team, "minutes", 30, utc(2026, 11, 24)))  # 1 unit + 10 pending
    gone = api.get(path, as_=OPERATOR).json
    assert gone["allowed"] is False and gone["covered_by"] is None and gone["pending_usage"] == 10
    small = api.get(path, as_=OPERATOR, query="quantity=9").json
    assert small["allowed"] is True and small["units_needed"] == 0  # the pending remainder absorbs it
    world.subscription(team, "minutes", "payg")
    assert api.get(path, as_=OPERATOR).json["covered_by"] == "payg"


@pytest.mark.parametrize("quantity", ["0", "-1", "1.5", "abc", "1e40"])
def test_entitlement_refuses_bad_quantity(api, team, quantity):
    reply = api.get(f"/v1/teams/{team}/entitlements/minutes", as_=OPERATOR, query=f"quantity={quantity}")
    assert reply.status == 422 and reply.json["errors"][0]["path"] == "quantity"


def test_entitlement_unknowns_and_iam(api, team):
    assert api.get("/v1/teams/nope/entitlements/minutes", as_=OPERATOR).status == 404
    assert api.get(f"/v1/teams/{team}/entitlements/nope", as_=OPERATOR).status == 404
    assert api.get(f"/v1/teams/{team}/entitlements/minutes", as_=ALICE).status == 403


def test_the_team_checked_is_the_team_served(api, world, team):
    # hardening from review: membership was checked on API Gateway's decoded pathParameters while
    # the handler serves the team in rawPath; a request where they differ must not pass as team-a
    from infra.apigw import find_route, http_event
    from infra.lambdas import FakeLambdaContext, load_handler

    world.subscription("team-b", "minutes", "flex", quantity=10)
    route, params = find_route(api.routes, "GET", "/v1/teams/team-b/balances")
    event = http_event(route, "/v1/teams/team-b/balances", {**params, "team_id": "team-a"}, identity=ALICE)
    reply = load_handler(api.stack, route.function)(event, FakeLambdaContext(route.function))
    assert reply["statusCode"] == 404 and '"balances"' not in reply["body"]


# ------------------------------------------------------------------ usage report pages and CSV


def usage(api, query, *, as_=ALICE, team_id="team-a", headers=None):
    reply = api.get(f"/v1/teams/{team_id}/usage", as_=as_, query=query, headers=headers)
    assert reply.status == 200, reply.text
    return reply


def all_pages(api, query, *, headers=None):
    """Every page of a report, following next_cursor (and checking X-Next-Cursor says the same)."""
    pages, cursor = [], None
    while True:
        reply = usage(api, query + (f"&cursor={cursor}" if cursor else ""), headers=headers)
        pages.append(reply)
        cursor = reply.headers.get("X-Next-Cursor")
        if reply.content_type.startswith("application/json"):
            assert reply.json["next_cursor"] == cursor
        if cursor is None:
            return pages
        assert len(pages) < 50


@pytest.fixture
def many_users(api, world, team):
    """Seven users (one with a comma in its id) and usage without a user, on two resources, in
    October and November 2026."""
    world.subscription(team, "minutes", "flex", quantity=10)
    world.subscription(team, "assets", "flex", quantity=10)
    users = ["ann", "bo", "cy", "di", "ed,jr", "fay", "gus"]
    events = [cloud_event(team, resource, 1 + index, utc(2026, month, 3 + index, 12), user_id=user)
              for index, user in enumerate(users) for resource, month in (("minutes", 11), ("assets", 10))]
    events.append(cloud_event(team, "minutes", 40, utc(2026, 11, 20, 8)))  # no user
    ingest(api, *events)
    return users


def test_usage_pages_of_users_together_are_the_whole_report(api, many_users):
    query = "from=2026-10-01&to=2026-11-30&granularity=month&group_by=user"
    whole = usage(api, query).json
    assert [s["key"]["user_id"] for s in whole["series"]] == [*many_users, None] and whole["next_cursor"] is None
    pages = all_pages(api, query + "&limit=3")
    assert [len(page.json["series"]) for page in pages] == [3, 3, 2]
    assert [s for page in pages for s in page.json["series"]] == whole["series"]
    assert pages[0].json["series"][0]["points"] == [{"period": "2026-10", "quantity": 1},
                                                   {"period": "2026-11", "quantity": 1}]
    assert pages[-1].json["series"][-1] == {"key": {"user_id": None},
                                            "points": [{"period": "2026-10", "quantity": 0},
                                                       {"period": "2026-11", "quantity": 40}]}


def test_usage_pages_of_resources_and_apps(api, world, team, many_users):
    pages = all_pages(api, "from=2026-10-01&to=2026-11-30&granularity=month&limit=1")
    assert [[s["key"] for s in page.json["series"]] for page in pages] == [[{"resource_id": "assets"}],
                                                                          [{"resource_id": "minutes"}]]
    ingest(api, cloud_event(team, "minutes", 5, utc(2026, 11, 21), app_id="app-1"))
    pages = all_pages(api, "from=2026-11-01&to=2026-11-30&granularity=month&group_by=app&limit=1")
    assert [page.json["series"][0]["key"] for page in pages] == [{"app_id": "app-1"}, {"app_id": None}]


def test_a_page_has_only_users_with_usage_in_the_range(api, many_users):
    # November 3-9 hold ann..gus's minutes; from Nov 6, ann, bo and cy (Nov 3-5) used nothing in the
    # range, though November's month item has them (and October's assets are outside it)
    for granularity in ("day", "month"):
        pages = all_pages(api, f"from=2026-11-06&to=2026-11-25&granularity={granularity}&group_by=user&limit=2")
        keys = [s["key"]["user_id"] for page in pages for s in page.json["series"]]
        assert keys == ["di", "ed,jr", "fay", "gus", None], granularity
        assert [len(page.json["series"]) for page in pages] == [2, 2, 1]


def test_usage_as_csv_has_the_same_rows_and_pages(api, many_users):
    query = "from=2026-11-01&to=2026-11-30&granularity=month&group_by=user&limit=4"
    json_pages = all_pages(api, query)
    csv_pages = all_pages(api, query, headers={"Accept": "text/csv"})
    assert [page.headers.get("X-Next-Cursor") for page in csv_pages] == [
        page.json["next_cursor"] for page in json_pages]
    for json_page, csv_page in zip(json_pages, csv_pages, strict=True):
        assert csv_page.content_type == "text/csv; charset=utf-8"
        assert csv_page.headers["Vary"] == "Accept"
        rows = list(csv.reader(io.StringIO(csv_page.text)))
        assert rows[0] == ["period", "key", "quantity"]
        assert rows[1:] == [[point["period"], series["key"]["user_id"] or "", str(point["quantity"])]
                            for series in json_page.json["series"] for point in series["points"]]
    text = "".join(page.text for page in csv_pages)
    assert '2026-11,"ed,jr",5\r\n' in text and "2026-11,,40\r\n" in text
    # JSON unless text/csv is preferred
    assert usage(api, query, headers={"Accept": "text/csv;q=0.5, application/json"}).content_type == "application/json"
    assert usage(api, query, headers={"Accept": "*/*"}).content_type == "application/json"


@pytest.mark.parametrize("query, path", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"),
    ("cursor=garbage", "cursor"), ("cursor=" + "x" * 4097, "cursor"),
])
def test_usage_refuses_bad_paging_naming_the_parameter(api, team, query, path):
    for headers in (None, {"Accept": "text/csv"}):
        reply = api.get(f"/v1/teams/{team}/usage", as_=ALICE, query=query, headers=headers)
        assert reply.status == 422 and reply.content_type == "application/problem+json", reply.text
        assert [error["path"] for error in reply.json["errors"]] == [path]


def test_a_cursor_works_only_for_its_team_and_grouping(api, world, many_users):
    world.subscription("team-b", "minutes", "flex", quantity=10)
    ingest(api, *[cloud_event("team-b", "minutes", 1, utc(2026, 11, 3), user_id=user) for user in ("x1", "x2")])
    query = "from=2026-11-01&to=2026-11-30&group_by=user&limit=1"
    theirs = usage(api, query, as_=Identity.user("bob"), team_id="team-b").json["next_cursor"]
    ours = usage(api, query).json["next_cursor"]
    assert theirs and ours
    for cursor, group in ((theirs, "user"), (ours, "app"), (ours, "resource")):
        reply = api.get("/v1/teams/team-a/usage", as_=ALICE,
                        query=f"from=2026-11-01&to=2026-11-30&group_by={group}&cursor={cursor}")
        assert reply.status == 422 and [e["path"] for e in reply.json["errors"]] == ["cursor"], reply.text
        assert "x1" not in reply.text and "x2" not in reply.text
    assert usage(api, f"{query}&cursor={ours}").json["series"][0]["key"] == {"user_id": "bo"}
