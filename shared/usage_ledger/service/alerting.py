"""Run-out alerts: create, list and delete them, and evaluate them (plus API low/exhausted notices)."""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from usage_ledger import clock
from usage_ledger.adapters import dynamo, email, ledger_store
from usage_ledger.adapters.ledger_store import TeamSnapshot
from usage_ledger.config import settings
from usage_ledger.domain.balance import Projection, project
from usage_ledger.domain.calendar import iso
from usage_ledger.domain.model import Member, Resource
from usage_ledger.errors import Conflict, FieldError, NotFound, ValidationFailed
from usage_ledger.http.schemas import AlertBody

logger = Logger(child=True)

ALERTS_INDEX = "ALERT"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
ALERT_ID = re.compile(r"^al_[0-9]{13}_[0-9a-f]{8}$")
# a transaction also carries the alert and its config item
STATES_PER_DELETE = dynamo.MAX_TRANSACTION_ITEMS - 2


def alerts_pk(team_id: str) -> str:
    return f"{ledger_store.team_pk(team_id)}#ALERT"


def alert_sk(alert_id: str) -> str:
    return f"ALERT#{alert_id}"


def config_sk(config_hash: str) -> str:
    return f"CONFIG#{config_hash}"


def window_state_sk(alert_id: str, resource_id: str, window: int) -> str:
    return f"STATE#{alert_id}#{resource_id}#{window}"


def api_state_sk(resource_id: str, status: str) -> str:
    return f"STATE#API#{resource_id}#{status}"


def new_alert_id(now: datetime) -> str:
    """Time-sortable, so newest first is a reverse Query of the partition."""
    return f"al_{int(now.timestamp() * 1000):013d}_{os.urandom(4).hex()}"


def config_hash(windows: Iterable[int], resource_ids: Iterable[str], recipients: Iterable[str]) -> str:
    """The same sets in any order, whatever the name, hash alike."""
    canonical = json.dumps([sorted(set(windows)), sorted(set(resource_ids)), sorted(set(recipients))])
    return dynamo.stable_hash(canonical)


def _view(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "alert_id": item["alert_id"],
        "name": item["name"],
        "windows_days": sorted((int(w) for w in item["windows_days"]), reverse=True),
        "resource_ids": sorted(item["resource_ids"]),
        "recipient_user_ids": sorted(item["recipient_user_ids"]),
        "created_by": item["created_by"],
        "created_at": item["created_at"],
    }


# ------------------------------------------------------------------ create, read, delete


def _body_errors(snapshot: TeamSnapshot, body: AlertBody, now: datetime) -> list[FieldError]:
    errors = []
    for index, resource_id in enumerate(body.resource_ids):
        ledger = snapshot.resources.get(resource_id)
        if ledger is None or not any(not s.has_ended(now) for s in ledger.subscriptions):
            errors.append(FieldError(f"resource_ids[{index}]", "must be a resource the team has a subscription to"))
    for index, user_id in enumerate(body.recipient_user_ids):
        member = snapshot.members.get(user_id)
        if member is None or not member.is_admin:
            errors.append(FieldError(f"recipient_user_ids[{index}]", "must be an admin of the team"))
    return errors


def create_alert(team_id: str, caller: Member, body: AlertBody, now: datetime) -> dict[str, Any]:
    snapshot = ledger_store.load_team(team_id, everything=True)
    errors = _body_errors(snapshot, body, now)
    if errors:
        raise ValidationFailed(errors)
    windows, resources, recipients = set(body.windows_days), set(body.resource_ids), set(body.recipient_user_ids)
    digest = config_hash(windows, resources, recipients)
    alert_id = new_alert_id(now)
    item = {
        "PK": alerts_pk(team_id), "SK": alert_sk(alert_id), "entity": "alert",
        "GSI1PK": ALERTS_INDEX, "GSI1SK": f"{team_id}#{alert_id}",
        "team_id": team_id, "alert_id": alert_id, "name": body.name,
        "windows_days": sorted(windows, reverse=True), "resource_ids": sorted(resources),
        "recipient_user_ids": sorted(recipients), "config_hash": digest,
        "created_by": caller.user_id, "created_at": iso(now),
    }
    guard = {"PK": alerts_pk(team_id), "SK": config_sk(digest), "entity": "alert_config", "alert_id": alert_id}
    items = [
        {"Put": {"TableName": ledger_store.table(), "Item": dynamo.to_item(guard),
                 "ConditionExpression": "attribute_not_exists(PK)"}},
        {"Put": {"TableName": ledger_store.table(), "Item": dynamo.to_item(item),
                 "ConditionExpression": "attribute_not_exists(PK)"}},
    ]
    for attempt in range(5):
        try:
            dynamo.client().transact_write_items(TransactItems=items)
            return _view(item)
        except ClientError as error:
            codes = dynamo.cancellation_codes(error)
            if "ConditionalCheckFailed" in codes:
                break
            # a racing transaction on the same config item: retry, the loser then sees the guard
            if "TransactionConflict" not in codes or attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    existing = ledger_store.get_item(alerts_pk(team_id), config_sk(digest))
    detail = f" (alert {existing['alert_id']!r})" if existing else ""
    raise Conflict(f"An alert with the same windows, resources and recipients already exists{detail}.")


def get_alert(team_id: str, alert_id: str) -> dict[str, Any]:
    item = ledger_store.get_item(alerts_pk(team_id), alert_sk(alert_id)) if ALERT_ID.match(alert_id) else None
    if item is None:
        raise NotFound(f"Alert {alert_id!r} not found.")
    return _view(item)


def _encode_cursor(team_id: str, alert_id: str) -> str:
    raw = json.dumps({"t": team_id, "a": alert_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(team_id: str, cursor: str) -> str:
    """The alert id to continue after; a cursor from another team or a forged one is refused."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        alert_id = decoded["a"]
        if decoded["t"] != team_id or not isinstance(alert_id, str) or not ALERT_ID.match(alert_id):
            raise ValueError(alert_id)
        return alert_id
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise ValidationFailed.single("cursor", "is not a cursor of this list") from None


def list_alerts(team_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "TableName": ledger_store.table(),
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
        "ExpressionAttributeValues": dynamo.values({":pk": alerts_pk(team_id), ":prefix": "ALERT#"}),
        "ScanIndexForward": False,
        "ConsistentRead": True,
        # one more than asked tells whether a next page exists
        "Limit": limit + 1,
    }
    if cursor is not None:
        after = _decode_cursor(team_id, cursor)
        kwargs["ExclusiveStartKey"] = dynamo.to_item({"PK": alerts_pk(team_id), "SK": alert_sk(after)})
    items = [dynamo.from_item(item) for item in dynamo.client().query(**kwargs).get("Items", [])]
    page = [_view(item) for item in items[:limit]]
    more = len(items) > limit
    return {"items": page, "next_cursor": _encode_cursor(team_id, page[-1]["alert_id"]) if more else None}


def delete_alert(team_id: str, alert_id: str) -> None:
    """The alert, its config item and its state items go together."""
    if not ALERT_ID.match(alert_id):
        raise NotFound(f"Alert {alert_id!r} not found.")
    item = ledger_store.get_item(alerts_pk(team_id), alert_sk(alert_id))
    if item is None:
        raise NotFound(f"Alert {alert_id!r} not found.")
    states = [state["SK"] for state in dynamo.query_all(
        TableName=ledger_store.table(),
        KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
        ExpressionAttributeValues=dynamo.values({":pk": alerts_pk(team_id), ":prefix": f"STATE#{alert_id}#"}),
        ProjectionExpression="SK",
        ConsistentRead=True,
    )]

    def delete(sk: str, condition: str | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"TableName": ledger_store.table(),
                                   "Key": dynamo.to_item({"PK": alerts_pk(team_id), "SK": sk})}
        if condition:
            request["ConditionExpression"] = condition
        return {"Delete": request}

    first, rest = states[:STATES_PER_DELETE], states[STATES_PER_DELETE:]
    try:
        dynamo.client().transact_write_items(TransactItems=[
            delete(alert_sk(alert_id), "attribute_exists(PK)"), delete(config_sk(item["config_hash"])),
            *(delete(sk) for sk in first)])
    except ClientError as error:
        if "ConditionalCheckFailed" in dynamo.cancellation_codes(error):
            raise NotFound(f"Alert {alert_id!r} not found.") from None
        raise
    # more states than one transaction holds: the alert is gone, so leftovers are inert
    for start in range(0, len(rest), dynamo.MAX_TRANSACTION_ITEMS):
        dynamo.client().transact_write_items(
            TransactItems=[delete(sk) for sk in rest[start:start + dynamo.MAX_TRANSACTION_ITEMS]])


# ------------------------------------------------------------------ evaluation


@dataclass
class Outcome:
    teams: int = 0
    emails_sent: int = 0
    send_failures: int = 0
    failed_teams: int = 0


@dataclass
class _TeamView:
    """What one evaluation knows about a team: two Queries' worth."""

    team_id: str
    snapshot: TeamSnapshot
    alerts: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)


def teams_to_evaluate() -> list[str]:
    """Teams with an alert or an api balance, read from GSI1 (never a Scan)."""
    teams: set[str] = set()
    for index_pk in (ALERTS_INDEX, ledger_store.API_RESOURCES_INDEX):
        for key in dynamo.query_all(
            TableName=ledger_store.table(), IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues=dynamo.values({":pk": index_pk}),
        ):
            # GSI1SK is "<team>#<alert or resource>"; ids never contain '#'
            teams.add(key["GSI1SK"].split("#", 1)[0])
    return sorted(teams)


def _load(team_id: str) -> _TeamView:
    view = _TeamView(team_id, ledger_store.load_team(team_id, everything=True))
    for item in dynamo.query_all(
        TableName=ledger_store.table(),
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues=dynamo.values({":pk": alerts_pk(team_id)}),
        ConsistentRead=True,
    ):
        if item["SK"].startswith("ALERT#"):
            view.alerts.append(item)
        elif item["SK"].startswith("STATE#"):
            view.states[item["SK"]] = item
    return view


def _armed(view: _TeamView, sk: str) -> bool:
    state = view.states.get(sk)
    return state is None or bool(state.get("armed", True))


def _due(view: _TeamView, sk: str) -> bool:
    """Armed, or claimed by a run that died before it sent (its lease has run out)."""
    state = view.states.get(sk)
    if _armed(view, sk):
        return True
    assert state is not None
    return state.get("sent") is False and state.get("lease_until", "") < iso(clock.now())


def _claim(team_id: str, sk: str, claim: str) -> bool:
    """Claim the notification; of two evaluations at once only one wins. The claim holds a lease:
    if this run dies before it sends, a run after the lease takes the notification over."""
    wall = clock.now()
    try:
        ledger_store.put_item(
            {"PK": alerts_pk(team_id), "SK": sk, "entity": "alert_state", "armed": False, "sent": False,
             "claim": claim, "claimed_at": iso(wall), "lease_until": iso(clock.lease_until())},
            condition="attribute_not_exists(SK) OR armed = :true OR (sent = :false AND lease_until < :now)",
            expression_values={":true": True, ":false": False, ":now": iso(wall)},
        )
        return True
    except ClientError as error:
        if dynamo.is_condition_failure(error):
            return False
        raise


def _mark_sent(team_id: str, sk: str, claim: str, message_id: str) -> None:
    """Record the send under our claim; a claim re-armed or taken over meanwhile is left alone.
    If the record cannot be written, the email still went out: log it and go on with the team
    (the claim's lease runs out and a later run sends it again: at least once, never lost)."""
    try:
        dynamo.client().update_item(
            TableName=ledger_store.table(), Key=dynamo.to_item({"PK": alerts_pk(team_id), "SK": sk}),
            UpdateExpression="SET sent = :true, sent_at = :now, message_id = :message REMOVE lease_until",
            ConditionExpression="claim = :claim",
            ExpressionAttributeValues=dynamo.values({":true": True, ":now": iso(clock.now()),
                                                     ":message": message_id, ":claim": claim}))
    except ClientError as error:
        if not dynamo.is_condition_failure(error):
            logger.exception("sent, but could not record it; a later run may send it again",
                             extra={"state": sk, "message_id": message_id})
    except BotoCoreError:
        logger.exception("sent, but could not record it; a later run may send it again",
                         extra={"state": sk, "message_id": message_id})


def _rearm(team_id: str, sk: str, claim: str | None = None) -> None:
    """Absent means armed. With a claim, only delete that claim: our own after a failed send, or
    the one this evaluation read (a newer claim by a concurrent run is not ours to undo)."""
    condition, expression_values = ("claim = :claim", {":claim": claim}) if claim else (
        "armed = :false", {":false": False})
    try:
        dynamo.client().delete_item(
            TableName=ledger_store.table(), Key=dynamo.to_item({"PK": alerts_pk(team_id), "SK": sk}),
            ConditionExpression=condition, ExpressionAttributeValues=dynamo.values(expression_values))
    except ClientError as error:
        if not dynamo.is_condition_failure(error):
            raise


def _rearm_seen(view: _TeamView, sk: str) -> None:
    """The projection left the window: re-arm the claim this evaluation read, if any."""
    if not _armed(view, sk):
        _rearm(view.team_id, sk, view.states[sk].get("claim"))


def _notify(view: _TeamView, sk: str, recipients: list[str], template: str, subject: str,
            context: dict[str, Any], now: datetime, outcome: Outcome) -> None:
    if not recipients or not _due(view, sk):
        return
    claim = os.urandom(8).hex()
    if not _claim(view.team_id, sk, claim):
        return
    try:
        message_id = email.send(recipients, subject, email.render(f"{template}.html", **context),
                                email.render(f"{template}.txt", **context))
    except (ClientError, BotoCoreError):
        logger.exception("email failed; re-arming so the next run retries", extra={"state": sk})
        outcome.send_failures += 1
        _rearm(view.team_id, sk, claim)
        return
    outcome.emails_sent += 1
    _mark_sent(view.team_id, sk, claim, message_id)


def _context(view: _TeamView, resource: Resource, projection: Projection) -> dict[str, Any]:
    team = view.snapshot.team
    return {
        "team_name": team.name if team else view.team_id,
        "resource_name": resource.display_name,
        "unit": resource.unit,
        "available": projection.available,
        "total": projection.total,
        "status": projection.status,
        "days_remaining": projection.days_remaining,
        "projected_date": projection.projected_depletion_date.isoformat()
        if projection.projected_depletion_date else None,
        "balances_url": f"{settings().portal_base_url}/#/teams/{view.team_id}/balances",
    }


def _days_left(days: int) -> str:
    if days == 0:
        return "capacity has run out"
    return f"about {days} day{'s' if days != 1 else ''} of capacity left"


def _emails(view: _TeamView, user_ids: Iterable[str]) -> list[str]:
    members = view.snapshot.members
    return sorted({members[user_id].email for user_id in user_ids if user_id in members})


def _evaluate_alerts(view: _TeamView, projections: dict[str, tuple[Resource, Projection]], now: datetime,
                     outcome: Outcome) -> None:
    for alert in view.alerts:
        # recipients who left the team or lost their admin role no longer hear about it
        recipients = _emails(view, (u for u in alert["recipient_user_ids"]
                                    if u in view.snapshot.members and view.snapshot.members[u].is_admin))
        for resource_id in alert["resource_ids"]:
            resource, projection = projections.get(resource_id, (None, None))
            days = projection.days_remaining if projection else None
            for window in sorted((int(w) for w in alert["windows_days"]), reverse=True):
                sk = window_state_sk(alert["alert_id"], resource_id, window)
                if days is None or days > window:
                    _rearm_seen(view, sk)
                    continue
                assert resource is not None and projection is not None
                context = {**_context(view, resource, projection), "alert_name": alert["name"],
                           "window_days": window}
                subject = f"{resource.display_name}: {_days_left(days)} ({alert['name']})"
                _notify(view, sk, recipients, "alert_runout", subject, context, now, outcome)


def _evaluate_api_status(view: _TeamView, projections: dict[str, tuple[Resource, Projection]], now: datetime,
                         outcome: Outcome) -> None:
    snapshot = view.snapshot
    hub_admins = [member.user_id for member in snapshot.members.values() if member.is_hub_admin]
    recipients = _emails(view, [*hub_admins, *(app.owner_user_id for app in snapshot.apps.values())])
    for resource_id, (resource, projection) in sorted(projections.items()):
        if resource.kind != "api":
            continue
        for status, recovered in (("low", projection.status == "ok"), ("exhausted", projection.status != "exhausted")):
            sk = api_state_sk(resource_id, status)
            if recovered:
                _rearm_seen(view, sk)
            elif projection.status == status:
                subject = (f"{resource.display_name} API balance is running low" if status == "low"
                           else f"{resource.display_name} API balance is used up")
                _notify(view, sk, recipients, "api_status", subject, _context(view, resource, projection), now,
                        outcome)


def _projections(snapshot: TeamSnapshot, now: datetime) -> dict[str, tuple[Resource, Projection]]:
    """Resources that have a card (a subscription that has not ended), as GET /balances shows them."""
    result = {}
    for resource_id, ledger in snapshot.resources.items():
        resource = ledger_store.resource(resource_id)
        if resource is None or not any(not s.has_ended(now) for s in ledger.subscriptions):
            continue
        result[resource_id] = (resource, project(resource, ledger.subscriptions, ledger.state, now))
    return result


def evaluate_team(team_id: str, now: datetime, outcome: Outcome) -> None:
    view = _load(team_id)
    projections = _projections(view.snapshot, now)
    _evaluate_alerts(view, projections, now, outcome)
    _evaluate_api_status(view, projections, now, outcome)
    outcome.teams += 1


class EvaluationFailed(Exception):
    """Some teams could not be evaluated; the others were. Raised so that the invocation fails:
    Lambda retries it (claims make that safe) and the function's error alarm sees it."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"{outcome.failed_teams} team(s) failed, {outcome.teams} evaluated")
        self.outcome = outcome


def evaluate(now: datetime, team_ids: Iterable[str] | None = None) -> Outcome:
    """The scheduled run (every team with alerts or api balances) or a stream run (the given teams).
    One team's failure (a throttled read, say) does not hold up the others; the run then fails."""
    outcome = Outcome()
    first_error: Exception | None = None
    for team_id in sorted(set(team_ids)) if team_ids is not None else teams_to_evaluate():
        try:
            evaluate_team(team_id, now, outcome)
        except Exception as error:
            logger.exception("evaluating a team's alerts failed", extra={"team_id": team_id})
            outcome.failed_teams += 1
            first_error = first_error or error
    if first_error is not None:
        raise EvaluationFailed(outcome) from first_error
    return outcome
