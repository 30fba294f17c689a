"""Team routes (JWT): balances, notices, usage reports, alerts, invoices, payments, members and cancelling,
one router per area."""
import alerts_routes
import balances_routes
import invoices_routes
import members_routes
import payments_routes
import subscriptions_routes
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from usage_ledger.http.api import new_resolver, resolve
from usage_ledger.http.identity import team_guard

logger = Logger()
app = new_resolver()
AREAS = (balances_routes.routes, invoices_routes.routes, payments_routes.routes, alerts_routes.routes,
         members_routes.routes, subscriptions_routes.routes)
for area in AREAS:
    app.include_router(area.router)
guard = team_guard(*AREAS)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event, context):
    return resolve(app, event, context, guard=guard)
