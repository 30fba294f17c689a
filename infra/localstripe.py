"""Runs localstripe (a stateful Stripe stand-in from PyPI) as a child process, for `make run` and tests.

The official SDK talks to it through the template's `StripeApiBase`. What localstripe does not do,
our own code must: it ignores idempotency keys (our attempt record is the guard against a second
charge) and accepts past expiry dates (our expiry check declines them).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

# the secret key the local stack keeps in Secrets Manager; localstripe accepts any sk_ value
LOCAL_SECRET_KEY = "sk_test_localstripe"
# the webhook signing secret the local stack keeps in Secrets Manager (StripeWebhookSecretName)
LOCAL_WEBHOOK_SECRET = "whsec_localstripe"
WEBHOOK_EVENTS = ["payment_intent.succeeded", "payment_intent.payment_failed"]
CARD_OK = "4242424242424242"
CARD_DECLINED_ON_CHARGE = "4000000000000341"  # attaches, then every charge is declined
# asks for 3-D Secure on every charge, off session too, until the customer authenticates it
CARD_AUTHENTICATION_REQUIRED = "4000002760003184"


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def start_localstripe(port: int = 0, host: str = "127.0.0.1", timeout: float = 60.0) -> tuple[str, Callable[[], None]]:
    """Start localstripe; return its URL once it answers, and a stop function. A free port can be
    taken by another process before localstripe binds it: then it tries another."""
    for attempt in range(5):
        try:
            return _start(port or _free_port(host), host, timeout)
        except PortTaken:
            if port or attempt == 4:
                raise
    raise AssertionError("unreachable")


class PortTaken(RuntimeError):
    pass


def _start(port: int, host: str, timeout: float) -> tuple[str, Callable[[], None]]:
    # --from-scratch: every localstripe pickles its whole store to one fixed file, /tmp/localstripe.pickle,
    # and by default loads it at start: several at once (xdist workers, make run) then start from
    # another's data or die on a half-written file (EOFError)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{host}:{port}"

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PortTaken(f"localstripe on port {port} exited with {process.returncode}")
        request = urllib.request.Request(f"{url}/v1/customers?limit=1",
                                         headers={"Authorization": f"Bearer {LOCAL_SECRET_KEY}"})
        try:
            with urllib.request.urlopen(request, timeout=2):
                return url, stop
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    stop()
    raise RuntimeError(f"localstripe did not answer on {url} within {timeout}s")


def create_card(api_base: str, number: str = CARD_OK, exp_month: int = 12, exp_year: int = 2030) -> str:
    """A card PaymentMethod at the processor, as Stripe.js would make one on the page: its id."""
    import stripe

    client = stripe.StripeClient(LOCAL_SECRET_KEY, base_addresses={"api": api_base}).v1
    card = client.payment_methods.create(params={"type": "card", "card": {
        "number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": "123"}})
    return str(card.id)


def register_webhook(api_base: str, url: str, secret: str = LOCAL_WEBHOOK_SECRET, webhook_id: str = "usage-ledger",
                     events: list[str] | None = None) -> None:
    """What an operator does in Stripe's dashboard (docs/deploy.md): localstripe then signs its
    events with `secret` and POSTs them to `url` (one registration per id; the same id replaces it)."""
    import json

    body = json.dumps({"url": url, "secret": secret, "events": events or WEBHOOK_EVENTS}).encode("utf-8")
    request = urllib.request.Request(f"{api_base.rstrip('/')}/_config/webhooks/{webhook_id}", data=body,
                                     method="POST", headers={"Content-Type": "application/json",
                                                             "Authorization": f"Bearer {LOCAL_SECRET_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()
