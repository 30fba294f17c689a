"""Charging a saved card: a local gateway that records one charge per idempotency key in the ledger table."""
from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import PutError

from usage_ledger.adapters.dynamodb import keys
from usage_ledger.adapters.dynamodb.errors import is_condition_failure
from usage_ledger.adapters.dynamodb.models import PaymentItem
from usage_ledger.domain.billing import DECLINED, SUCCEEDED, Charge, card_expires_at
from usage_ledger.domain.ids import stable_hash
from usage_ledger.domain.model import PaymentMethod


class LocalPaymentGateway:
    """Stands in for a card processor: declines expired cards, keeps each charge under its key."""

    def charge(self, *, idempotency_key: str, amount: int, currency: str, payment_method: PaymentMethod,
               description: str, now: datetime) -> Charge:
        expired = now >= card_expires_at(payment_method)
        outcome = Charge(
            charge_id="ch_" + stable_hash(idempotency_key, length=24),
            status=DECLINED if expired else SUCCEEDED,
            amount=amount,
            currency=currency,
            decline_code="expired_card" if expired else None,
        )
        record = PaymentItem(keys.payment_pk(idempotency_key), keys.PAYMENT_SK, idempotency_key=idempotency_key,
                             charge_id=outcome.charge_id, status=outcome.status, amount=amount, currency=currency,
                             decline_code=outcome.decline_code, brand=payment_method.brand,
                             last4=payment_method.last4, description=description, created_at=now)
        try:
            record.save(condition=PaymentItem.SK.does_not_exist())
            return outcome
        except PutError as error:
            if not is_condition_failure(error):
                raise
        # a retry: the first attempt's outcome stands (never a second charge)
        stored = PaymentItem.get(keys.payment_pk(idempotency_key), keys.PAYMENT_SK, consistent_read=True)
        return Charge(stored.charge_id, stored.status, int(stored.amount), stored.currency, stored.decline_code)
