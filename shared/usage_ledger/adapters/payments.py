"""The card processor: Stripe through its official SDK (localstripe stands in locally and in tests).

The secret key comes from Secrets Manager through Powertools' parameters utility, fetched on first
use and cached for the container's life; the SDK and the key are only loaded by functions that
actually reach the processor.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from usage_ledger.domain.billing import AUTHENTICATION_REQUIRED, DECLINED, SUCCEEDED, Charge, ProcessorIntent, Refund
from usage_ledger.domain.errors import ForgedEvent, PaymentMethodRejected, ProcessorUnavailable
from usage_ledger.domain.model import PaymentMethod

# (connect, read) seconds per request: a card update makes at most 3 requests and one charge per
# failed invoice, so each call ends well inside the 30 s team API with room to record the outcome;
# a slower answer is an outage, never a decline
TIMEOUT_SECONDS = (2.0, 6.0)
# no SDK retries: each would reach a processor that ignores idempotency keys (localstripe) as a new
# charge; the attempt record (claimed per invoice and attempt, read back from the processor when
# taken over) is the one retry mechanism
NETWORK_RETRIES = 0
NEEDS_CUSTOMER = AUTHENTICATION_REQUIRED  # a charge the customer must be present for fails the attempt
WEBHOOK_TOLERANCE_SECONDS = 300  # an event signed longer ago than this is refused (a replay)


def secret_from_secrets_manager(name: str) -> Callable[[], str]:
    def read() -> str:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_secret(name, max_age=3600)).strip()

    return read


class StripeGateway:
    def __init__(self, api_base: str, secret_key: Callable[[], str], publishable_key: str,
                 webhook_secret: Callable[[], str] | None = None) -> None:
        self.api_base, self._secret_key, self.publishable_key = api_base.rstrip("/"), secret_key, publishable_key
        self._webhook_secret = webhook_secret
        self._client: Any = None
        self.max_call_seconds = float(sum(TIMEOUT_SECONDS))

    @property
    def client(self) -> Any:
        if self._client is None:
            import stripe

            self._client = stripe.StripeClient(
                self._secret_key(), base_addresses={"api": self.api_base}, max_network_retries=NETWORK_RETRIES,
                http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
            ).v1
        return self._client

    # -------------------------------------------------------------- cards

    def save_card(self, payment_method_id: str, *, customer_id: str | None,
                  reference: str) -> tuple[str, PaymentMethod]:
        import stripe

        with _processor_errors():
            try:
                found = self.client.payment_methods.retrieve(payment_method_id)
            except stripe.InvalidRequestError as error:
                raise PaymentMethodRejected(f"The processor does not know payment method {payment_method_id!r}.") \
                    from error
            if found.type != "card" or not getattr(found, "card", None):
                raise PaymentMethodRejected(f"Payment method {payment_method_id!r} is not a card.")
            owner = getattr(found, "customer", None)
            if owner is not None and owner != customer_id:
                # another customer's card (another team's): refused as if unknown, nothing of it
                # shown, and left attached where it is
                raise PaymentMethodRejected(f"The processor does not know payment method {payment_method_id!r}.")
            if customer_id is None:
                customer = self.client.customers.create(
                    params={"description": reference, "metadata": {"reference": reference}},
                    options={"idempotency_key": f"customer-{reference}"})
                customer_id = customer.id
            try:
                attached = self.client.payment_methods.attach(payment_method_id, params={"customer": customer_id})
            except stripe.InvalidRequestError as error:
                raise PaymentMethodRejected(f"Payment method {payment_method_id!r} cannot be attached: "
                                            f"{error.user_message or error.code or 'refused'}.") from error
        assert customer_id is not None  # created above when the subscription had none
        return customer_id, _card(attached)

    def setup_intent(self, customer_id: str) -> str:
        with _processor_errors():
            intent = self.client.setup_intents.create(
                params={"customer": customer_id, "payment_method_types": ["card"], "usage": "off_session"})
        return str(intent.client_secret)

    # -------------------------------------------------------------- charges

    def charge(self, *, idempotency_key: str, amount: int, currency: str, customer_id: str,
               payment_method: PaymentMethod, description: str,
               metadata: dict[str, str] | None = None) -> Charge:
        params = {"amount": amount, "currency": currency, "customer": customer_id,
                  "payment_method": payment_method.id, "off_session": True, "confirm": True,
                  # metadata rather than `description`, which localstripe refuses on PaymentIntents
                  "metadata": {**(metadata or {}), "idempotency_key": idempotency_key, "description": description}}
        return self._confirmed_intent(params, idempotency_key, payment_method).charge

    def charge_on_session(self, *, idempotency_key: str, amount: int, currency: str, customer_id: str,
                          payment_method: PaymentMethod, description: str,
                          metadata: dict[str, str] | None = None) -> ProcessorIntent:
        """A PaymentIntent confirmed with the customer present: it succeeds, is declined, or waits
        for the customer to authenticate (Stripe.js confirmCardPayment with its client secret)."""
        params = {"amount": amount, "currency": currency, "customer": customer_id,
                  "payment_method": payment_method.id, "confirm": True, "payment_method_types": ["card"],
                  "metadata": {**(metadata or {}), "idempotency_key": idempotency_key, "description": description,
                               "on_session": "true"}}
        return self._confirmed_intent(params, idempotency_key, payment_method)

    def _confirmed_intent(self, params: dict[str, Any], idempotency_key: str,
                          payment_method: PaymentMethod) -> ProcessorIntent:
        import stripe

        amount, currency = int(params["amount"]), str(params["currency"])
        with _processor_errors():
            try:
                intent = self.client.payment_intents.create(params=params,
                                                            options={"idempotency_key": idempotency_key})
            except stripe.CardError as error:
                details = error.error
                intent_id = getattr(getattr(details, "payment_intent", None), "id", None) if details else None
                code = (details.decline_code or details.code) if details else None
                return ProcessorIntent(Charge(intent_id or "", DECLINED, amount, currency, code or "card_declined"))
            except stripe.InvalidRequestError as error:  # e.g. the card was detached: this attempt fails
                return ProcessorIntent(Charge("", DECLINED, amount, currency, error.code or "invalid_request"))
        if intent.status == "succeeded":
            return ProcessorIntent(Charge(intent.id, SUCCEEDED, amount, currency, payment_method=payment_method),
                                   metadata=_metadata(intent))
        return ProcessorIntent(Charge(intent.id, DECLINED, amount, currency, NEEDS_CUSTOMER),
                               client_secret=str(intent.client_secret),
                               awaiting_customer=intent.status == "requires_action", metadata=_metadata(intent))

    def payment_intent(self, intent_id: str) -> ProcessorIntent | None:
        """A PaymentIntent as the processor now has it (None: unknown), with the card it charged."""
        import stripe

        with _processor_errors():
            try:
                intent = self.client.payment_intents.retrieve(intent_id)
            except stripe.InvalidRequestError:
                return None
            return self._intent(intent)

    def _intent(self, intent: Any) -> ProcessorIntent:
        amount, currency = int(intent.amount), str(intent.currency)
        metadata, customer = _metadata(intent), getattr(intent, "customer", None)
        status = intent.status
        if status == "succeeded":
            card = None
            if getattr(intent, "payment_method", None):
                card = _card(self.client.payment_methods.retrieve(str(intent.payment_method)))
            charge = Charge(intent.id, SUCCEEDED, amount, currency, payment_method=card)
        elif status == "requires_action":
            charge = Charge(intent.id, DECLINED, amount, currency, NEEDS_CUSTOMER)
        else:
            error = getattr(intent, "last_payment_error", None)
            code = (getattr(error, "decline_code", None) or getattr(error, "code", None)) if error else None
            charge = Charge(intent.id, DECLINED, amount, currency, code or "card_declined")
        return ProcessorIntent(charge, client_secret=str(intent.client_secret or ""),
                               awaiting_customer=status == "requires_action", metadata=metadata,
                               customer_id=str(customer) if customer else None, status=str(status))

    # -------------------------------------------------------------- processor events

    def processor_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event, verified by its Stripe-Signature against the webhook signing secret (within
        WEBHOOK_TOLERANCE_SECONDS of its timestamp): its id, type and object. ForgedEvent otherwise."""
        import stripe

        if self._webhook_secret is None:
            raise ProcessorUnavailable("No webhook signing secret is configured.")
        try:
            event = stripe.Webhook.construct_event(payload, signature, self._webhook_secret(),
                                                   tolerance=WEBHOOK_TOLERANCE_SECONDS)
        except (stripe.SignatureVerificationError, ValueError) as error:
            raise ForgedEvent(f"The event's signature does not verify: {error}") from error
        data = event.to_dict()
        return {"id": str(data.get("id") or ""), "type": str(data.get("type") or ""),
                "object": (data.get("data") or {}).get("object") or {}}

    def find_charge(self, *, customer_id: str, idempotency_key: str) -> Charge | None:
        """The outcome of a charge made earlier with this key, read back from the processor (its
        PaymentIntents carry the key in their metadata), or None when none was made. For an attempt
        whose maker died or timed out after charging: localstripe ignores idempotency keys, so a
        blind retry would charge twice."""
        import stripe

        with _processor_errors():
            try:
                listing = self.client.payment_intents.list(params={"customer": customer_id, "limit": 100})
                intents = listing.auto_paging_iter()
            except stripe.InvalidRequestError:
                # localstripe lists PaymentIntents but does not filter them by customer
                intents = (intent for intent in
                           self.client.payment_intents.list(params={"limit": 100}).auto_paging_iter()
                           if intent.customer == customer_id)
            found = [intent for intent in intents if _metadata(intent).get("idempotency_key") == idempotency_key]
        if not found:
            return None
        intent = max(found, key=lambda intent: intent.created)
        if intent.status in ("succeeded", "requires_payment_method", "requires_action"):
            with _processor_errors():
                return self._intent(intent).charge
        return None  # never confirmed, or canceled: nothing was charged


    # -------------------------------------------------------------- refunds

    def refund(self, *, idempotency_key: str, payment_intent: str, amount: int, metadata: dict[str, str]) -> Refund:
        """A Refund of `amount` of the PaymentIntent (no `reason`: Stripe's three do not cover ours,
        and localstripe refuses the field; ours is on the credit note)."""
        with _processor_errors():
            refund = self.client.refunds.create(
                params={"payment_intent": payment_intent, "amount": amount,
                        "metadata": {**metadata, "idempotency_key": idempotency_key}},
                options={"idempotency_key": idempotency_key})
        return Refund(str(refund.id), int(refund.amount), str(refund.status))

    def find_refund(self, *, payment_intent: str, idempotency_key: str) -> Refund | None:
        """A refund made earlier with this key (its metadata carries it), or None: for a claim taken
        over from a request that died after refunding (localstripe ignores idempotency keys)."""
        with _processor_errors():
            refunds = self.client.refunds.list(params={"payment_intent": payment_intent, "limit": 100})
            found = [refund for refund in refunds.auto_paging_iter()
                     if _metadata(refund).get("idempotency_key") == idempotency_key]
        if not found:
            return None
        return Refund(str(found[0].id), int(found[0].amount), str(found[0].status))


def _metadata(intent: Any) -> dict[str, Any]:
    metadata = getattr(intent, "metadata", None)
    return metadata.to_dict() if metadata is not None else {}


def _card(payment_method: Any) -> PaymentMethod:
    card = payment_method.card
    return PaymentMethod(id=payment_method.id, brand=str(card.brand), last4=str(card.last4),
                         exp_month=int(card.exp_month), exp_year=int(card.exp_year))


class _processor_errors:
    """Timeouts, 5xx, rate limits and authentication trouble are outages, never declines."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 _tb: Any) -> Literal[False]:  # raises an outage, never swallows
        if error is None or isinstance(error, PaymentMethodRejected):
            return False
        import stripe

        if isinstance(error, (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError,
                              stripe.AuthenticationError, stripe.PermissionError, stripe.IdempotencyError)):
            raise ProcessorUnavailable(f"The payment processor failed: {type(error).__name__}.") from error
        return False
