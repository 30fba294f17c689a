"""Loads a demo team (catalogue, members, app, subscriptions, ~10 days of usage) through the HTTP API."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.client import Reply, call

TEAM_ID = "team-demo"
LAB_TEAM_ID = "team-lab"  # a second team, so that a member of several teams can switch between them
EVENT_SOURCE = "urn:usage-ledger:demo"

RESOURCES = {
    "asset": {"kind": "resource", "display_name": "Assets", "unit": "asset", "charge_unit_size": 1},
    "processing-minutes": {
        "kind": "api",
        "display_name": "Processing minutes",
        "unit": "processing minute",
        "charge_unit_size": 20,
    },
    "render-credits": {"kind": "resource", "display_name": "Render credits", "unit": "credit", "charge_unit_size": 1},
}

MEMBERS = {
    "alice": {"email": "alice@example.com", "roles": ["primary_admin"], "full_access": True},
    "bob": {"email": "bob@example.com", "roles": ["secondary_admin"], "full_access": False},
    "hana": {"email": "hana@example.com", "roles": ["hub_admin"], "full_access": False},
    "carl": {"email": "carl@example.com", "roles": [], "full_access": False},
}


class DemoError(RuntimeError):
    pass


def _call(base_url: str, method: str, path: str, body: Any, content_type: str = "application/json") -> Reply:
    return call(base_url.rstrip("/"), method, path, operator=True, body=body, content_type=content_type)


def _expect(reply: Reply, what: str, ok: set[int]) -> Any:
    if reply.status not in ok:
        raise DemoError(f"{what}: HTTP {reply.status} {reply.body}")
    return reply.body


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def subscriptions(today: datetime, card_id: str = "pm_card_visa") -> list[dict[str, Any]]:
    """The demo grants, dated from `today` (UTC midnight) so reruns on one day are identical."""
    started = today - timedelta(days=15)
    purchased = today - timedelta(days=20)
    return [
        {
            "subscription_id": "sub-demo-asset-flex",
            "resource_id": "asset",
            "type": "flex",
            "quantity": 150,
            "starts_at": _iso(started),
            "ends_at": _iso(started + timedelta(days=365)),
            "refresh_period": "month",
        },
        {
            "subscription_id": "sub-demo-asset-free",
            "resource_id": "asset",
            "type": "free",
            "quantity": 10,
            "starts_at": _iso(started),
            "refresh_period": None,
        },
        {
            "subscription_id": "sub-demo-minutes-token-flex",
            "resource_id": "processing-minutes",
            "type": "token_flex",
            "quantity": 100,
            "starts_at": _iso(started),
            "ends_at": _iso(today + timedelta(days=365)),
            "refresh_period": None,
        },
        {
            "subscription_id": "sub-demo-minutes-payg",
            "resource_id": "processing-minutes",
            "type": "payg",
            "starts_at": _iso(purchased),
            "purchased_at": _iso(purchased),
            "timezone": "America/Los_Angeles",
            "unit_amount": 250,
            "currency": "usd",
            "purchaser_user_id": "alice",
            "payment_method": {"id": card_id},
        },
    ]


def usage_events(now: datetime, count: int = 300, days: int = 10) -> list[dict[str, Any]]:
    """Deterministic usage (fixed seed and ids; times relative to `now`, never in the future).

    Roughly 120 assets (of 160 prepaid) and 2,250 processing minutes (112 charged units: the 100
    token_flex units, then some Pay-as-You-Go), so every kind of card has something to show.
    """
    rng = random.Random(20261125)
    now = now.replace(second=0, microsecond=0)
    events = []
    for index in range(count):
        offset = timedelta(minutes=rng.randint(1, days * 24 * 60 - 1))
        user = rng.choice(["alice", "bob"])
        if index % 5 < 2:  # two events in five are assets
            data: dict[str, Any] = {"resource_id": "asset", "quantity": 1, "user_id": user}
            if rng.random() < 0.5:
                data["app_id"] = "app-1"
        else:
            minutes = rng.randint(5, 20)
            data = {"resource_id": "processing-minutes", "quantity": minutes, "user_id": user, "app_id": "app-1"}
        events.append(
            {
                "specversion": "1.0",
                "id": f"demo-{index:04d}",
                "source": EVENT_SOURCE,
                "type": "usage.recorded",
                "subject": TEAM_ID,
                "time": _iso(now - offset),
                "datacontenttype": "application/json",
                "data": data,
            }
        )
    events.sort(key=lambda event: event["time"])
    return events


def load_lab_team(base_url: str, today: datetime, now: datetime) -> int:
    """A second, smaller team: alice is its secondary admin, bob its primary admin, hana has no role."""
    created = {200, 201}
    _expect(_call(base_url, "PUT", f"/v1/admin/teams/{LAB_TEAM_ID}", {"name": "Research Lab"}), "lab team", created)
    for user_id, roles in (("alice", ["secondary_admin"]), ("bob", ["primary_admin"]), ("hana", [])):
        member = {"email": MEMBERS[user_id]["email"], "roles": roles, "full_access": False}
        _expect(_call(base_url, "PUT", f"/v1/admin/teams/{LAB_TEAM_ID}/members/{user_id}", member), "lab member", created)
    grant = {"subscription_id": "sub-lab-render-flex", "resource_id": "render-credits", "type": "flex", "quantity": 500,
             "starts_at": _iso(today - timedelta(days=10)), "ends_at": _iso(today + timedelta(days=355)),
             "refresh_period": "month"}
    _expect(_call(base_url, "POST", f"/v1/admin/teams/{LAB_TEAM_ID}/subscriptions", grant), "lab grant", {200, 201, 409})
    rng = random.Random(20261126)
    events = [{
        "specversion": "1.0", "id": f"lab-{index:04d}", "source": EVENT_SOURCE, "type": "usage.recorded",
        "subject": LAB_TEAM_ID, "time": _iso(now.replace(second=0, microsecond=0) - timedelta(minutes=rng.randint(1, 9 * 24 * 60))),
        "datacontenttype": "application/json",
        "data": {"resource_id": "render-credits", "quantity": rng.randint(1, 8), "user_id": rng.choice(["alice", "bob"])},
    } for index in range(40)]
    return post_events(base_url, sorted(events, key=lambda event: event["time"]))


def post_events(base_url: str, events: list[dict[str, Any]]) -> int:
    """POST events as CloudEvents batches of at most 100; returns how many were accepted."""
    accepted = 0
    for start in range(0, len(events), 100):
        batch = events[start : start + 100]
        body = _expect(
            _call(base_url, "POST", "/v1/events", batch, "application/cloudevents-batch+json"),
            "post usage events",
            {200, 202},
        )
        accepted += int((body or {}).get("accepted", len(batch)))
    return accepted


def load_demo(base_url: str, stripe_api_base: str, now: datetime | None = None) -> dict[str, Any]:
    """Create the demo team through the operator API; safe to run again against the same stack.
    The payg card is made at the processor (localstripe) as Stripe.js would make it on the page."""
    from infra.localstripe import create_card

    now = now or datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    created = {200, 201}
    for resource_id, resource in RESOURCES.items():
        path = f"/v1/admin/resources/{resource_id}"
        _expect(_call(base_url, "PUT", path, resource), f"resource {resource_id}", created)
    _expect(_call(base_url, "PUT", f"/v1/admin/teams/{TEAM_ID}", {"name": "Demo Team"}), "team", created)
    for user_id, member in MEMBERS.items():
        path = f"/v1/admin/teams/{TEAM_ID}/members/{user_id}"
        _expect(_call(base_url, "PUT", path, member), f"member {user_id}", created)
    app = {"name": "Demo App", "owner_user_id": "hana"}
    _expect(_call(base_url, "PUT", f"/v1/admin/teams/{TEAM_ID}/apps/app-1", app), "app", created)
    for subscription in subscriptions(today, create_card(stripe_api_base)):
        # 409: the same id with other dates, from a run on an earlier day - keep that one
        _expect(
            _call(base_url, "POST", f"/v1/admin/teams/{TEAM_ID}/subscriptions", subscription),
            f"subscription {subscription['subscription_id']}",
            {200, 201, 409},
        )
    events = usage_events(now)
    accepted = post_events(base_url, events)
    load_lab_team(base_url, today, now)
    return {"team_id": TEAM_ID, "subscriptions": len(subscriptions(today)), "events": len(events), "accepted": accepted}


def close_demo_cycle(base_url: str) -> dict[str, Any]:
    """Run the billing-cycle close job as if it were the day after the demo's open Pay as You Go
    cycle ended (the local runner takes a `time`): the demo's usage is invoiced now, no month's
    wait. Returns the job's result and the team's invoices."""
    reply = call(base_url.rstrip("/"), "GET", f"/v1/teams/{TEAM_ID}/balances/processing-minutes", user="alice")
    payg = _expect(reply, "the demo's Pay as You Go card", {200}).get("payg")
    if not payg:
        raise DemoError("the demo team has no open Pay as You Go cycle")
    end = datetime.fromisoformat(payg["cycle_end"]).replace(hour=12, tzinfo=UTC) + timedelta(days=2)  # past any zone and the grace
    ran = _expect(call(base_url.rstrip("/"), "POST", "/_local/run/CloseBillingCyclesFunction", body={"time": _iso(end)}),
                  "close job", {200})
    invoices = _expect(call(base_url.rstrip("/"), "GET", f"/v1/teams/{TEAM_ID}/invoices", user="alice"), "invoices", {200})
    return {"closed_as_of": _iso(end), "result": ran.get("result"),
            "invoices": [{key: invoice.get(key) for key in ("invoice_id", "number", "period_start", "period_end", "total",
                                                            "currency", "status")} for invoice in invoices["items"]],
            "view": f"{base_url.rstrip('/')}/#/teams/{TEAM_ID}/invoices"}


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "invoice":
        print(json.dumps(close_demo_cycle(args[1]), indent=2))
    elif len(args) == 2:
        print(json.dumps(load_demo(args[0], args[1]), indent=2))
    else:
        sys.exit("usage: python -m infra.demo <stack base url> <localstripe url> | invoice <stack base url>")
