"""The processor's events (Stripe webhooks, `POST /v1/stripe/webhooks`; contract section 6).

Each request is verified by its Stripe-Signature (the SDK, against the webhook signing secret;
5 minutes' tolerance) before anything is read from it: a forged, altered, replayed-late or unsigned
request is a 400 and changes nothing. Each event id is acted on once: a marker put if absent before
acting (given back when acting fails, so the processor's redelivery acts on it then). A verified
event answers 200 whether it is acted on or not; `payment_intent.succeeded` for a PaymentIntent of
one of our invoices pays it (service/confirmations.py); every other type is acknowledged.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from usage_ledger.service.confirmations import PaymentConfirmations
from usage_ledger.service.ports import PaymentGateway

logger = Logger(child=True)
PAYMENT_INTENT_SUCCEEDED = "payment_intent.succeeded"


class ProcessorEventMarkers(Protocol):
    def claim(self, event_id: str, event_type: str, now: datetime) -> bool:
        """Take the event (put if absent, with a TTL); False when it was taken before."""
        ...

    def release(self, event_id: str) -> None:
        """Acting on it failed: the next delivery takes it again."""
        ...


class ProcessorEvents:
    def __init__(self, payments: PaymentGateway, markers: ProcessorEventMarkers,
                 confirmations: PaymentConfirmations) -> None:
        self.payments, self.markers, self.confirmations = payments, markers, confirmations

    def receive(self, payload: bytes, signature: str | None, now: datetime) -> dict[str, Any]:
        """Verify, then act on the event once: {"received": true, "acted": ...}. ForgedEvent (400)
        for a bad signature; an error while acting (Contended, an outage) is raised with the event
        given back, so the processor redelivers it."""
        event = self.payments.processor_event(payload, signature)
        if event["type"] != PAYMENT_INTENT_SUCCEEDED or not event["id"]:
            return {"received": True, "acted": False}
        if not self.markers.claim(event["id"], event["type"], now):
            return {"received": True, "acted": False, "duplicate": True}
        try:
            acted = self._intent_succeeded(event["object"], now)
        except Exception:
            self.markers.release(event["id"])
            raise
        logger.info("processor event", extra={"event_id": event["id"], "type": event["type"], "acted": acted})
        return {"received": True, "acted": acted}

    def _intent_succeeded(self, intent: dict[str, Any], now: datetime) -> bool:
        intent_id = intent.get("id")
        if not isinstance(intent_id, str) or not intent_id.startswith("pi_"):
            return False
        return self.confirmations.settle_intent(intent_id, now) is not None
