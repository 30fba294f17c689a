"""What callers ask the use cases to do: plain values, parsed and checked for shape at the edge."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from usage_ledger.domain.errors import FieldError
from usage_ledger.domain.model import Member, Subscription, UsageEvent


@dataclass(frozen=True)
class PutResource:
    resource_id: str
    kind: str
    display_name: str
    unit: str
    charge_unit_size: Decimal
    low_balance_percent: Decimal
    declared_resource_id: str | None = None  # the body's own resource_id, if it gave one


@dataclass(frozen=True)
class PutTeam:
    team_id: str
    name: str


@dataclass(frozen=True)
class PutMember:
    team_id: str
    user_id: str
    email: str
    roles: tuple[str, ...]
    full_access: bool


@dataclass(frozen=True)
class PutApp:
    team_id: str
    app_id: str
    name: str
    owner_user_id: str


@dataclass(frozen=True)
class CreateSubscription:
    """A grant as the operator gave it (its id generated at the edge when none was given)."""

    subscription: Subscription  # without its card: the processor describes it when it is saved
    payment_method_id: str | None = None


@dataclass(frozen=True)
class CreateAlert:
    team_id: str
    caller: Member
    name: str
    windows_days: tuple[int, ...]
    resource_ids: tuple[str, ...]
    recipient_user_ids: tuple[str, ...]


@dataclass(frozen=True)
class RecordUsage:
    """A request's usage events, each with the path prefix that names it in errors (`[3].`), and
    what the edge already found wrong with the request (all or nothing: reported together)."""

    events: tuple[tuple[str, UsageEvent], ...]
    invalid: tuple[FieldError, ...] = field(default=())


@dataclass(frozen=True)
class IssueCreditNote:
    team_id: str
    invoice_id: str
    amount: int  # minor units, > 0
    reason: str
    memo: str | None = None
    credit_note_id: str | None = None  # generated when not given
