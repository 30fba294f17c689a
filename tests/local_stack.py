"""The local stack (`python -m infra.local`) in a subprocess, for the e2e and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from infra.client import Reply, call

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_local_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Start the runner on free ports, stop it when the requesting scope ends; returns its URL."""
    port, moto_port, oidc_port = free_port(), free_port(), free_port()
    log_path = tmp_path_factory.mktemp("local-stack") / "runner.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed by the finalizer; a file, as a full pipe would block
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local", "--port", str(port), "--moto-port", str(moto_port),
         "--oidc-port", str(oidc_port),
         "--schedule-seconds", "3600"],
        cwd=ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def stop() -> None:
        if process.poll() is None:
            process.terminate()  # SIGTERM: the runner shuts down cleanly
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log_file.close()

    request.addfinalizer(stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    health: Reply | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"runner exited with {process.returncode}:\n{log_tail(log_path)}")
        try:
            health = call(url, "GET", "/_local/health")
        except OSError:
            health = None
        if health is not None and health.status == 200:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"runner not ready after {STARTUP_SECONDS}s:\n{log_tail(log_path)}")
    assert health.body["demo"] == "loaded", f"{health.body}\n{log_tail(log_path)}"
    return url


def payg_team(base_url: str, card: str, purchaser: str = "alice") -> tuple[str, str]:
    """A team of its own (the demo's data stays as it is) with a Pay as You Go bought 20 days ago on
    `card` and 30 minutes used an hour ago (alice primary admin, bob secondary admin): the team and
    the subscription."""
    from datetime import UTC, datetime, timedelta

    from infra.localstripe import create_card

    team, subscription = f"team-pay-{uuid.uuid4().hex[:8]}", f"sub-pay-{uuid.uuid4().hex[:8]}"
    stripe_base = call(base_url, "GET", "/web/config.json").body["stripeJsUrl"].removesuffix("/js.stripe.com/v3/")
    assert call(base_url, "PUT", f"/v1/admin/teams/{team}", operator=True,
                body={"name": "Pay Team"}).status in (200, 201)
    for user, roles in (("alice", ["primary_admin"]), ("bob", ["secondary_admin"])):
        member = {"email": f"{user}@example.com", "roles": roles, "full_access": False}
        assert call(base_url, "PUT", f"/v1/admin/teams/{team}/members/{user}", operator=True,
                    body=member).status in (200, 201)
    now = datetime.now(UTC).replace(microsecond=0)
    purchased = (now - timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    grant = {"subscription_id": subscription, "resource_id": "processing-minutes", "type": "payg",
             "starts_at": purchased, "purchased_at": purchased, "timezone": "UTC", "unit_amount": 250,
             "currency": "usd", "purchaser_user_id": purchaser,
             "payment_method": {"id": create_card(stripe_base, card)}}
    created = call(base_url, "POST", f"/v1/admin/teams/{team}/subscriptions", operator=True, body=grant)
    assert created.status in (200, 201), created.body
    event = {"specversion": "1.0", "id": f"pay-{uuid.uuid4().hex}", "source": "urn:usage-ledger:browser-test",
             "type": "usage.recorded", "subject": team,
             "time": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "datacontenttype": "application/json",
             "data": {"resource_id": "processing-minutes", "quantity": 30, "user_id": "alice"}}
    posted = call(base_url, "POST", "/v1/events", operator=True, body=[event],
                  content_type="application/cloudevents-batch+json")
    assert posted.status == 202, posted.body
    assert call(base_url, "POST", "/_local/drain").status == 200
    return team, subscription


def failed_invoice_team(base_url: str, card_number: str | None = None) -> tuple[str, str, dict[str, Any]]:
    """A payg_team whose card attaches and then declines (4000000000000341, or `card_number`): its
    closed cycle's invoice is payment_failed. Returns the team, the subscription and the invoice."""
    from datetime import UTC, datetime, timedelta

    from infra.localstripe import CARD_DECLINED_ON_CHARGE

    team, subscription = payg_team(base_url, card_number or CARD_DECLINED_ON_CHARGE)
    payg = call(base_url, "GET", f"/v1/teams/{team}/balances/processing-minutes", user="alice").body["payg"]
    end = datetime.fromisoformat(payg["cycle_end"]).replace(hour=12, tzinfo=UTC) + timedelta(days=2)
    ran = call(base_url, "POST", "/_local/run/CloseBillingCyclesFunction",
               body={"time": end.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert ran.status == 200, ran.body
    [invoice] = call(base_url, "GET", f"/v1/teams/{team}/invoices", user="alice").body["items"]
    assert invoice["status"] == "payment_failed" and invoice["next_payment_attempt"], invoice
    return team, subscription, invoice
