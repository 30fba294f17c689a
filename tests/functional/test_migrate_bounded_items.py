"""infra/migrate_bounded_items.py on data in the layout before issue 18: run twice, the result is
the new layout with nothing lost, and the second run changes nothing."""
from __future__ import annotations

import boto3
from conftest import Identity, utc

ALICE = Identity.user("alice")


def scan(table: str) -> list[dict]:
    client, items, kwargs = boto3.client("dynamodb"), [], {}
    while True:
        page = client.scan(TableName=table, **kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda item: (item["PK"]["S"], item["SK"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def n(value) -> dict:
    return {"N": str(value)}


def s(value) -> dict:
    return {"S": value}


def old_usage(team: str) -> list[dict]:
    """Two days of November 2026 and their month, as ingest wrote them before issue 18."""
    day = {"u:ann": n(3), "u:bo,b": n("1.5"), "u:": n(2), "a:app-1": n("4.5"), "a:": n(2)}
    day2 = {"u:ann": n(4), "a:": n(4)}
    month = {"u:ann": n(7), "u:bo,b": n("1.5"), "u:": n(2), "a:app-1": n("4.5"), "a:": n(6)}
    common = {"PK": s(team), "resource_id": s("minutes"), "expires_at": n(1900000000)}
    return [{**common, "SK": s("D#minutes#2026-11-03"), "quantity": n("6.5"), **day},
            {**common, "SK": s("D#minutes#2026-11-20"), "quantity": n(4), **day2},
            {**common, "SK": s("M#minutes#2026-11"), "quantity": n("10.5"), **month}]


def test_the_migration_rewrites_old_data_and_a_second_run_changes_nothing(api, world, clock):
    from infra import migrate_bounded_items

    world.resource("minutes", kind="api", size=1)
    world.team("team-a")
    world.subscription("team-a", "minutes", "flex", quantity=10, starts_at="2024-01-01T00:00:00Z",
                       refresh_period="month", subscription_id="monthly")
    world.subscription("team-a", "minutes", "payg", purchased_at="2025-12-15T00:00:00Z",
                       starts_at="2025-12-15T00:00:00Z", subscription_id="payg-1")
    ledger, usage = api.stack.physical["LedgerTable"], api.stack.physical["UsageTable"]
    client = boto3.client("dynamodb")
    for item in old_usage("team-a"):
        client.put_item(TableName=usage, Item=item)
    # a catalogue item from before the discriminator
    client.put_item(TableName=ledger, Item={"PK": s("CATALOGUE"), "SK": s("RESOURCE#assets"),
                                            "resource_id": s("assets"), "kind": s("resource"),
                                            "display_name": s("Assets"), "unit": s("asset"),
                                            "charge_unit_size": n(1), "low_balance_percent": n(10)})
    # a balance that kept every month since January 2024 (2026-11-25 - 790 days is 2024-09-26)
    consumed = {f"monthly@2024-{month:02d}-01T00:00:00Z": n(10) for month in range(1, 13)}
    consumed.update({f"monthly@2025-{month:02d}-01T00:00:00Z": n(10) for month in range(1, 13)})
    consumed.update({f"monthly@2026-{month:02d}-01T00:00:00Z": n(10) for month in range(1, 12)})
    client.put_item(TableName=ledger, Item={
        "PK": s("TEAM#team-a"), "SK": s("RES#minutes#BAL"), "entity": s("balance"), "team_id": s("team-a"),
        "resource_id": s("minutes"), "kind": s("api"), "usage_total": n(350), "pending_usage": n(0),
        "charged_units": n(350), "consumed": {"M": consumed}, "payg_units": n(0), "shortfall_units": n(0),
        "daily_units": {"M": {"2026-11-20": n(10)}}, "version": n(7)})
    # a closed cycle where every card reads
    client.put_item(TableName=ledger, Item={
        "PK": s("TEAM#team-a"), "SK": s("RES#minutes#CYCLE#payg-1#000003"), "entity": s("cycle"),
        "team_id": s("team-a"), "resource_id": s("minutes"), "subscription_id": s("payg-1"), "cycle_index": n(3),
        "cycle_start": s("2026-04-15"), "cycle_end": s("2026-05-14"), "ends_at": s("2026-05-15T00:00:00Z"),
        "status": s("closed"), "charged_units": n(12), "invoice_id": s("in_0123")})
    # a member saved before GET /v1/me had its index: not among bo's teams until migrated
    client.put_item(TableName=ledger, Item={
        "PK": s("TEAM#team-a"), "SK": s("MEMBER#bo"), "entity": s("member"), "team_id": s("team-a"),
        "user_id": s("bo"), "email": s("bo@example.com"), "roles": {"L": [s("secondary_admin")]},
        "full_access": {"BOOL": False}})
    assert api.get("/v1/me", as_=Identity.user("bo")).json["teams"] == []
    card_before = api.get("/v1/teams/team-a/balances", as_=ALICE).json["balances"]

    first = migrate_bounded_items.run(ledger, usage, now=utc(2026, 11, 25, 12))
    assert first == {"catalogue_items_tagged": 1,
                     "usage": {"day item attributes moved": 7, "month item attributes removed": 5},
                     "balances_pruned": 1, "closed_cycles_moved": 1, "subscriptions_closed_through": 1,
                     "members_indexed": 1}
    after_first = (scan(ledger), scan(usage))
    second = migrate_bounded_items.run(ledger, usage, now=utc(2026, 11, 25, 12))
    assert second == {"catalogue_items_tagged": 0, "usage": {}, "balances_pruned": 0, "closed_cycles_moved": 0,
                      "subscriptions_closed_through": 0, "members_indexed": 0}
    assert (scan(ledger), scan(usage)) == after_first

    # usage: reports read the new items; nothing lost, old attributes gone
    assert not [item for item in after_first[1] if any(name[:2] in ("u:", "a:") for name in item)]
    by_user = api.get("/v1/teams/team-a/usage", as_=ALICE,
                      query="from=2026-11-01&to=2026-11-30&granularity=day&group_by=user").json["series"]
    assert [(series["key"]["user_id"], {p["period"]: p["quantity"] for p in series["points"] if p["quantity"]})
            for series in by_user] == [("ann", {"2026-11-03": 3, "2026-11-20": 4}), ("bo,b", {"2026-11-03": 1.5}),
                                       (None, {"2026-11-03": 2})]
    by_app = api.get("/v1/teams/team-a/usage", as_=ALICE,
                     query="from=2026-11-01&to=2026-11-30&granularity=month&group_by=app").json["series"]
    assert [(series["key"]["app_id"], series["points"][0]["quantity"]) for series in by_app] == [
        ("app-1", 4.5), (None, 6)]
    # the old member now finds its team (alice, a member through the API, already did)
    assert [team["team_id"] for team in api.get("/v1/me", as_=Identity.user("bo")).json["teams"]] == ["team-a"]
    # the catalogue item is seen again
    from usage_ledger.adapters.dynamodb.ledger import LedgerStore

    assert LedgerStore().catalogue(fresh=True)["assets"].unit == "asset"
    # the balance: periods past the horizon retired, the card unchanged
    balance = next(item for item in after_first[0] if item["SK"]["S"] == "RES#minutes#BAL")
    kept = sorted(balance["consumed"]["M"])
    assert kept[0] == "monthly@2024-09-01T00:00:00Z" and len(kept) == 27
    assert balance["retired_units"] == n(80) and balance["version"] == n(8)
    assert api.get("/v1/teams/team-a/balances", as_=ALICE).json["balances"] == card_before
    # the closed cycle left RES#, with its invoice id
    cycles = [item for item in after_first[0] if item.get("entity") == s("cycle")]
    assert [(item["PK"]["S"], item["SK"]["S"], item["invoice_id"]["S"]) for item in cycles] == [
        ("TEAM#team-a#CYCLE", "minutes#payg-1#000003", "in_0123")]
    # and its subscription knows it is closed: a late unit of it goes to the first cycle after
    payg = next(item for item in after_first[0] if item["SK"]["S"] == "RES#minutes#SUB#payg-1")
    assert payg["closed_through"] == n(3)
