"""End-to-end: `python -m infra.local` in a subprocess (moto, demo data, pollers), driven over HTTP only."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from local_stack import call, failed_invoice_team, start_local_stack

pytestmark = pytest.mark.e2e

INGEST_SECONDS = 20


@pytest.fixture(scope="module")
def base_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return start_local_stack(request, tmp_path_factory)


def _card(base_url: str, resource_id: str) -> dict[str, Any]:
    reply = call(base_url, "GET", "/v1/teams/team-demo/balances", user="alice")
    assert reply.status == 200, reply.body
    cards = {card["resource_id"]: card for card in reply.body["balances"]}
    return cards[resource_id]


def _remaining(card: dict[str, Any]) -> int:
    # prepaid units left minus units nobody covered: drops by one per charged unit either way
    return card["available"] - card.get("shortfall_units", 0)


def _usage_batch(count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return [
        {
            "specversion": "1.0",
            "id": f"e2e-{uuid.uuid4()}",
            "source": "urn:usage-ledger:e2e",
            "type": "usage.recorded",
            "subject": "team-demo",
            "time": now,
            "datacontenttype": "application/json",
            "data": {"resource_id": "asset", "quantity": 1, "user_id": "alice", "app_id": "app-1"},
        }
        for _ in range(count)
    ]


def test_balances_as_team_admin(base_url: str) -> None:
    reply = call(base_url, "GET", "/v1/teams/team-demo/balances", user="alice")

    assert reply.status == 200, reply.body
    assert reply.body["team_id"] == "team-demo"
    cards = {card["resource_id"]: card for card in reply.body["balances"]}
    assert {"asset", "processing-minutes"} <= set(cards)
    for card in cards.values():
        assert card["status"] in {"ok", "low", "exhausted"}
        assert isinstance(card["available"], int) and isinstance(card["total"], int)
    # the demo's usage was ingested before the runner reported ready
    assert cards["asset"]["available"] < cards["asset"]["total"]


def test_balances_without_identity_is_unauthorized(base_url: str) -> None:
    reply = call(base_url, "GET", "/v1/teams/team-demo/balances")

    assert reply.status == 401
    assert reply.body == {"message": "Unauthorized"}


def test_operator_route_refuses_a_team_user(base_url: str) -> None:
    reply = call(base_url, "PUT", "/v1/admin/teams/team-demo", user="alice", body={"name": "Hijacked"})

    assert reply.status == 403
    assert reply.body == {"message": "Forbidden"}


def test_unknown_route_is_not_found(base_url: str) -> None:
    reply = call(base_url, "GET", "/v1/nothing-here", user="alice")

    assert reply.status == 404
    assert reply.body == {"message": "Not Found"}


def test_posted_events_reach_the_balance_once(base_url: str) -> None:
    before = _remaining(_card(base_url, "asset"))
    batch = _usage_batch(5)

    posted = call(
        base_url, "POST", "/v1/events", operator=True, body=batch, content_type="application/cloudevents-batch+json"
    )

    assert posted.status == 202, posted.body
    assert posted.body == {"accepted": 5}
    deadline = time.monotonic() + INGEST_SECONDS
    while _remaining(_card(base_url, "asset")) != before - 5 and time.monotonic() < deadline:
        time.sleep(0.5)  # the background queue poller runs the ingest function
    assert _remaining(_card(base_url, "asset")) == before - 5

    # the same (source, id) pairs again are counted once
    again = call(
        base_url, "POST", "/v1/events", operator=True, body=batch, content_type="application/cloudevents-batch+json"
    )
    assert again.status == 202, again.body
    assert call(base_url, "POST", "/_local/drain").status == 200
    assert _remaining(_card(base_url, "asset")) == before - 5


def test_an_sdk_binary_mode_event_passes_the_gateway_with_its_headers(base_url: str) -> None:
    """The CloudEvents SDK's default over the wire: ce-* headers (sent here in mixed case, which
    the gateway lowercases as API Gateway does) and no Content-Type; http.client adds none."""
    import http.client
    import json
    from urllib.parse import urlsplit

    from cloudevents.core.bindings.http import to_binary_event
    from cloudevents.core.v1.event import CloudEvent

    before = _remaining(_card(base_url, "asset"))
    event = CloudEvent(attributes={"id": f"e2e-binary-{uuid.uuid4()}", "source": "urn:usage-ledger:e2e",
                                   "type": "usage.recorded", "subject": "team-demo", "time": datetime.now(UTC)},
                       data={"resource_id": "asset", "quantity": 1, "user_id": "alice"})
    message = to_binary_event(event)
    headers = {name.title(): value for name, value in message.headers.items()}  # Ce-Id, Ce-Source, ...
    assert "Content-Type" not in headers
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    connection.request("POST", "/v1/events", body=message.body, headers={**headers, "X-Local-Operator": "1"})
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (202, {"accepted": 1})
    connection.close()
    assert call(base_url, "POST", "/_local/drain").status == 200
    assert _remaining(_card(base_url, "asset")) == before - 1


def test_close_billing_cycles_runs_on_demand(base_url: str) -> None:
    reply = call(base_url, "POST", "/_local/run/CloseBillingCyclesFunction")

    assert reply.status == 200, reply.body
    assert reply.body["function"] == "CloseBillingCyclesFunction"


def test_sent_emails_are_listed(base_url: str) -> None:
    reply = call(base_url, "GET", "/_local/emails")

    assert reply.status == 200
    assert isinstance(reply.body["items"], list)


def test_a_3d_secure_payment_confirmed_at_the_processor_reaches_the_invoice_through_its_event(base_url: str) -> None:
    """The loop `make run` runs: pay answers next_action; the customer authenticates (what Stripe.js
    does on the page); localstripe signs payment_intent.succeeded and POSTs it to the registered
    /v1/stripe/webhooks, which pays the invoice. No second pay: only the event can have paid it."""
    import json
    import urllib.request

    from infra.localstripe import CARD_AUTHENTICATION_REQUIRED, LOCAL_SECRET_KEY

    team, _, invoice = failed_invoice_team(base_url, CARD_AUTHENTICATION_REQUIRED)
    assert invoice["action_required"] is True
    paying = call(base_url, "POST", f"/v1/teams/{team}/invoices/{invoice['invoice_id']}/pay", user="alice")
    assert paying.status == 200, paying.body
    secret = paying.body["next_action"]["client_secret"]
    stripe_base = call(base_url, "GET", "/web/config.json").body["stripeJsUrl"].removesuffix("/js.stripe.com/v3/")
    request = urllib.request.Request(
        f"{stripe_base}/v1/payment_intents/{secret.split('_secret_')[0]}/_authenticate?success=true",
        data=json.dumps({"client_secret": secret}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {LOCAL_SECRET_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["status"] == "succeeded"
    deadline = time.monotonic() + 20
    while True:
        now = call(base_url, "GET", f"/v1/teams/{team}/invoices/{invoice['invoice_id']}", user="alice").body
        if now["status"] == "paid" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert now["status"] == "paid" and now["action_required"] is False, now
    assert now["paid_with"]["last4"] == "3184"
