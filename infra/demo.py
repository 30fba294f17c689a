"""Loads a demo team (catalogue, members, app, subscriptions, ~10 days of usage) through the HTTP API."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
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


# Pay as You Go was bought a month and a bit ago: its first cycle has really ended, so the close job
# (every 60 s in `make run`, or `make invoice` now) invoices it without pretending to be in the future
PAYG_BOUGHT_DAYS_AGO = 40
PAYG_TIMEZONE = "America/Los_Angeles"
LAB_PAYG = "sub-lab-render-payg"  # the lab team's payg, on a card that attaches and declines every charge


def subscriptions(today: datetime, card_id: str = "pm_card_visa") -> list[dict[str, Any]]:
    """The demo grants, dated from `today` (UTC midnight) so reruns on one day are identical."""
    started = today - timedelta(days=15)
    purchased = today - timedelta(days=PAYG_BOUGHT_DAYS_AGO)
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
            "timezone": PAYG_TIMEZONE,
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


def first_cycle_events(now: datetime, team_id: str = TEAM_ID, resource_id: str = "processing-minutes",
                       quantity: int = 20, count: int = 11, user_id: str = "alice") -> list[dict[str, Any]]:
    """Usage from 25 to 20 days ago: inside a payg's first cycle (bought 40 days ago, it ends 9 to 12
    days ago, whatever the months' lengths) and before the prepaid grants started (15 and 10 days
    ago), so Pay as You Go covers it. Demo: 11 charged units of 20 minutes ($27.50) on invoice 1."""
    start = now.replace(second=0, microsecond=0) - timedelta(days=25)
    return [_event(f"demo-c0-{team_id}-{index:02d}", start + timedelta(hours=12 * index),
                   {"resource_id": resource_id, "quantity": quantity, "user_id": user_id}, team_id)
            for index in range(count)]


def _event(event_id: str, at: datetime, data: dict[str, Any], team_id: str = TEAM_ID) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": EVENT_SOURCE, "type": "usage.recorded",
            "subject": team_id, "time": _iso(at), "datacontenttype": "application/json", "data": data}


def lab_payg(today: datetime) -> dict[str, Any]:
    """The lab's Pay as You Go for render credits, bought by bob 40 days ago on a card that attaches and
    then declines every charge: its first cycle's invoice fails, the walk's invoice to pay."""
    purchased = today - timedelta(days=PAYG_BOUGHT_DAYS_AGO)
    return {"subscription_id": LAB_PAYG, "resource_id": "render-credits", "type": "payg",
            "starts_at": _iso(purchased), "purchased_at": _iso(purchased), "timezone": PAYG_TIMEZONE,
            "unit_amount": 40, "currency": "usd", "purchaser_user_id": "bob",
            "payment_method": {"id": "pm_card_chargeCustomerFail"}}


def load_lab_team(base_url: str, today: datetime, now: datetime) -> int:
    """A second, smaller team: alice is its secondary admin, bob its primary admin, hana has no role."""
    created = {200, 201}
    _expect(_call(base_url, "PUT", f"/v1/admin/teams/{LAB_TEAM_ID}", {"name": "Research Lab"}), "lab team", created)
    for user_id, roles in (("alice", ["secondary_admin"]), ("bob", ["primary_admin"]), ("hana", [])):
        member = {"email": MEMBERS[user_id]["email"], "roles": roles, "full_access": False}
        _expect(_call(base_url, "PUT", f"/v1/admin/teams/{LAB_TEAM_ID}/members/{user_id}", member),
                "lab member", created)
    grant = {"subscription_id": "sub-lab-render-flex", "resource_id": "render-credits", "type": "flex", "quantity": 500,
             "starts_at": _iso(today - timedelta(days=10)), "ends_at": _iso(today + timedelta(days=355)),
             "refresh_period": "month"}
    _expect(_call(base_url, "POST", f"/v1/admin/teams/{LAB_TEAM_ID}/subscriptions", grant), "lab grant",
            {200, 201, 409})
    _expect(_call(base_url, "POST", f"/v1/admin/teams/{LAB_TEAM_ID}/subscriptions", lab_payg(today)), "lab payg",
            {200, 201, 409})
    rng = random.Random(20261126)
    events = [{
        "specversion": "1.0", "id": f"lab-{index:04d}", "source": EVENT_SOURCE, "type": "usage.recorded",
        "subject": LAB_TEAM_ID,
        "time": _iso(now.replace(second=0, microsecond=0) - timedelta(minutes=rng.randint(1, 9 * 24 * 60))),
        "datacontenttype": "application/json",
        "data": {"resource_id": "render-credits", "quantity": rng.randint(1, 8),
                 "user_id": rng.choice(["alice", "bob"])},
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


# runs a step with the stack's clocks at a moment of the past (the local runner's); None: the present
Replay = Callable[[datetime, Callable[[], Any]], Any]


def history(now: datetime) -> list[dict[str, Any]]:
    """The usage of the payg subscriptions' first cycles, 25 to 20 days ago."""
    events = (first_cycle_events(now)
              + first_cycle_events(now, LAB_TEAM_ID, "render-credits", quantity=6, count=8, user_id="bob"))
    return sorted(events, key=lambda event: event["time"])


def load_demo(base_url: str, stripe_api_base: str, now: datetime | None = None,
              replay: Replay | None = None) -> dict[str, Any]:
    """Create the demo team through the operator API; safe to run again against the same stack.
    The payg card is made at the processor (localstripe) as Stripe.js would make it on the page.

    The first cycles' usage is sent through `replay` as of when it happened, so it is billed in those
    cycles (which have ended since: the close job invoices them now). Sent in the present instead, the
    contract bills it in the open cycle, as any unit applied after its cycle's end and grace."""
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
    lab_events = load_lab_team(base_url, today, now)
    past = history(now)

    def send_past() -> int:
        return post_events(base_url, past)

    accepted = replay(_parse(past[-1]["time"]) + timedelta(minutes=1), send_past) if replay else send_past()
    events = usage_events(now)
    accepted += post_events(base_url, events)
    return {"team_id": TEAM_ID, "subscriptions": len(subscriptions(today)),
            "events": len(past) + len(events) + lab_events, "accepted": accepted + lab_events}


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_close_job(base_url: str) -> dict[str, Any]:
    """The billing-cycle close job now, as its hourly schedule runs it (cycles that have ended and
    the payment retries that are due), then the team's invoices."""
    base_url = base_url.rstrip("/")
    ran = _expect(call(base_url, "POST", "/_local/run/CloseBillingCyclesFunction"), "close job", {200})
    invoices = _expect(call(base_url, "GET", f"/v1/teams/{TEAM_ID}/invoices", user="alice"), "invoices", {200})
    return {"result": ran.get("result"),
            "invoices": [{key: invoice.get(key) for key in ("invoice_id", "number", "subscription_id", "period_start",
                                                            "period_end", "total", "currency", "status")}
                         for invoice in invoices["items"]],
            "view": f"{base_url}/#/teams/{TEAM_ID}/invoices"}


def close_demo_cycle(base_url: str) -> dict[str, Any]:
    """`make invoice`: the close job now. The Pay as You Go first cycles ended days ago: team-demo's is
    closed into invoice 1 and paid with the saved card, team-lab's is declined (unless the scheduled
    run did this first: then the same invoices are listed)."""
    result = run_close_job(base_url)
    lab = _expect(call(base_url.rstrip("/"), "GET", f"/v1/teams/{LAB_TEAM_ID}/invoices", user="bob"), "lab invoices",
                  {200})
    result["lab_invoices"] = [{key: invoice.get(key) for key in ("invoice_id", "number", "total", "status")}
                              for invoice in lab["items"]]
    return result


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "invoice":
        print(json.dumps(close_demo_cycle(args[1]), indent=2))
    elif len(args) == 2:
        print(json.dumps(load_demo(args[0], args[1]), indent=2))
    else:
        sys.exit("usage: python -m infra.demo <stack base url> <localstripe url> | invoice <stack base url>")
