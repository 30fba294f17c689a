"""Pay-as-You-Go billing: due cycles -> one invoice, one charge, one email each; and reading invoices."""
# Every step is a conditional write, so a run that crashes, or two runs at once, never double-bill:
# 1. claim: the cycle item goes "open" -> "closing" with a lease (or a "closing" one whose lease
#    ran out is re-taken). Ingest only adds to "open" cycles, so the returned charged_units are final.
# 2. invoice: one item per (team, subscription, cycle) under a deterministic id, put if absent.
# 3. charge: through the PaymentGateway with an idempotency key derived from the invoice id; the
#    invoice goes "pending" -> "paid" | "payment_failed".
# 4. email: taken with a conditional `emailed` marker (in the same write that settles the invoice),
#    released if SES fails so the next run retries.
# 5. close: status "closed" and the cycle leaves GSI1 (the due-cycle index).
# A cycle whose run fails keeps its GSI1 entry and is picked up again once its lease is released.

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from usage_ledger import clock
from usage_ledger.adapters import dynamo, email, ledger_store
from usage_ledger.adapters.payments import LocalPaymentGateway, PaymentGateway
from usage_ledger.config import settings
from usage_ledger.domain.calendar import iso
from usage_ledger.domain.model import Member, PaymentMethod, Team
from usage_ledger.domain.money import format_minor_units
from usage_ledger.errors import LedgerError, NotFound, ValidationFailed

logger = Logger()

GSI1 = "GSI1"
OPEN, CLOSING, CLOSED = "open", "closing", "closed"
PENDING, PAID, PAYMENT_FAILED = "pending", "paid", "payment_failed"
SENDING, SENT, NO_RECIPIENT = "sending", "sent", "no_recipient"
MAX_LIMIT = 100
MAX_INVOICE_ID = 128  # far above the ids we issue, far below DynamoDB's key limit
DEFAULT_LIMIT = 50


@dataclass
class CloseSummary:
    closed: int = 0
    invoiced: int = 0
    payments_failed: int = 0
    failed: int = 0
    skipped: int = 0  # due, but another run holds it


def invoice_pk(team_id: str) -> str:
    return f"TEAM#{team_id}#INVOICE"


def invoice_id_for(team_id: str, subscription_id: str, cycle_index: int, period_end: str) -> str:
    """Deterministic, and sorts by period within the team: in_<YYYYMMDD of period_end>_<hash>."""
    digest = dynamo.stable_hash(team_id, subscription_id, str(cycle_index), length=16)
    return f"in_{period_end.replace('-', '')}_{digest}"


def charge_key(invoice_id: str) -> str:
    return f"{invoice_id}#charge"


# ------------------------------------------------------------------ close job


def due_cycle_keys(due_before: datetime) -> Iterator[dict[str, Any]]:
    """Keys of open or closing cycles whose end is at or before `due_before` (GSI1, every page)."""
    for item in dynamo.query_all(
        TableName=ledger_store.table(),
        IndexName=GSI1,
        KeyConditionExpression="GSI1PK = :open AND GSI1SK <= :due",
        ExpressionAttributeValues=dynamo.values({":open": ledger_store.OPEN_CYCLES, ":due": iso(due_before)}),
    ):
        yield {"PK": item["PK"], "SK": item["SK"]}


def close_due_cycles(now: datetime, *, grace: timedelta | None = None,
                     gateway: PaymentGateway | None = None) -> dict[str, int]:
    """Close every cycle due at `now`; one cycle's failure leaves it due and moves on."""
    if grace is None:
        grace = timedelta(minutes=settings().billing_grace_minutes)
    gateway = gateway or LocalPaymentGateway()
    token = uuid.uuid4().hex  # this run's lease token
    summary = CloseSummary()
    for key in due_cycle_keys(now - grace):
        try:
            _close_one(key, now, token, gateway, summary)
        except Exception:
            logger.exception("closing a billing cycle failed; it stays due", extra={"cycle": key})
            summary.failed += 1
            _release(key, token)
    return asdict(summary)


def _update(key: dict[str, Any], expression: str, condition: str, values: dict[str, Any],
            names: dict[str, str] | None = None, returns: str = "NONE") -> dict[str, Any] | None:
    """A conditional UpdateItem: the new item (if asked for), or None when the condition failed."""
    kwargs: dict[str, Any] = {
        "TableName": ledger_store.table(), "Key": dynamo.to_item(key), "UpdateExpression": expression,
        "ConditionExpression": condition, "ExpressionAttributeValues": dynamo.values(values),
        "ReturnValues": returns,
    }
    if names:
        kwargs["ExpressionAttributeNames"] = names
    try:
        response = dynamo.client().update_item(**kwargs)
    except ClientError as error:
        if dynamo.is_condition_failure(error):
            return None
        raise
    return dynamo.from_item(response.get("Attributes") or {})


def _claim(key: dict[str, Any], now: datetime, token: str) -> dict[str, Any] | None:
    """open -> closing (or re-take an expired lease); the cycle as it now stands, None if held."""
    return _update(
        key,
        "SET #status = :closing, lease_until = :lease, lease_token = :token",
        "attribute_exists(PK) AND (#status = :open OR (#status = :closing AND "
        "(attribute_not_exists(lease_until) OR lease_until < :now)))",
        {":closing": CLOSING, ":open": OPEN, ":lease": iso(clock.lease_until()), ":token": token, ":now": iso(clock.now())},
        names={"#status": "status"},
        returns="ALL_NEW",
    )


def _release(key: dict[str, Any], token: str) -> None:
    """Give up our lease so the next run retries the cycle at once (it stays "closing")."""
    try:
        _update(key, "REMOVE lease_until, lease_token", "lease_token = :token", {":token": token})
    except Exception:  # the lease then simply runs out
        logger.exception("could not release a cycle lease", extra={"cycle": key})


def _close_one(key: dict[str, Any], now: datetime, token: str, gateway: PaymentGateway,
               summary: CloseSummary) -> None:
    cycle = _claim(key, now, token)
    if cycle is None:
        summary.skipped += 1
        return
    invoice_id = None
    if int(cycle.get("charged_units", 0)) > 0:
        invoice, created = _issue_invoice(cycle, now)
        summary.invoiced += created
        invoice, failed = _collect(invoice, gateway, now, token)
        summary.payments_failed += failed
        _email(invoice, now, token)
        invoice_id = invoice["invoice_id"]
    closed = _update(
        key,
        "SET #status = :closed" + (", invoice_id = :invoice" if invoice_id else "")
        + " REMOVE GSI1PK, GSI1SK, lease_until, lease_token",
        "lease_token = :token",
        {":closed": CLOSED, ":token": token, **({":invoice": invoice_id} if invoice_id else {})},
        names={"#status": "status"},
    )
    if closed is None:  # our lease ran out and another run took over; it finishes idempotently
        logger.warning("lost a cycle lease before closing it", extra={"cycle": key})
        return
    summary.closed += 1


def _team_and_member(team_id: str, user_id: str | None) -> tuple[Team | None, Member | None]:
    """The team and the purchaser in one BatchGetItem."""
    pk = ledger_store.team_pk(team_id)
    keys = [{"PK": pk, "SK": "META"}] + ([{"PK": pk, "SK": f"MEMBER#{user_id}"}] if user_id else [])
    request = {ledger_store.table(): {"Keys": [dynamo.to_item(key) for key in keys], "ConsistentRead": True}}
    found: dict[str, dict[str, Any]] = {}
    while request:
        response = dynamo.client().batch_get_item(RequestItems=request)
        for item in response["Responses"].get(ledger_store.table(), []):
            value = dynamo.from_item(item)
            found[value["SK"]] = value
        request = response.get("UnprocessedKeys") or {}
    meta, member = found.get("META"), found.get(f"MEMBER#{user_id}")
    return (Team(team_id=team_id, name=meta["name"]) if meta else None,
            ledger_store.member_from_item(member) if member else None)


def _issue_invoice(cycle: dict[str, Any], now: datetime) -> tuple[dict[str, Any], bool]:
    """The cycle's one invoice: created now (True) or the one an earlier attempt created (False)."""
    team_id, resource_id = cycle["team_id"], cycle["resource_id"]
    subscription_id, index = cycle["subscription_id"], int(cycle["cycle_index"])
    subscription = ledger_store.get_subscription(team_id, resource_id, subscription_id)
    if subscription is None or not subscription.is_payg or subscription.payment_method is None:
        raise LedgerError(f"cycle {cycle['SK']} of team {team_id} has no payg subscription to bill")
    assert subscription.unit_amount is not None and subscription.currency is not None
    team, purchaser = _team_and_member(team_id, subscription.purchaser_user_id)
    resource = ledger_store.resource(resource_id)
    units = int(cycle["charged_units"])
    amount = units * subscription.unit_amount
    card = subscription.payment_method
    invoice_id = invoice_id_for(team_id, subscription_id, index, cycle["cycle_end"])
    invoice = {
        "PK": invoice_pk(team_id), "SK": invoice_id, "entity": "invoice",
        "invoice_id": invoice_id, "team_id": team_id, "subscription_id": subscription_id,
        "resource_id": resource_id, "cycle_index": index,
        "period_start": cycle["cycle_start"], "period_end": cycle["cycle_end"], "timezone": subscription.timezone,
        "lines": [{"resource_id": resource_id, "charged_units": units, "unit_amount": subscription.unit_amount,
                   "amount": amount}],
        "total": amount, "currency": subscription.currency, "status": PENDING, "issued_at": iso(now),
        # snapshots for rendering: an invoice shows who and what was billed when it was issued
        "team_name": team.name if team else team_id,
        "resource_name": resource.display_name if resource else resource_id,
        "unit": resource.unit if resource else "unit",
        "purchaser_user_id": subscription.purchaser_user_id,
        "purchaser_email": purchaser.email if purchaser else None,
        "payment_method": {"brand": card.brand, "last4": card.last4, "exp_month": card.exp_month,
                           "exp_year": card.exp_year},
    }
    try:
        dynamo.client().put_item(
            TableName=ledger_store.table(), Item=dynamo.to_item(invoice),
            ConditionExpression="attribute_not_exists(PK)", ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return invoice, True
    except ClientError as error:
        if not dynamo.is_condition_failure(error):
            raise
        existing = error.response.get("Item")
        if existing:
            return dynamo.from_item(existing), False
    stored = ledger_store.get_item(invoice["PK"], invoice_id)
    assert stored is not None
    return stored, False


def _collect(invoice: dict[str, Any], gateway: PaymentGateway, now: datetime,
             token: str) -> tuple[dict[str, Any], bool]:
    """Charge a pending invoice once; returns it settled and whether this call saw the payment fail.

    The write that settles it also takes the email guard (a pending invoice was never emailed),
    saving a request on the common path."""
    if invoice["status"] != PENDING:
        return invoice, False
    card = invoice["payment_method"]
    charge = gateway.charge(
        idempotency_key=charge_key(invoice["invoice_id"]), amount=int(invoice["total"]),
        currency=invoice["currency"],
        payment_method=PaymentMethod(card["brand"], card["last4"], int(card["exp_month"]), int(card["exp_year"])),
        description=f"Invoice {invoice['invoice_id']}", now=now,
    )
    status = PAID if charge.succeeded else PAYMENT_FAILED
    values: dict[str, Any] = {":status": status, ":pending": PENDING, ":charge": charge.charge_id,
                              ":at": iso(now), ":sending": SENDING, ":lease": iso(clock.lease_until()), ":token": token}
    expression = ("SET #status = :status, charge_id = :charge, settled_at = :at, "
                  "emailed = :sending, email_lease_until = :lease, email_token = :token")
    if charge.decline_code:
        expression += ", decline_code = :decline"
        values[":decline"] = charge.decline_code
    key = {"PK": invoice["PK"], "SK": invoice["SK"]}
    settled = _update(key, expression, "#status = :pending", values, names={"#status": "status"},
                      returns="ALL_NEW")
    if settled is None:  # settled by another run, with the same (idempotent) charge
        settled = ledger_store.get_item(invoice["PK"], invoice["SK"])
        assert settled is not None
        return settled, False
    return settled, status == PAYMENT_FAILED


def _email(invoice: dict[str, Any], now: datetime, token: str) -> None:
    """Send the invoice (or the payment-failed notice) once; released on failure so a retry sends it."""
    if invoice.get("emailed") in (SENT, NO_RECIPIENT):
        return
    key = {"PK": invoice["PK"], "SK": invoice["SK"]}
    if not (invoice.get("emailed") == SENDING and invoice.get("email_token") == token):  # not taken by _collect
        taken = _update(
            key, "SET emailed = :sending, email_lease_until = :lease, email_token = :token",
            "attribute_not_exists(emailed) OR (emailed = :sending AND "
            "(attribute_not_exists(email_lease_until) OR email_lease_until < :now))",
            {":sending": SENDING, ":lease": iso(clock.lease_until()), ":token": token, ":now": iso(clock.now())},
        )
        if taken is None:  # sent, or being sent by another run
            return
    recipient = invoice.get("purchaser_email")
    if not recipient:
        logger.warning("invoice has no purchaser to email", extra={"invoice_id": invoice["invoice_id"]})
        _update(key, "SET emailed = :none", "email_token = :token", {":none": NO_RECIPIENT, ":token": token})
        return
    try:
        subject, html, text = render_email(invoice)
        message_id = email.send([recipient], subject, html, text)
    except Exception:
        _update(key, "REMOVE emailed, email_lease_until, email_token", "email_token = :token", {":token": token})
        raise
    _update(key, "SET emailed = :sent, email_message_id = :message, emailed_at = :at REMOVE email_lease_until",
            "email_token = :token", {":sent": SENT, ":message": message_id, ":at": iso(now), ":token": token})


# ------------------------------------------------------------------ rendering


def _context(invoice: dict[str, Any]) -> dict[str, Any]:
    card = invoice.get("payment_method") or {}
    return {
        "invoice": invoice_view(invoice),
        "team_name": invoice.get("team_name") or invoice["team_id"],
        "resource_name": invoice.get("resource_name") or invoice["resource_id"],
        "unit": invoice.get("unit") or "unit",
        "purchaser_email": invoice.get("purchaser_email") or "",
        "card_brand": str(card.get("brand", "")).title(),
        "card_last4": card.get("last4", ""),
        "portal_url": settings().portal_base_url,
    }


def render_invoice_html(invoice: dict[str, Any]) -> str:
    return email.render("invoice.html", **_context(invoice))


def render_email(invoice: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, html, text): the invoice, or for a failed payment the notice to update the card."""
    context = _context(invoice)
    total = format_minor_units(int(invoice["total"]), invoice["currency"])
    if invoice["status"] == PAYMENT_FAILED:
        subject = f"Payment failed for invoice {invoice['invoice_id']} ({total}): please update your card"
        return subject, email.render("payment_failed.html", **context), email.render("payment_failed.txt", **context)
    subject = f"Your invoice {invoice['invoice_id']} for {total}"
    return subject, email.render("invoice.html", **context), email.render("invoice.txt", **context)


# ------------------------------------------------------------------ read side


def invoice_view(item: dict[str, Any]) -> dict[str, Any]:
    """An invoice as the API shows it (contract section 3)."""
    return {
        "invoice_id": item["invoice_id"],
        "subscription_id": item["subscription_id"],
        "period_start": item["period_start"],
        "period_end": item["period_end"],
        "lines": [{"resource_id": line["resource_id"], "charged_units": int(line["charged_units"]),
                   "unit_amount": int(line["unit_amount"]), "amount": int(line["amount"])}
                  for line in item["lines"]],
        "total": int(item["total"]),
        "currency": item["currency"],
        "status": item["status"],
        "issued_at": item["issued_at"],
    }


def get_invoice_item(team_id: str, invoice_id: str) -> dict[str, Any]:
    item = ledger_store.get_item(invoice_pk(team_id), invoice_id) if len(invoice_id) <= MAX_INVOICE_ID else None
    if item is None or item.get("entity") != "invoice":
        raise NotFound(f"Invoice {invoice_id!r} not found.")
    return item


def encode_cursor(key: dict[str, Any]) -> str:
    raw = json.dumps({"PK": key["PK"], "SK": key["SK"]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, team_id: str) -> dict[str, str]:
    """A cursor this team was given; anything else (garbage, another team's) is a 422 on `cursor`."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = None
    valid = (isinstance(key, dict) and set(key) == {"PK", "SK"} and key["PK"] == invoice_pk(team_id)
             and isinstance(key["SK"], str) and key["SK"].startswith("in_"))
    if not valid:
        raise ValidationFailed.single("cursor", "is not a cursor from this list")
    return key


def list_invoices(team_id: str, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> dict[str, Any]:
    """Newest first (ids sort by period end); asks for one more than `limit` to know if a next page exists."""
    kwargs: dict[str, Any] = {
        "TableName": ledger_store.table(),
        "KeyConditionExpression": "PK = :pk",
        "ExpressionAttributeValues": dynamo.values({":pk": invoice_pk(team_id)}),
        "ScanIndexForward": False,
        "Limit": limit + 1,
    }
    if cursor:
        kwargs["ExclusiveStartKey"] = dynamo.to_item(decode_cursor(cursor, team_id))
    response = dynamo.client().query(**kwargs)
    items = [dynamo.from_item(item) for item in response.get("Items", [])]
    page = items[:limit]
    next_cursor = None
    if len(items) > limit:
        next_cursor = encode_cursor(page[-1])
    elif "LastEvaluatedKey" in response:  # a short page (1 MB cap): continue where DynamoDB stopped
        next_cursor = encode_cursor(dynamo.from_item(response["LastEvaluatedKey"]))
    return {"items": [invoice_view(item) for item in page], "next_cursor": next_cursor}
