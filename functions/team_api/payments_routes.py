"""Payment routes: a SetupIntent for a new card, saving the card (which retries failed invoices on
it) and paying an invoice now. The purchaser or a primary_admin only (the guard checks PAY)."""
import time
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body
from usage_ledger import clock
from usage_ledger.bootstrap import container
from usage_ledger.domain.access import Action
from usage_ledger.http.api import json_response
from usage_ledger.http.identity import TeamRouter
from usage_ledger.http.params import PathId
from usage_ledger.http.responses import (
    CurrentPaymentMethod,
    PaidInvoice,
    PaymentMethodAnswer,
    SetupIntentAnswer,
    ok,
)
from usage_ledger.http.schemas import PaymentMethodUpdateBody

routes = TeamRouter()  # each route names its action; the guard checks it before validation
router = routes.router
UNAVAILABLE = {503: {"description": "The payment processor is unavailable; nothing was written. Retry after "
                                    "the Retry-After header's seconds."}}


# not GET .../payment-method: the producers' policy (GET /v1/teams/*/entitlements/*, where IAM's *
# spans slashes) would match a subscription named "entitlements" there
@routes.get("/v1/teams/<team_id>/subscriptions/<subscription_id>", Action.PAY,
            responses=ok(CurrentPaymentMethod))
def get_payment_method(team_id: PathId, subscription_id: PathId):
    return json_response(container().payment_methods.show(team_id, subscription_id))


@routes.post("/v1/teams/<team_id>/subscriptions/<subscription_id>/payment-method/setup", Action.PAY,
             responses={**ok(SetupIntentAnswer), **UNAVAILABLE})
def setup_payment_method(team_id: PathId, subscription_id: PathId):
    return json_response(container().payment_methods.setup(team_id, subscription_id))


@routes.put("/v1/teams/<team_id>/subscriptions/<subscription_id>/payment-method", Action.PAY,
            responses={**ok(PaymentMethodAnswer), **UNAVAILABLE})
def update_payment_method(team_id: PathId, subscription_id: PathId,
                          body: Annotated[PaymentMethodUpdateBody, Body()]):
    # the function's deadline: a slow processor leaves the remaining invoices to the schedule
    # rather than time the call out after the card was saved
    until = time.monotonic() + router.lambda_context.get_remaining_time_in_millis() / 1000
    return json_response(container().payment_methods.update(team_id, subscription_id, body.payment_method,
                                                            clock.now(), until))


@routes.post("/v1/teams/<team_id>/invoices/<invoice_id>/pay", Action.PAY,
             responses={**ok(PaidInvoice), **UNAVAILABLE})
def pay_invoice(team_id: PathId, invoice_id: str):  # any unknown id, however odd, is a 404
    return json_response(container().payment_methods.pay(team_id, invoice_id, clock.now()))
