"""In-memory stand-ins for the ports of usage_ledger.service.ports: enough behaviour (conditions,
leases, claims) for the use cases to be tested without AWS, handed in through bootstrap.Container."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from usage_ledger.domain.alert import Alert, Notice, NoticeState
from usage_ledger.domain.billing import (
    CLOSED,
    CLOSING,
    SENDING,
    SENT,
    Charge,
    CycleRef,
    Invoice,
    InvoiceRef,
    PaygCycle,
)
from usage_ledger.domain.errors import PaymentMethodRejected, ProcessorUnavailable
from usage_ledger.domain.ledger import BalanceState, Debit, ResourceLedger, TeamSnapshot
from usage_ledger.domain.model import App, Member, PaymentMethod, Resource, Subscription, Team, UsageEvent
from usage_ledger.service.ports import Attachment, Commit


@dataclass
class FakeLedgerStore:
    resources: dict[str, Resource] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    memberships: dict[tuple[str, str], Member] = field(default_factory=dict)
    apps: dict[tuple[str, str], App] = field(default_factory=dict)
    subscriptions: dict[tuple[str, str], Subscription] = field(default_factory=dict)
    ledgers: dict[tuple[str, str], ResourceLedger] = field(default_factory=dict)
    member_reads: list[list[str]] = field(default_factory=list)  # the user ids each members() call asked for

    def catalogue(self, *, fresh: bool = False) -> dict[str, Resource]:
        return dict(self.resources)

    def resource(self, resource_id: str) -> Resource | None:
        return self.resources.get(resource_id)

    def put_resource(self, resource: Resource) -> bool | None:
        created = resource.resource_id not in self.resources
        self.resources[resource.resource_id] = resource
        return created

    def get_team(self, team_id: str) -> Team | None:
        return self.teams.get(team_id)

    def get_member(self, team_id: str, user_id: str) -> Member | None:
        return self.memberships.get((team_id, user_id))

    def team_and_member(self, team_id: str, user_id: str | None) -> tuple[Team | None, Member | None]:
        return self.teams.get(team_id), self.memberships.get((team_id, user_id or ""))

    def team_member_balance(self, team_id: str, user_id: str | None,
                            resource_id: str | None) -> tuple[Team | None, Member | None, BalanceState]:
        balance = self.ledger(team_id, resource_id).state if resource_id else BalanceState()
        return self.teams.get(team_id), self.memberships.get((team_id, user_id or "")), balance

    def existing_teams(self, team_ids: set[str]) -> set[str]:
        return {team_id for team_id in team_ids if team_id in self.teams}

    def put_team(self, team: Team) -> bool:
        created = team.team_id not in self.teams
        self.teams[team.team_id] = team
        return created

    def put_member(self, member: Member) -> bool:
        created = (member.team_id, member.user_id) not in self.memberships
        self.memberships[(member.team_id, member.user_id)] = member
        return created

    def put_app(self, app: App) -> bool:
        created = (app.team_id, app.app_id) not in self.apps
        self.apps[(app.team_id, app.app_id)] = app
        return created

    def delete_member(self, team_id: str, user_id: str) -> bool:
        return self.memberships.pop((team_id, user_id), None) is not None

    def delete_app(self, team_id: str, app_id: str) -> bool:
        return self.apps.pop((team_id, app_id), None) is not None

    def members_page(self, team_id: str, limit: int, cursor: str | None) -> tuple[list[Member], str | None]:
        """By user id; the cursor is the last user id of the page before (the real one is opaque)."""
        mine = sorted((m for (team, _), m in self.memberships.items() if team == team_id and
                       (cursor is None or m.user_id > cursor)), key=lambda m: m.user_id)
        page = mine[:limit]
        return page, page[-1].user_id if len(mine) > limit else None

    def teams_of(self, user_id: str, limit: int) -> list[tuple[Team, Member]]:
        return [(self.teams[team], member) for (team, user), member in sorted(self.memberships.items())
                if user == user_id and team in self.teams][:limit]

    def members(self, team_id: str, user_ids: Iterable[str]) -> dict[str, Member]:
        self.member_reads.append(sorted(set(user_ids)))
        return {user: self.memberships[(team_id, user)] for user in set(user_ids)
                if (team_id, user) in self.memberships}

    def create_subscription(self, subscription: Subscription, *, listed_for_alerts: bool) -> bool:
        key = (subscription.team_id, subscription.subscription_id)
        if key in self.subscriptions:
            return False
        self.subscriptions[key] = subscription
        self.ledger(subscription.team_id, subscription.resource_id).subscriptions.append(subscription)
        return True

    def subscription_by_id(self, team_id: str, subscription_id: str) -> Subscription | None:
        return self.subscriptions.get((team_id, subscription_id))

    def get_subscription(self, team_id: str, resource_id: str, subscription_id: str) -> Subscription | None:
        found = self.subscriptions.get((team_id, subscription_id))
        return found if found and found.resource_id == resource_id else None

    def ledger(self, team_id: str, resource_id: str) -> ResourceLedger:
        return self.ledgers.setdefault((team_id, resource_id), ResourceLedger(resource_id))

    def load_team(self, team_id: str, *, everything: bool = False, resource_id: str | None = None) -> TeamSnapshot:
        snapshot = TeamSnapshot(team=self.teams.get(team_id) if everything else None)
        for (team, rid), ledger in self.ledgers.items():
            if team == team_id and (resource_id is None or rid == resource_id):
                snapshot.resources[rid] = replace(ledger, subscriptions=list(ledger.subscriptions),
                                                  cycle_units=dict(ledger.cycle_units),
                                                  closed_cycles=set(ledger.closed_cycles),
                                                  closed_through=dict(ledger.closed_through))
        if everything:
            snapshot.members = {user: m for (team, user), m in self.memberships.items() if team == team_id}
            snapshot.apps = {app: a for (team, app), a in self.apps.items() if team == team_id}
        return snapshot


@dataclass
class FakeIngestStore:
    ledger: FakeLedgerStore
    claims: dict[tuple[str, str], str] = field(default_factory=dict)
    applied: set[tuple[str, str, str]] = field(default_factory=set)
    races_to_lose: int = 0  # the next commits that find the version moved
    usage: list[UsageEvent] = field(default_factory=list)
    set_aside_items: dict[tuple[str, str | None, str | None], tuple[list[UsageEvent], str]] = field(
        default_factory=dict)
    fail_commits_for: dict[str, BaseException] = field(default_factory=dict)  # team_id -> what its commits raise

    def claim(self, batch_id: str, events: list[UsageEvent], now: datetime) -> list[UsageEvent]:
        owned, seen = [], set()
        for event in events:
            key = (event.source, event.id)
            if key in seen or self.claims.setdefault(key, batch_id) != batch_id:
                continue
            seen.add(key)
            owned.append(event)
        return owned

    def claim_all(self, claims: Any, now: datetime) -> list[Any]:
        found: list[Any] = []
        for batch_id, events in claims:
            try:
                found.append(self.claim(batch_id, events, now))
            except Exception as error:  # noqa: BLE001 - as the store reports it
                found.append(error)
        return found

    def commit(self, batch_id: str, team_id: str, resource: Resource, ledger: ResourceLedger, debit: Debit,
               events: list[UsageEvent], now: datetime, *, also: Any = ()) -> Commit:
        batch_ids = [batch_id, *also]
        if any((marked, team_id, resource.resource_id) in self.applied for marked in batch_ids):
            return Commit.ALREADY_APPLIED
        if team_id in self.fail_commits_for:
            raise self.fail_commits_for[team_id]
        stored = self.ledger.ledger(team_id, resource.resource_id)
        if self.races_to_lose:
            self.races_to_lose -= 1
            return Commit.RACED
        if stored.state.version != ledger.state.version:
            return Commit.RACED
        stored.state = debit.state
        for key, units in debit.payg_by_cycle.items():
            stored.cycle_units[key] = stored.cycle_units.get(key, 0) + units
        self.applied.update((marked, team_id, resource.resource_id) for marked in batch_ids)
        self.usage.extend(events)
        return Commit.APPLIED

    def applied_batches(self, batch_ids: Any, team_id: str, resource_id: str) -> set[str]:
        return {batch_id for batch_id in batch_ids if (batch_id, team_id, resource_id) in self.applied}

    def commit_remaining_usage(self, *args: Any) -> None:
        pass

    def set_aside(self, batch_id: str, team_id: str | None, resource_id: str | None, events: list[UsageEvent],
                  reason: str, now: datetime) -> None:
        self.set_aside_items[(batch_id, team_id, resource_id)] = (list(events), reason)

    @staticmethod
    def must_retry(error: BaseException) -> bool:
        return isinstance(error, ConnectionError)  # the fake's "AWS is unavailable"


@dataclass
class FakeBillingStore:
    cycles: dict[CycleRef, PaygCycle] = field(default_factory=dict)
    leases: dict[CycleRef, tuple[str, datetime]] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    email_claims: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    attempt_claims: dict[str, tuple[str, datetime | None, int]] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)

    def add_cycle(self, cycle: PaygCycle) -> CycleRef:
        ref = CycleRef(cycle.team_id, cycle.resource_id, cycle.subscription_id, cycle.index)
        self.cycles[ref] = cycle
        return ref

    def due_cycles(self, due_before: datetime) -> Iterator[CycleRef]:
        return iter([ref for ref, cycle in self.cycles.items() if cycle.status != CLOSED
                     and cycle.ends_at <= due_before])

    def claim_cycle(self, ref: CycleRef, token: str, lease_until: datetime, now: datetime) -> PaygCycle | None:
        cycle = self.cycles[ref]
        held = self.leases.get(ref)
        if cycle.status == CLOSED or (cycle.status == CLOSING and held and held[1] >= now):
            return None
        self.cycles[ref] = cycle = replace(cycle, status=CLOSING)
        self.leases[ref] = (token, lease_until)
        return cycle

    def release_cycle(self, ref: CycleRef, token: str) -> None:
        if self.leases.get(ref, ("",))[0] == token:
            del self.leases[ref]

    def close_cycle(self, ref: CycleRef, token: str, invoice_id: str | None) -> bool:
        if self.leases.get(ref, ("",))[0] != token:
            return False
        self.cycles[ref] = replace(self.cycles[ref], status=CLOSED)
        del self.leases[ref]
        return True

    def issue(self, invoice: Invoice) -> tuple[Invoice, bool]:
        if invoice.invoice_id in self.invoices:
            return self.invoices[invoice.invoice_id], False
        number = self.numbers.get(invoice.team_id, 0) + 1
        self.numbers[invoice.team_id] = number
        self.invoices[invoice.invoice_id] = invoice = replace(invoice, number=number)
        return invoice, True

    def get_invoice(self, team_id: str, invoice_id: str) -> Invoice | None:
        found = self.invoices.get(invoice_id)
        return found if found and found.team_id == team_id else None

    def due_payments(self, now: datetime) -> Iterator[InvoiceRef]:
        return iter([InvoiceRef(i.team_id, i.invoice_id) for i in self.invoices.values()
                     if (due := i.work_due_at()) is not None and due <= now])

    def claim_attempt(self, invoice: Invoice, token: str, lease_until: datetime, now: datetime) -> tuple[bool, bool]:
        stored = self.invoices[invoice.invoice_id]
        number, claim = stored.attempt_count + 1, self.attempt_claims.get(invoice.invoice_id)
        if stored.attempt_count != invoice.attempt_count or (claim and claim[1] and claim[1] >= now):
            return False, False
        self.attempt_claims[invoice.invoice_id] = (token, lease_until, number)
        return True, bool(claim and claim[2] == number)

    def release_attempt(self, invoice: Invoice, token: str) -> None:
        claim = self.attempt_claims.get(invoice.invoice_id)
        if claim and claim[0] == token:
            self.attempt_claims[invoice.invoice_id] = ("", None, claim[2])

    def record_attempt(self, recorded: Invoice, token: str, lease_until: datetime) -> Invoice | None:
        claim = self.attempt_claims.get(recorded.invoice_id)
        if (not claim or claim[0] != token
                or self.invoices[recorded.invoice_id].attempt_count != recorded.attempt_count - 1):
            return None
        del self.attempt_claims[recorded.invoice_id]
        emailing = replace(recorded, email_status=SENDING, email_attempt=recorded.attempt_count)
        self.invoices[recorded.invoice_id] = emailing
        self.email_claims[recorded.invoice_id] = (token, lease_until)
        return emailing

    def claim_email(self, invoice: Invoice, token: str, lease_until: datetime, now: datetime) -> bool:
        stored = self.invoices[invoice.invoice_id]
        held = self.email_claims.get(invoice.invoice_id)
        if stored.emailed or (stored.email_attempt == stored.attempt_count and held and held[1] >= now):
            return False
        self.invoices[invoice.invoice_id] = replace(stored, email_status=SENDING, email_attempt=stored.attempt_count)
        self.email_claims[invoice.invoice_id] = (token, lease_until)
        return True

    def email_sent(self, invoice: Invoice, token: str, message_id: str, at: datetime) -> None:
        if self.email_claims.get(invoice.invoice_id, ("",))[0] == token:
            self.invoices[invoice.invoice_id] = replace(self.invoices[invoice.invoice_id], email_status=SENT)
            del self.email_claims[invoice.invoice_id]

    def email_has_no_recipient(self, invoice: Invoice, token: str) -> None:
        self.invoices[invoice.invoice_id] = replace(self.invoices[invoice.invoice_id], email_status="no_recipient")

    def release_email(self, invoice: Invoice, token: str) -> None:
        if self.email_claims.get(invoice.invoice_id, ("",))[0] == token:
            del self.email_claims[invoice.invoice_id]

    def list_invoices(self, team_id: str, limit: int, cursor: str | None) -> tuple[list[Invoice], str | None]:
        mine = sorted((i for i in self.invoices.values() if i.team_id == team_id), key=lambda i: i.invoice_id,
                      reverse=True)
        return mine[:limit], None


@dataclass
class FakeAlertStore:
    alerts: dict[str, Alert] = field(default_factory=dict)
    states: dict[tuple[str, Notice], NoticeState] = field(default_factory=dict)

    def create(self, alert: Alert) -> bool:
        if any(a.team_id == alert.team_id and a.config_hash == alert.config_hash for a in self.alerts.values()):
            return False
        self.alerts[alert.alert_id] = alert
        return True

    def alert_with_config(self, team_id: str, config_hash: str) -> str | None:
        return next((a.alert_id for a in self.alerts.values()
                     if a.team_id == team_id and a.config_hash == config_hash), None)

    def get(self, team_id: str, alert_id: str) -> Alert | None:
        found = self.alerts.get(alert_id)
        return found if found and found.team_id == team_id else None

    def page(self, team_id: str, limit: int, cursor: str | None) -> tuple[list[Alert], str | None]:
        return [a for a in self.alerts.values() if a.team_id == team_id][:limit], None

    def delete(self, alert: Alert) -> bool:
        return self.alerts.pop(alert.alert_id, None) is not None

    def teams_to_evaluate(self) -> list[str]:
        return sorted({alert.team_id for alert in self.alerts.values()})

    def load(self, team_id: str) -> tuple[list[Alert], dict[Notice, NoticeState]]:
        return ([a for a in self.alerts.values() if a.team_id == team_id],
                {notice: state for (team, notice), state in self.states.items() if team == team_id})

    def claim(self, team_id: str, notice: Notice, claim: str, now: datetime, lease_until: datetime) -> bool:
        state = self.states.get((team_id, notice))
        if state is not None and not state.is_due(now):
            return False
        self.states[(team_id, notice)] = NoticeState(armed=False, sent=False, claim=claim, lease_until=lease_until)
        return True

    def mark_sent(self, team_id: str, notice: Notice, claim: str, message_id: str, now: datetime) -> bool:
        state = self.states.get((team_id, notice))
        if state is None or state.claim != claim:
            return False
        self.states[(team_id, notice)] = replace(state, sent=True, lease_until=None)
        return True

    def rearm(self, team_id: str, notice: Notice, claim: str | None = None) -> None:
        state = self.states.get((team_id, notice))
        if state is not None and (state.claim == claim if claim else not state.armed):
            del self.states[(team_id, notice)]


@dataclass
class FakeMailer:
    sent: list[tuple[list[str], str]] = field(default_factory=list)
    attachments: list[tuple[Attachment, ...]] = field(default_factory=list)  # per message sent
    failures_left: int = 0

    def send(self, to: list[str], subject: str, html: str, text: str, attachments: Sequence[Attachment] = ()) -> str:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("SES unreachable")
        self.sent.append((to, subject))
        self.attachments.append(tuple(attachments))
        return f"msg-{len(self.sent)}"


class FakeRenderer:
    def render(self, name: str, **context: Any) -> str:
        return f"{name}: {sorted(context)}"

    def pdf(self, document: dict[str, Any]) -> bytes:
        return f"%PDF-fake {document['title']}".encode()


@dataclass
class FakeQueue:
    messages: list[list[UsageEvent]] = field(default_factory=list)

    def send(self, events: list[UsageEvent]) -> str:
        self.messages.append(list(events))
        return f"m{len(self.messages)}"


@dataclass
class FakeGateway:
    charges: dict[str, Charge] = field(default_factory=dict)
    outages_left: int = 0
    publishable_key: str = "pk_test_fake"
    max_call_seconds: float = 0.0
    cards: dict[str, PaymentMethod] = field(default_factory=dict)

    def save_card(self, payment_method_id: str, *, customer_id: str | None,
                  reference: str) -> tuple[str, PaymentMethod]:
        if payment_method_id not in self.cards:
            raise PaymentMethodRejected(f"unknown payment method {payment_method_id!r}")
        return customer_id or f"cus_{reference}", self.cards[payment_method_id]

    def setup_intent(self, customer_id: str) -> str:
        return f"seti_{customer_id}_secret"

    def charge(self, *, idempotency_key: str, amount: int, currency: str, customer_id: str, payment_method: Any,
               description: str, metadata: dict[str, str] | None = None) -> Charge:
        if self.outages_left:
            self.outages_left -= 1
            raise ProcessorUnavailable("processor timed out")
        return self.charges.setdefault(idempotency_key, Charge(f"ch_{len(self.charges)}", "succeeded", amount,
                                                               currency, payment_method=payment_method))

    def find_charge(self, *, customer_id: str, idempotency_key: str) -> Charge | None:
        return self.charges.get(idempotency_key)

