"""End-to-end: `python -m infra.local` in a subprocess (moto, demo data, pollers), driven over HTTP only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 120
INGEST_SECONDS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


def call(
    base_url: str,
    method: str,
    path: str,
    *,
    user: str | None = None,
    operator: bool = False,
    body: Any = None,
    content_type: str = "application/json",
) -> Reply:
    headers = {"Accept": "application/json"}
    if user:
        headers["X-Local-User"] = user
    if operator:
        headers["X-Local-Operator"] = "1"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = content_type
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw, reply_headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, reply_headers = error.code, error.read(), dict(error.headers)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Reply(status, {key.lower(): value for key, value in reply_headers.items()}, parsed)


def _log_tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def base_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    port, moto_port = free_port(), free_port()
    log_path = tmp_path_factory.mktemp("local-stack") / "runner.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed by the finalizer; a file, as a full pipe would block
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infra.local",
            "--port",
            str(port),
            "--moto-port",
            str(moto_port),
            "--schedule-seconds",
            "3600",
        ],
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
            pytest.fail(f"runner exited with {process.returncode}:\n{_log_tail(log_path)}")
        try:
            health = call(url, "GET", "/_local/health")
        except OSError:
            health = None
        if health is not None and health.status == 200:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"runner not ready after {STARTUP_SECONDS}s:\n{_log_tail(log_path)}")
    assert health.body["demo"] == "loaded", f"{health.body}\n{_log_tail(log_path)}"
    return url


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


def test_close_billing_cycles_runs_on_demand(base_url: str) -> None:
    reply = call(base_url, "POST", "/_local/run/CloseBillingCyclesFunction")

    assert reply.status == 200, reply.body
    assert reply.body["function"] == "CloseBillingCyclesFunction"


def test_sent_emails_are_listed(base_url: str) -> None:
    reply = call(base_url, "GET", "/_local/emails")

    assert reply.status == 200
    assert isinstance(reply.body["items"], list)
