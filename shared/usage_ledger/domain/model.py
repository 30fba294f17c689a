"""The ledger's nouns: catalogue resources, teams, members, apps, subscriptions, usage events."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

RESOURCE_KINDS = ("resource", "api")
ROLES = ("primary_admin", "secondary_admin", "sso_admin", "hub_admin")
ADMIN_ROLES = frozenset({"primary_admin", "secondary_admin", "sso_admin"})
ALERT_MANAGER_ROLES = frozenset({"primary_admin", "secondary_admin"})
# consumption order across subscription types (contract section 1)
SUBSCRIPTION_TYPES = ("free", "token_flex", "flex", "payg")
PREPAID_TYPES = frozenset({"free", "token_flex", "flex"})
REFRESH_PERIODS = ("month", "year")


@dataclass(frozen=True)
class Resource:
    resource_id: str
    kind: str
    display_name: str
    unit: str
    charge_unit_size: Decimal
    low_balance_percent: Decimal = Decimal(10)


@dataclass(frozen=True)
class Team:
    team_id: str
    name: str


@dataclass(frozen=True)
class Member:
    team_id: str
    user_id: str
    email: str
    roles: frozenset[str]
    full_access: bool

    @property
    def is_admin(self) -> bool:
        return bool(self.roles & ADMIN_ROLES)

    @property
    def manages_alerts(self) -> bool:
        return bool(self.roles & ALERT_MANAGER_ROLES)

    @property
    def is_hub_admin(self) -> bool:
        return "hub_admin" in self.roles

    @property
    def is_primary_admin(self) -> bool:
        return "primary_admin" in self.roles


@dataclass(frozen=True)
class App:
    team_id: str
    app_id: str
    name: str
    owner_user_id: str


@dataclass(frozen=True)
class PaymentMethod:
    """A card PaymentMethod at the processor, as the processor describes it."""

    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class Subscription:
    team_id: str
    subscription_id: str
    resource_id: str
    type: str
    starts_at: datetime
    quantity: int | None = None
    ends_at: datetime | None = None
    refresh_period: str | None = None
    purchased_at: datetime | None = None
    timezone: str | None = None
    unit_amount: int | None = None
    currency: str | None = None
    purchaser_user_id: str | None = None
    payment_method: PaymentMethod | None = None
    customer_id: str | None = None  # the processor's Customer that holds the card (payg)
    # invoices of this subscription that are payment_failed or uncollectible: while any, payg is past_due
    past_due_invoices: frozenset[str] = frozenset()

    @property
    def is_past_due(self) -> bool:
        return bool(self.past_due_invoices)

    @property
    def is_payg(self) -> bool:
        return self.type == "payg"

    @property
    def is_prepaid(self) -> bool:
        return self.type in PREPAID_TYPES

    def is_active(self, at: datetime) -> bool:
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)

    def has_ended(self, at: datetime) -> bool:
        return self.ends_at is not None and self.ends_at <= at

    def consumption_rank(self) -> tuple:
        """Total order: type, soonest end (none last), earliest start, smallest id."""
        return (
            SUBSCRIPTION_TYPES.index(self.type),
            self.ends_at is None,
            self.ends_at or datetime.max.replace(tzinfo=self.starts_at.tzinfo),
            self.starts_at,
            self.subscription_id,
        )


def in_consumption_order(subscriptions: list[Subscription]) -> list[Subscription]:
    return sorted(subscriptions, key=Subscription.consumption_rank)


@dataclass(frozen=True)
class UsageEvent:
    source: str
    id: str
    team_id: str
    resource_id: str
    quantity: Decimal
    time: datetime
    user_id: str | None = None
    app_id: str | None = None


@dataclass(frozen=True)
class UsageBucket:
    """Actual usage of one resource in one UTC day or month (base units), in total and split by
    user and by app (None: usage recorded without one)."""

    period: str
    quantity: Decimal
    by_user: dict[str | None, Decimal]
    by_app: dict[str | None, Decimal]
