"""Every quantity and amount in every answer is exact (contract section 3): sentinels that binary
floating point would round (1000000006957.500167, a millionth, 2**53 + 1) read back digit for digit
from usage JSON and CSV, balances, entitlements and invoices, through the handlers."""
import csv
import io
import json
from decimal import Decimal

import simplejson
from conftest import OPERATOR, Identity, close_billing, cloud_event, drain_events, utc

ALICE = Identity.user("alice")
BIG = "1000000000000"  # 1e12
FRACTION = "6957.500167"  # 1e12 on top of it is 1000000006957.5001 through a float
SUM = "1000000006957.500167"
MILLIONTH = "0.000001"
PENDING = "999999999.999999"  # the most digits a pending remainder has
UNIT_AMOUNT = 999_999_999_999  # the largest unit amount
PAGES = 9009
BEYOND_DOUBLE = PAGES * UNIT_AMOUNT  # 9008999999990991, past 2**53: a float says ...992


def exact(reply) -> dict:
    """The answer's JSON with every number as the text it was written in."""
    assert reply.status == 200, reply.text
    return json.loads(reply.text, parse_float=Decimal, parse_int=Decimal)


def test_sentinel_quantities_and_amounts_read_back_exactly_from_every_route(api, world, clock):
    world.resource("minutes", kind="api", size=20)
    world.resource("storage", kind="api", size=10**9)  # the largest charged unit: PENDING stays pending
    world.resource("pages", kind="resource", size=1)
    world.team("team-a")
    world.subscription("team-a", "minutes", "payg", purchased_at="2026-10-01T00:00:00Z",
                       starts_at="2026-10-01T00:00:00Z", subscription_id="payg-minutes")
    world.subscription("team-a", "storage", "flex", quantity=100, subscription_id="flex-1")
    world.subscription("team-a", "pages", "payg", purchased_at="2026-10-01T00:00:00Z", starts_at="2026-10-01T00:00:00Z",
                       unit_amount=UNIT_AMOUNT, subscription_id="payg-1")
    clock.set(utc(2026, 10, 20, 12))
    events = [cloud_event("team-a", "minutes", Decimal(BIG), utc(2026, 10, 20, 10), user_id="u1"),
              cloud_event("team-a", "minutes", Decimal(FRACTION), utc(2026, 10, 20, 11), user_id="u1"),
              cloud_event("team-a", "storage", Decimal(PENDING), utc(2026, 10, 20, 11), user_id="u1"),
              cloud_event("team-a", "pages", Decimal(MILLIONTH), utc(2026, 10, 20, 11), user_id="u1"),
              cloud_event("team-a", "pages", PAGES, utc(2026, 10, 20, 11, 30), user_id="u1")]
    reply = api.call("POST", "/v1/events", as_=OPERATOR, raw_body=simplejson.dumps(events, use_decimal=True),
                     headers={"content-type": "application/cloudevents-batch+json"})
    assert reply.status == 202, reply.text
    drain_events(api.stack)

    query = "from=2026-10-01&to=2026-10-31&group_by=user&resource_id="
    usage = exact(api.get("/v1/teams/team-a/usage", as_=ALICE, query=query + "minutes&granularity=month"))
    assert [point["quantity"] for point in usage["series"][0]["points"]] == [Decimal(SUM)]
    assert f'"quantity":{SUM}' in api.get("/v1/teams/team-a/usage", as_=ALICE,
                                          query=query + "minutes&granularity=month").text
    days = exact(api.get("/v1/teams/team-a/usage", as_=ALICE, query=query + "pages"))
    assert Decimal(f"{PAGES}.000001") in [point["quantity"] for point in days["series"][0]["points"]]
    text = api.get("/v1/teams/team-a/usage", as_=ALICE, query=query + "minutes&granularity=month",
                   headers={"Accept": "text/csv"}).text
    assert list(csv.reader(io.StringIO(text)))[1] == ["2026-10", "u1", SUM]

    card = exact(api.get("/v1/teams/team-a/balances/storage", as_=ALICE))
    assert card["pending_usage"] == Decimal(PENDING) and f'"pending_usage":{PENDING}' in api.get(
        "/v1/teams/team-a/balances", as_=ALICE).text
    minutes = exact(api.get("/v1/teams/team-a/balances/minutes", as_=ALICE))
    assert minutes["pending_usage"] == Decimal("17.500167") and minutes["payg"]["charged_units"] == 50000000347
    pages = exact(api.get("/v1/teams/team-a/balances/pages", as_=ALICE))
    assert pages["pending_usage"] == Decimal(MILLIONTH) and pages["payg"]["amount"] == BEYOND_DOUBLE

    entitled = api.get("/v1/teams/team-a/entitlements/storage", as_=OPERATOR, query="quantity=1")
    assert exact(entitled)["pending_usage"] == Decimal(PENDING) and f'"pending_usage":{PENDING}' in entitled.text

    close_billing(api.stack, utc(2026, 11, 2))
    [invoice] = [item for item in exact(api.get("/v1/teams/team-a/invoices", as_=ALICE))["items"]
                 if item["subscription_id"] == "payg-1"]
    assert invoice["lines"][0]["unit_amount"] == UNIT_AMOUNT and invoice["lines"][0]["amount"] == BEYOND_DOUBLE
    assert invoice["total"] == BEYOND_DOUBLE and f'"total":{BEYOND_DOUBLE}' in api.get(
        f"/v1/teams/team-a/invoices/{invoice['invoice_id']}", as_=ALICE).text



def test_a_route_that_returns_a_plain_dict_is_written_digit_for_digit_too():
    """Powertools' own path for a plain result encodes a Decimal as a float (...5001): the project's
    resolver writes it as json_response does."""
    from usage_ledger.http.api import new_resolver

    app = new_resolver()

    @app.get("/v1/exact")
    def exact_route():
        return {"quantity": Decimal(SUM), "amount": BEYOND_DOUBLE, "pending_usage": Decimal(MILLIONTH)}, 201

    event = {"version": "2.0", "routeKey": "GET /v1/exact", "rawPath": "/v1/exact", "rawQueryString": "",
             "headers": {}, "isBase64Encoded": False,
             "requestContext": {"http": {"method": "GET", "path": "/v1/exact", "sourceIp": "192.0.2.1"},
                                "stage": "$default", "requestId": "exact"}}
    reply = app.resolve(event, None)
    assert reply["statusCode"] == 201
    assert reply["body"] == f'{{"quantity":{SUM},"amount":{BEYOND_DOUBLE},"pending_usage":{MILLIONTH}}}'
