"""Ending a Pay as You Go subscription: its purchaser or a primary_admin (the guard checks CANCEL)."""
from usage_ledger import clock
from usage_ledger.bootstrap import container
from usage_ledger.domain.access import Action
from usage_ledger.http.api import json_response
from usage_ledger.http.identity import TeamRouter
from usage_ledger.http.params import PathId
from usage_ledger.http.responses import SubscriptionAnswer, ok

routes = TeamRouter()  # each route names its action; the guard checks it before validation
router = routes.router


@routes.post("/v1/teams/<team_id>/subscriptions/<subscription_id>/cancel", Action.CANCEL,
             responses=ok(SubscriptionAnswer))
def cancel_subscription(team_id: PathId, subscription_id: PathId):
    return json_response(container().cancellation.cancel(team_id, subscription_id, clock.now(), payg_only=True))
