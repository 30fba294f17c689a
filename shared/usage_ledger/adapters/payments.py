"""Charging a saved card: the PaymentGateway port and a local gateway that records charges in the ledger."""
from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from usage_ledger.adapters import dynamo, ledger_store
from usage_ledger.domain.calendar import iso
from usage_ledger.domain.model import PaymentMethod

SUCCEEDED = "succeeded"
DECLINED = "declined"


@dataclass(frozen=True)
class Charge:
    """The outcome of one charge attempt, the same for every retry with its idempotency key."""

    charge_id: str
    status: str  # "succeeded" or "declined"
    amount: int
    currency: str
    decline_code: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED


class PaymentGateway(Protocol):
    def charge(self, *, idempotency_key: str, amount: int, currency: str, payment_method: PaymentMethod,
               description: str, now: datetime) -> Charge:
        """Charge once per idempotency key: a retry returns the first attempt's outcome."""
        ...


def card_expires_at(payment_method: PaymentMethod) -> datetime:
    """A card is valid through the last day of its expiry month (UTC); this is the first instant after."""
    last_day = _calendar.monthrange(payment_method.exp_year, payment_method.exp_month)[1]
    end = datetime(payment_method.exp_year, payment_method.exp_month, last_day, tzinfo=UTC)
    return end + timedelta(days=1)


def payment_pk(idempotency_key: str) -> str:
    return f"PAYMENT#{idempotency_key}"


class LocalPaymentGateway:
    """Stands in for a card processor: declines expired cards, keeps each charge under its key."""

    def charge(self, *, idempotency_key: str, amount: int, currency: str, payment_method: PaymentMethod,
               description: str, now: datetime) -> Charge:
        expired = now >= card_expires_at(payment_method)
        outcome = Charge(
            charge_id="ch_" + dynamo.stable_hash(idempotency_key, length=24),
            status=DECLINED if expired else SUCCEEDED,
            amount=amount,
            currency=currency,
            decline_code="expired_card" if expired else None,
        )
        record: dict[str, Any] = {
            "PK": payment_pk(idempotency_key), "SK": "PAYMENT", "entity": "payment",
            "idempotency_key": idempotency_key, "charge_id": outcome.charge_id, "status": outcome.status,
            "amount": amount, "currency": currency, "decline_code": outcome.decline_code,
            "brand": payment_method.brand, "last4": payment_method.last4, "description": description,
            "created_at": iso(now),
        }
        if ledger_store.put_item_once(record):
            return outcome
        # a retry: the first attempt's outcome stands (never a second charge)
        stored = ledger_store.get_item(payment_pk(idempotency_key), "PAYMENT")
        assert stored is not None
        return Charge(stored["charge_id"], stored["status"], int(stored["amount"]), stored["currency"],
                      stored.get("decline_code"))
