"""Request bodies of the HTTP API as strict pydantic models (the OpenAPI document comes from these)."""
from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from usage_ledger.domain import commands
from usage_ledger.domain.calendar import parse_instant
from usage_ledger.domain.ids import IDENTIFIER, new_subscription_id
from usage_ledger.domain.model import Member, Subscription
from usage_ledger.domain.money import is_currency
from usage_ledger.domain.text import NOT_UNICODE, is_storable

# instants a subscription may carry: wide enough for any real contract, narrow enough that cycle
# and refresh arithmetic (and RFC 3339 rendering) never leaves datetime's range
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _printable(value: str) -> str:
    """Names end up in email subjects and invoices: no control characters (C0, C1, DEL) or lone
    surrogates, whatever the script."""
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise ValueError("must not contain control characters")
    return value


Identifier = Annotated[StrictStr, Field(pattern=IDENTIFIER)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200), AfterValidator(_printable)]


class Strict(BaseModel):
    # defer_build: built on the first request that validates one, so a cold start builds only the
    # body model of the route it serves, not every route's
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


def _instant(value: str) -> str:
    try:
        instant = parse_instant(value)
    except (ValueError, OverflowError) as error:  # an offset can push year 1 or 9999 out of range
        raise ValueError(f"must be an RFC 3339 timestamp with an offset ({error})") from None
    if not EARLIEST <= instant < LATEST:
        raise ValueError(f"must be in the years {EARLIEST.year} to {LATEST.year - 1}")
    return value


# what zoneinfo finds that is not a tz database zone or link: the machine's own zone ("localtime",
# a link to /etc/localtime), the default rules for POSIX TZ strings ("posixrules") and the
# placeholder zone of tz's "factory" file (Factory); posix/ and right/ are copies in other forms
NOT_IANA_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1)
def time_zones() -> frozenset[str]:
    """The IANA time zone names a subscription may take: the tz database's zones and links as
    zoneinfo lists them (`UTC`, `Etc/GMT+5` and `US/Pacific` included), without the names above."""
    return frozenset(name for name in available_timezones()
                     if name not in NOT_IANA_ZONES and not name.startswith(("posix/", "right/")))


class ResourceBody(Strict):
    resource_id: Identifier | None = None
    kind: Literal["resource", "api"]
    display_name: Name
    unit: Name
    # JSON numbers only (a string is refused): documented as numbers, their defaults as numbers
    charge_unit_size: Annotated[Decimal, Field(gt=0, le=10**9, decimal_places=6, strict=False,
                                               json_schema_extra={"default": 1}),
                                WithJsonSchema({"type": "number", "exclusiveMinimum": 0,
                                                "maximum": 10**9})] = Decimal(1)
    low_balance_percent: Annotated[Decimal, Field(ge=0, le=100, decimal_places=6, strict=False,
                                                  json_schema_extra={"default": 10}),
                                   WithJsonSchema({"type": "number", "minimum": 0, "maximum": 100})] = Decimal(10)

    @field_validator("charge_unit_size", "low_balance_percent", mode="before")
    @classmethod
    def _numbers_only(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ValueError("must be a JSON number")
        return value

    def command(self, resource_id: str) -> commands.PutResource:
        return commands.PutResource(resource_id=resource_id, kind=self.kind, display_name=self.display_name,
                                    unit=self.unit, charge_unit_size=self.charge_unit_size,
                                    low_balance_percent=self.low_balance_percent,
                                    declared_resource_id=self.resource_id)


class TeamBody(Strict):
    name: Name

    def command(self, team_id: str) -> commands.PutTeam:
        return commands.PutTeam(team_id=team_id, name=self.name)


class MemberBody(Strict):
    email: Annotated[StrictStr, Field(max_length=254)]
    roles: list[Literal["primary_admin", "secondary_admin", "sso_admin", "hub_admin"]] = Field(max_length=4)
    full_access: StrictBool = False

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        try:  # one address, as RFC 5322 and email-validator read it (no list, no display name)
            validate_email(value, check_deliverability=False)
        except EmailNotValidError:
            raise ValueError("must be one email address") from None
        return value

    @field_validator("roles")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a role")
        return value

    def command(self, team_id: str, user_id: str) -> commands.PutMember:
        return commands.PutMember(team_id=team_id, user_id=user_id, email=self.email, roles=tuple(self.roles),
                                  full_access=self.full_access)


class AppBody(Strict):
    name: Name
    owner_user_id: Identifier

    def command(self, team_id: str, app_id: str) -> commands.PutApp:
        return commands.PutApp(team_id=team_id, app_id=app_id, name=self.name, owner_user_id=self.owner_user_id)


PaymentMethodId = Annotated[StrictStr, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_]+$",
                                              description="a Stripe PaymentMethod id (`pm_...`) of a card")]


class PaymentMethodBody(Strict):
    id: PaymentMethodId


class PaymentMethodUpdateBody(Strict):
    """PUT .../payment-method: the card Stripe.js collected (contract section 6)."""

    payment_method: PaymentMethodId


class CreditNoteBody(Strict):
    """POST /admin/teams/{team_id}/invoices/{invoice_id}/credit-notes (contract section 7)."""

    credit_note_id: Identifier | None = None
    amount: Annotated[StrictInt, Field(gt=0, le=10**12, description="minor units")]
    reason: Literal["duplicate", "fraudulent", "order_change", "product_unsatisfactory", "other"]
    memo: Annotated[StrictStr, Field(max_length=500), AfterValidator(_printable)] | None = None

    def command(self, team_id: str, invoice_id: str) -> commands.IssueCreditNote:
        return commands.IssueCreditNote(team_id=team_id, invoice_id=invoice_id, amount=self.amount,
                                        reason=self.reason, memo=self.memo, credit_note_id=self.credit_note_id)


INSTANT = {"format": "date-time", "description": f"RFC 3339 with an offset, years {EARLIEST.year}-{LATEST.year - 1}"}


class SubscriptionBody(Strict):
    subscription_id: Identifier | None = None
    resource_id: Identifier
    type: Literal["free", "token_flex", "flex", "payg"]
    quantity: Annotated[StrictInt, Field(gt=0, le=10**12)] | None = None
    starts_at: Annotated[StrictStr, Field(json_schema_extra=INSTANT)]
    ends_at: Annotated[StrictStr, Field(json_schema_extra=INSTANT)] | None = None
    refresh_period: Literal["month", "year"] | None = None
    purchased_at: Annotated[StrictStr, Field(json_schema_extra=INSTANT)] | None = None
    timezone: StrictStr | None = None
    unit_amount: Annotated[StrictInt, Field(ge=0, le=10**12)] | None = None
    currency: StrictStr | None = None
    purchaser_user_id: Identifier | None = None
    payment_method: PaymentMethodBody | None = None

    _starts = field_validator("starts_at")(lambda cls, v: _instant(v))
    _ends = field_validator("ends_at", "purchased_at")(lambda cls, v: v if v is None else _instant(v))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        # a known key, never a path handed to the filesystem (directories, "..", very long names)
        if value is not None and value not in time_zones():
            raise ValueError("must be an IANA time zone such as Europe/Paris")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is not None and not is_currency(value):
            raise ValueError("must be an ISO 4217 code in lower case, such as usd")
        return value

    def command(self, team_id: str) -> commands.CreateSubscription:
        return commands.CreateSubscription(Subscription(
            team_id=team_id, subscription_id=self.subscription_id or new_subscription_id(),
            resource_id=self.resource_id, type=self.type,
            quantity=self.quantity, starts_at=parse_instant(self.starts_at),
            ends_at=parse_instant(self.ends_at) if self.ends_at else None, refresh_period=self.refresh_period,
            purchased_at=parse_instant(self.purchased_at) if self.purchased_at else None, timezone=self.timezone,
            unit_amount=self.unit_amount, currency=self.currency, purchaser_user_id=self.purchaser_user_id,
        ), payment_method_id=self.payment_method.id if self.payment_method else None)


class AlertBody(Strict):
    name: Name
    windows_days: Annotated[list[Literal[10, 5]], Field(min_length=1, max_length=2)]
    resource_ids: Annotated[list[Identifier], Field(min_length=1, max_length=100)]
    recipient_user_ids: Annotated[list[Identifier], Field(min_length=1, max_length=100)]

    def command(self, team_id: str, caller: Member) -> commands.CreateAlert:
        return commands.CreateAlert(team_id=team_id, caller=caller, name=self.name,
                                    windows_days=tuple(self.windows_days), resource_ids=tuple(self.resource_ids),
                                    recipient_user_ids=tuple(self.recipient_user_ids))


# ------------------------------------------------------------------ usage events (POST /v1/events)
# One model set validates events and describes them in the OpenAPI document. Each field's own
# check runs first and says what is wrong in the API's words; the Field constraints after it then
# never fail, and give the document its limits.
EVENT_MAX_QUANTITY = Decimal(10) ** 12
EVENT_MAX_DECIMALS = 6
EVENT_FUTURE_TOLERANCE = timedelta(days=1)
EVENT_HISTORY_LIMIT = timedelta(days=730)


def _checked_text(value: object, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters")
    if not is_storable(value):
        raise ValueError(NOT_UNICODE)
    return value


def _event_text(limit: int) -> BeforeValidator:
    return BeforeValidator(lambda value: _checked_text(value, limit))


def _exactly(expected: str) -> BeforeValidator:
    def check(value: object) -> object:
        if value != expected:
            raise ValueError(f'must be "{expected}"')
        return value

    return BeforeValidator(check)


def _event_quantity(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError("must be a JSON number of base units")
    try:
        quantity = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError("must be a number") from None
    if not quantity.is_finite() or quantity <= 0:
        raise ValueError("must be greater than 0")
    if quantity > EVENT_MAX_QUANTITY:
        raise ValueError(f"must be at most {EVENT_MAX_QUANTITY}")
    if quantity.as_tuple().exponent < -EVENT_MAX_DECIMALS:  # type: ignore[operator]
        raise ValueError(f"must have at most {EVENT_MAX_DECIMALS} decimal places")
    return quantity.normalize()


def _event_time(value: object, info: ValidationInfo) -> object:
    """RFC 3339 with an offset, within the last 24 months and at most a day ahead of `now` (the
    validation context)."""
    text = _checked_text(value, 64)
    try:
        when = parse_instant(text)
    except ValueError as error:
        raise ValueError(f"must be an RFC 3339 timestamp with an offset ({error})") from None
    now = (info.context or {}).get("now")
    if now is not None and when > now + EVENT_FUTURE_TOLERANCE:
        raise ValueError("must not be more than a day in the future")
    if now is not None and when < now - EVENT_HISTORY_LIMIT:
        raise ValueError("must be within the last 24 months")
    return when


EventText = Annotated[str, Field(min_length=1)]


class UsageData(BaseModel):
    resource_id: Annotated[EventText, _event_text(128), Field(max_length=128, description="a catalogue resource")]
    quantity: Annotated[Decimal, BeforeValidator(_event_quantity),
                        Field(gt=0, le=EVENT_MAX_QUANTITY, decimal_places=EVENT_MAX_DECIMALS,
                              description=f"base units, a JSON number (at most {EVENT_MAX_DECIMALS} decimal places)"),
                        WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": int(EVENT_MAX_QUANTITY)})]
    user_id: Annotated[EventText, _event_text(128), Field(max_length=128)] | None = None
    app_id: Annotated[EventText, _event_text(128), Field(max_length=128)] | None = None


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow")  # CloudEvents extension attributes are allowed

    specversion: Annotated[Literal["1.0"], _exactly("1.0")]
    id: Annotated[EventText, _event_text(256), Field(max_length=256)]
    source: Annotated[EventText, _event_text(512), Field(max_length=512)]
    type: Annotated[Literal["usage.recorded"], _exactly("usage.recorded")]
    subject: Annotated[EventText, _event_text(128), Field(max_length=128, description="an existing team_id")]
    time: Annotated[datetime, BeforeValidator(_event_time),
                    Field(description="RFC 3339 with an offset; within the last 24 months, at most a day ahead")]
    data: UsageData


class Accepted(BaseModel):
    """202 of POST /v1/events."""

    model_config = ConfigDict(extra="forbid")

    accepted: Annotated[int, Field(ge=1, le=100)]


class ProblemFieldError(BaseModel):
    path: Annotated[str, Field(description="the field, e.g. `[3].data.quantity` or `payment_method.exp_month`")]
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details: every error response."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldError] | None = Field(default=None, description="validation failures only")


MAX_ENTITLEMENT_QUANTITY = Decimal(10) ** 12


def entitlement_quantity(raw: str | None) -> Decimal | None:
    """`?quantity=N`: ASCII digits only (Decimal alone would take "1e3", " 5" or a full-width "５")."""
    from usage_ledger.domain.errors import ValidationFailed

    if raw is None:
        return None
    quantity = Decimal(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 20 else Decimal(0)
    if quantity <= 0:
        raise ValidationFailed.single("quantity", "must be a positive whole number of base units")
    if quantity > MAX_ENTITLEMENT_QUANTITY:
        raise ValidationFailed.single("quantity", f"must be at most {MAX_ENTITLEMENT_QUANTITY}")
    return quantity
