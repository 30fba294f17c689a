"""Producer routes (IAM): usage events in, and the entitlement check on a producer's hot path."""
from typing import Annotated

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from usage_ledger import clock
from usage_ledger.bootstrap import container
from usage_ledger.http.api import json_body, json_response, new_resolver, resolve
from usage_ledger.http.events import body_rules, record_usage
from usage_ledger.http.identity import require_operator
from usage_ledger.http.params import PathId
from usage_ledger.http.responses import Entitlement, ok
from usage_ledger.http.schemas import Accepted, entitlement_quantity

logger = Logger()
metrics = Metrics()
app = new_resolver()


@app.post("/v1/events", responses=ok(Accepted, "Accepted: every event is queued", status=202))
def post_events():
    command = record_usage(json_body(app), app.current_event.headers, clock.now())
    accepted = container().ingest.accept(command)
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=accepted)
    return json_response({"accepted": accepted}, 202)


@app.get("/v1/teams/<team_id>/entitlements/<resource_id>", responses=ok(Entitlement))
def get_entitlement(team_id: PathId, resource_id: PathId,
                    quantity: Annotated[str | None, Query(
                        description="base units, a whole number; default one charged unit",
                        json_schema_extra={"pattern": "^[0-9]{1,20}$"})] = None):
    answer = container().balances.entitlement(team_id, resource_id, entitlement_quantity(quantity), clock.now())
    # the staleness a producer accepts, set by the EntitlementMaxAgeSeconds template parameter
    cache = f"private, max-age={container().settings.entitlement_max_age_seconds}"
    return json_response(answer, headers={"Cache-Control": cache})


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event, context):
    return resolve(app, event, context, guard=require_operator, body_rules=body_rules)
