"""Response bodies of the HTTP API as pydantic models: what each route's JSON answer holds, typed
as the server sends it (contract section 3), for the OpenAPI document only.

Handlers keep answering with `json_response` (exact decimals, RFC 3339 instants in UTC); these
models are never instantiated at run time. They are declared on the routes with `ok(...)` and
turned into JSON schemas by Powertools: numbers are numbers (a Decimal is a JSON `number`, never a
string), dates `format: date`, instants `format: date-time`, enums and nullables as sent, and
every object closed (`additionalProperties: false`), so a field the server adds or drops without
the document is caught by the schemathesis run (tests/e2e/test_schemathesis.py).
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

# a Decimal goes out as a plain JSON number, digit for digit (http.api.exact_number)
Number = Annotated[Decimal, WithJsonSchema({"type": "number"})]
Instant = Annotated[datetime, Field(description="RFC 3339, UTC (`Z`)")]
Cursor = Annotated[str | None, Field(description="pass back as `?cursor=` for the next page; null on the last page")]
Kind = Literal["resource", "api"]
Status = Literal["ok", "low", "exhausted"]
SubscriptionType = Literal["free", "token_flex", "flex", "payg"]
Role = Literal["primary_admin", "secondary_admin", "sso_admin", "hub_admin"]


class Answer(BaseModel):
    # defer_build: a model's validator is built when first used, so never in Lambda (these are the
    # OpenAPI document's only); built at import, the ~35 of them cost every HTTP cold start
    model_config = ConfigDict(extra="forbid", defer_build=True)


def ok(model: type[BaseModel], description: str = "OK", *, status: int = 200,
       also: dict[int, str] | None = None) -> dict[int, Any]:
    """A route's `responses=`: `model` as the JSON body of `status` (and of each status in `also`)."""
    statuses = {status: description, **(also or {})}
    return {code: {"description": text, "content": {"application/json": {"model": model}}}
            for code, text in statuses.items()}


# ------------------------------------------------------------------ operator (PUT / POST answers)
class CatalogueResource(Answer):
    resource_id: str
    kind: Kind
    display_name: str
    unit: str
    charge_unit_size: Number
    low_balance_percent: Number


class TeamAnswer(Answer):
    team_id: str
    name: str


class MemberAnswer(Answer):
    team_id: str
    user_id: str
    email: str
    roles: list[Role]
    full_access: bool


class AppAnswer(Answer):
    team_id: str
    app_id: str
    name: str
    owner_user_id: str


class CardOnFile(Answer):
    brand: str
    last4: Annotated[str, Field(pattern=r"^[0-9]{4}$")]
    exp_month: Annotated[int, Field(ge=1, le=12)]
    exp_year: int


class SubscriptionAnswer(Answer):
    team_id: str
    subscription_id: str
    resource_id: str
    type: SubscriptionType
    quantity: int | None
    starts_at: Instant
    ends_at: Instant | None
    refresh_period: Literal["month", "year"] | None
    purchased_at: Instant | None
    timezone: str | None
    unit_amount: int | None
    currency: str | None
    purchaser_user_id: str | None
    payment_method: CardOnFile | None


# ------------------------------------------------------------------ producer
class Entitlement(Answer):
    team_id: str
    resource_id: str
    allowed: bool
    available: int
    pending_usage: Number
    units_needed: int
    covered_by: Literal["prepaid", "payg"] | None
    status: Status
    as_of: Instant


# ------------------------------------------------------------------ team: balances and notices
class CardSubscription(Answer):
    subscription_id: str
    type: SubscriptionType
    available: Annotated[int | None, Field(description="null for payg")]
    total: Annotated[int | None, Field(description="null for payg")]
    starts_at: Instant
    ends_at: Instant | None
    refreshes_at: Instant | None
    purchaser_user_id: Annotated[str | None, Field(
        description="payg: the purchaser, who (with the team's primary admins) may see and change its card; "
                    "null otherwise")]
    timezone: Annotated[str | None, Field(
        description="payg: the IANA time zone of its billing cycles and invoices; null otherwise")]


class PaygCycle(Answer):
    subscription_id: str
    cycle_start: Annotated[date, Field(description="local date, inclusive")]
    cycle_end: Annotated[date, Field(description="local date, inclusive")]
    charged_units: int
    unit_amount: int | None
    amount: Annotated[int, Field(description="minor units")]
    currency: str | None
    status: Annotated[Literal["active", "past_due"], Field(
        description="past_due while a payg invoice of the resource is payment_failed or uncollectible")]
    ends_at: Annotated[Instant | None, Field(
        description="when the subscription ends (cancelled: the time of the request); its last cycle ends then, "
                    "and an ended payg stays on the card until that cycle is closed into its final invoice")]


class BalanceCard(Answer):
    resource_id: str
    kind: Kind
    display_name: str
    unit: str
    charge_unit_size: Number
    available: int
    total: int
    total_purchased: int
    pending_usage: Number
    shortfall_units: int
    status: Status
    ends_at: Instant | None
    ends_in_days: int | None
    refreshes_at: Instant | None
    refreshes_in_days: int | None
    days_remaining: int | None
    projected_depletion_date: date | None
    subscriptions: list[CardSubscription]
    payg: PaygCycle | None


class Balances(Answer):
    team_id: str
    as_of: Instant
    balances: list[BalanceCard]


class Balance(BalanceCard):
    """One card, with the team and the time it was read."""

    team_id: str
    as_of: Instant


class Banner(Answer):
    level: Literal["warning", "error"]
    message: str
    resource_ids: list[str]


class Notices(Answer):
    banner: Banner | None
    as_of: Instant


# ------------------------------------------------------------------ team: usage report
class ResourceKey(Answer):
    resource_id: str


class UserKey(Answer):
    user_id: Annotated[str | None, Field(description="null: usage recorded without a user")]


class AppKey(Answer):
    app_id: Annotated[str | None, Field(description="null: usage recorded without an app")]


class UsagePoint(Answer):
    period: Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$",
                                 description="YYYY-MM-DD (day) or YYYY-MM (month), UTC")]
    quantity: Annotated[Number, Field(description="base units")]


class UsageSeries(Answer):
    key: ResourceKey | UserKey | AppKey
    points: list[UsagePoint]


class UsageReport(Answer):
    from_: Annotated[date, Field(alias="from")]
    to: date
    granularity: Literal["day", "month"]
    group_by: Literal["resource", "user", "app"]
    as_of: Instant
    series: list[UsageSeries]
    next_cursor: Cursor
    resource_id: Annotated[str | SkipJsonSchema[None], Field(description="when the report was asked for one")] = None


# ------------------------------------------------------------------ team: members, alerts, invoices
class MemberItem(Answer):
    user_id: str
    email: str
    roles: list[Role]


class Members(Answer):
    items: list[MemberItem]
    next_cursor: Cursor


class MyTeam(Answer):
    team_id: str
    name: str
    roles: list[Role]


class Me(Answer):
    user_id: str
    teams: list[MyTeam]


class Alert(Answer):
    alert_id: str
    name: str
    windows_days: list[Literal[10, 5]]
    resource_ids: list[str]
    recipient_user_ids: list[str]
    ineligible_recipient_user_ids: Annotated[list[str], Field(description="recipients no longer admins of the team")]
    created_by: str
    created_at: Instant


class Alerts(Answer):
    items: list[Alert]
    next_cursor: Cursor


class InvoiceLine(Answer):
    resource_id: str
    charged_units: int
    unit_amount: int
    amount: int


class PaidWith(Answer):
    id: Annotated[str, Field(description="the Stripe PaymentMethod id")]
    brand: str
    last4: Annotated[str, Field(pattern=r"^[0-9]{4}$")]
class RefundAnswer(Answer):
    id: Annotated[str, Field(description="the processor's Refund")]
    amount: int
    status: str


CreditNoteReason = Literal["duplicate", "fraudulent", "order_change", "product_unsatisfactory", "other"]


class CreditNoteSummary(Answer):
    credit_note_id: str
    number: Annotated[int, Field(description="the team's credit notes numbered 1, 2, 3, ... in the order issued")]
    amount: int
    reason: CreditNoteReason
    refund: Annotated[RefundAnswer | None, Field(description="on a paid invoice; null on an unpaid one")]
    issued_at: Instant


class CreditNote(Answer):
    credit_note_id: str
    number: int
    invoice_id: str
    amount: Annotated[int, Field(description="minor units")]
    currency: str
    reason: CreditNoteReason
    memo: str | None
    refund: Annotated[RefundAnswer | None, Field(description="the processor's Refund (paid invoices), else null")]
    issued_at: Instant


class Invoice(Answer):
    invoice_id: str
    number: Annotated[int | None, Field(description="the team's invoices numbered 1, 2, 3, ... in the order issued")]
    subscription_id: str
    period_start: Annotated[date, Field(description="local date, inclusive")]
    period_end: Annotated[date, Field(description="local date, inclusive")]
    lines: list[InvoiceLine]
    total: Annotated[int, Field(description="minor units")]
    currency: str
    status: Literal["open", "paid", "payment_failed", "uncollectible", "void"]
    attempt_count: int
    next_payment_attempt: Annotated[Instant | None, Field(description="when the next automatic retry is due")]
    paid_at: Instant | None
    issued_at: Instant
    paid_with: Annotated[PaidWith | None, Field(description="the card that paid it; null while unpaid")]
    action_required: Annotated[bool, Field(description="unpaid, and its last failed attempt needs the customer "
                                                       "to authenticate (POST .../pay, then Stripe.js)")]


class NextAction(Answer):
    type: Literal["confirm_payment"]
    client_secret: Annotated[str, Field(description="of a PaymentIntent made on session, for Stripe.js "
                                                    "confirmCardPayment")]
    publishable_key: Annotated[str, Field(description="the Stripe publishable key for Stripe.js")]


class PaidInvoice(Invoice):
    """POST .../invoices/{invoice_id}/pay: the invoice after the attempt."""
    next_action: Annotated[NextAction | None, Field(description="present when the customer must confirm the "
                                                                "payment on the page (3-D Secure)")] = None
    amount_due: Annotated[int, Field(description="the total less credit notes while unpaid; 0 once paid or void")]
    credited: Annotated[int, Field(description="what the invoice's credit notes add up to (minor units)")]
    credit_notes: list[CreditNoteSummary]


class Invoices(Answer):
    items: list[Invoice]
    next_cursor: Cursor


# ------------------------------------------------------------------ team: payment routes (contract section 6)
class SetupIntentAnswer(Answer):
    client_secret: Annotated[str, Field(description="the SetupIntent's client secret, for Stripe.js")]
    publishable_key: Annotated[str, Field(description="the Stripe publishable key for Stripe.js")]


class SavedCard(CardOnFile):
    id: Annotated[str, Field(description="the Stripe PaymentMethod id")]


class CurrentPaymentMethod(Answer):
    """GET /teams/{team_id}/subscriptions/{subscription_id}: a payg subscription's card, for the
    purchaser or a primary admin (who may change it)."""
    subscription_id: str
    resource_id: str
    purchaser_user_id: str | None
    payment_method: Annotated[SavedCard | None, Field(description="null when no card is saved")]


class RetriedInvoice(Answer):
    invoice_id: str
    status: Literal["open", "paid", "payment_failed", "uncollectible"]


class PaymentMethodAnswer(Answer):
    subscription_id: str
    payment_method: SavedCard
    retried_invoices: Annotated[list[RetriedInvoice], Field(
        description="each payment_failed or uncollectible invoice of the subscription, charged once on the new card")]
