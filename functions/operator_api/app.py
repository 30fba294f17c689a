"""Operator routes (IAM): catalogue, teams, members, apps, subscriptions (and ending them), credit notes."""
from typing import Annotated

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from usage_ledger import clock
from usage_ledger.bootstrap import container
from usage_ledger.http.api import json_response, new_resolver, resolve
from usage_ledger.http.identity import require_operator
from usage_ledger.http.params import PathId
from usage_ledger.http.responses import (
    AppAnswer,
    CatalogueResource,
    CreditNote,
    MemberAnswer,
    SubscriptionAnswer,
    TeamAnswer,
    ok,
)
from usage_ledger.http.schemas import AppBody, CreditNoteBody, MemberBody, ResourceBody, SubscriptionBody, TeamBody
from usage_ledger.service.operator import Written

logger = Logger()
app = new_resolver()
REPLACED = {201: "Created"}


def _written(result: Written):
    return json_response(result.body, 201 if result.created else 200)


@app.put("/v1/admin/resources/<resource_id>", responses=ok(CatalogueResource, "Replaced", also=REPLACED))
def put_resource(resource_id: PathId, body: Annotated[ResourceBody, Body()]):
    return _written(container().operator.put_resource(body.command(resource_id)))


@app.put("/v1/admin/teams/<team_id>", responses=ok(TeamAnswer, "Replaced", also=REPLACED))
def put_team(team_id: PathId, body: Annotated[TeamBody, Body()]):
    return _written(container().operator.put_team(body.command(team_id)))


@app.put("/v1/admin/teams/<team_id>/members/<user_id>", responses=ok(MemberAnswer, "Replaced", also=REPLACED))
def put_member(team_id: PathId, user_id: PathId, body: Annotated[MemberBody, Body()]):
    return _written(container().operator.put_member(body.command(team_id, user_id)))


@app.put("/v1/admin/teams/<team_id>/apps/<app_id>", responses=ok(AppAnswer, "Replaced", also=REPLACED))
def put_app(team_id: PathId, app_id: PathId, body: Annotated[AppBody, Body()]):
    return _written(container().operator.put_app(body.command(team_id, app_id)))


@app.delete("/v1/admin/teams/<team_id>/members/<user_id>")
def remove_member(team_id: PathId, user_id: PathId):
    container().operator.remove_member(team_id, user_id)
    return Response(status_code=204)


@app.delete("/v1/admin/teams/<team_id>/apps/<app_id>")
def remove_app(team_id: PathId, app_id: PathId):
    container().operator.remove_app(team_id, app_id)
    return Response(status_code=204)


@app.post("/v1/admin/teams/<team_id>/subscriptions",
          responses=ok(SubscriptionAnswer, "The same subscription again (idempotent)", also=REPLACED))
def create_subscription(team_id: PathId, body: Annotated[SubscriptionBody, Body()]):
    return _written(container().operator.create_subscription(body.command(team_id)))


@app.post("/v1/admin/teams/<team_id>/subscriptions/<subscription_id>/cancel", responses=ok(SubscriptionAnswer))
def cancel_subscription(team_id: PathId, subscription_id: PathId):
    return json_response(container().cancellation.cancel(team_id, subscription_id, clock.now(), payg_only=False))


@app.post("/v1/admin/teams/<team_id>/invoices/<invoice_id>/credit-notes",
          responses={**ok(CreditNote, "The same credit note again (idempotent)", also=REPLACED),
                     503: {"description": "The payment processor is unavailable; the credit stands and its refund "
                                          "is owed: send the same request again."}})
def issue_credit_note(team_id: PathId, invoice_id: str, body: Annotated[CreditNoteBody, Body()]):
    note, created = container().credit_notes.issue(body.command(team_id, invoice_id), clock.now())
    return json_response(note.view(), 201 if created else 200)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event, context):
    return resolve(app, event, context, guard=require_operator)
