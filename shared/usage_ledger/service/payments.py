"""Payment routes (contract section 6): a SetupIntent for a new card, saving the card and retrying the
subscription's failed invoices on it, and paying one invoice now. Who may: domain.access (PAY)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from usage_ledger.domain.errors import Conflict, NotFound, PaymentMethodRejected, ValidationFailed
from usage_ledger.domain.model import Subscription
from usage_ledger.service.billing import Billing
from usage_ledger.service.confirmations import PaymentConfirmations
from usage_ledger.service.operator import card_view
from usage_ledger.service.ports import BillingStore, LedgerStore, PaymentGateway


class PaymentMethods:
    def __init__(self, ledger: LedgerStore, invoices: BillingStore, billing: Billing,
                 payments: PaymentGateway) -> None:
        self.ledger, self.invoices, self.billing, self.payments = ledger, invoices, billing, payments
        self.confirmations = PaymentConfirmations(billing, payments)

    def purchaser(self, team_id: str, path: dict[str, str]) -> str | None:
        """The purchaser of the payg subscription a payment route names (by its id, or by one of its
        invoices); None when the path names none of the team's."""
        subscription_id = path.get("subscription_id")
        if subscription_id is None and path.get("invoice_id"):
            invoice = self.invoices.get_invoice(team_id, path["invoice_id"])
            subscription_id = invoice.subscription_id if invoice else None
        subscription = self.ledger.subscription_by_id(team_id, subscription_id) if subscription_id else None
        return subscription.purchaser_user_id if subscription is not None and subscription.is_payg else None

    def _payg(self, team_id: str, subscription_id: str) -> Subscription:
        subscription = self.ledger.subscription_by_id(team_id, subscription_id)
        if subscription is None or not subscription.is_payg:
            raise NotFound(f"Team {team_id!r} has no payg subscription {subscription_id!r}.")
        return subscription

    def show(self, team_id: str, subscription_id: str) -> dict[str, Any]:
        """The card a payg subscription is charged to (as the processor described it when saved)."""
        subscription = self._payg(team_id, subscription_id)
        return {"subscription_id": subscription_id, "resource_id": subscription.resource_id,
                "purchaser_user_id": subscription.purchaser_user_id,
                "payment_method": card_view(subscription.payment_method)}

    def setup(self, team_id: str, subscription_id: str) -> dict[str, Any]:
        """A SetupIntent for the subscription's Customer, for Stripe.js to collect a new card."""
        subscription = self._payg(team_id, subscription_id)
        if subscription.customer_id is None:  # saved before the processor was wired in
            raise Conflict(f"Subscription {subscription_id!r} has no customer at the processor yet; "
                           "save a card with PUT .../payment-method first.")
        return {"client_secret": self.payments.setup_intent(subscription.customer_id),
                "publishable_key": self.payments.publishable_key}

    def update(self, team_id: str, subscription_id: str, payment_method_id: str, now: datetime,
               until: float | None = None) -> dict[str, Any]:
        """Attach the card to the subscription's Customer, save it (conditional on the subscription
        being the one read), then charge every failed invoice of the subscription once, on it, as
        long as a charge still fits before `until` (time.monotonic(): the function's own deadline)."""
        subscription = self._payg(team_id, subscription_id)
        try:
            customer_id, card = self.payments.save_card(
                payment_method_id, customer_id=subscription.customer_id,
                reference=f"{subscription.team_id}/{subscription.subscription_id}")
        except PaymentMethodRejected as error:
            raise ValidationFailed.single("payment_method", error.detail) from error
        if not self.ledger.set_payment_method(subscription, card, customer_id):
            raise Conflict(f"Subscription {subscription_id!r} changed while its card was saved; try again.")
        retried = self.billing.retry_failed_invoices(team_id, subscription_id, now, until)
        return {"subscription_id": subscription_id, "payment_method": card_view(card),
                "retried_invoices": [{"invoice_id": invoice.invoice_id, "status": invoice.status}
                                     for invoice in retried]}

    def pay(self, team_id: str, invoice_id: str, now: datetime) -> dict[str, Any]:
        """One charge attempt now; the invoice as it then stands (contract section 3), with
        `next_action` when the customer must confirm it (service/confirmations.py)."""
        return self.confirmations.pay(team_id, invoice_id, now)
