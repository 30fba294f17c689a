"""The composition root: each container builds its stores, gateways and use cases here, once,
and only those its function uses (an import is paid on first use). Tests hand in fakes:
`bootstrap.use(Container(mailer=FakeMailer()))`."""
from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from usage_ledger.config import Settings, settings

T = TypeVar("T")


def _part(build: Callable[[Container], T]) -> property:
    """A part built on first use (or handed in to the constructor), then kept."""
    name = build.__name__

    def get(self: Container) -> T:
        if name not in self._parts:
            with self._lock:
                if name not in self._parts:
                    self._parts[name] = build(self)
        return self._parts[name]

    get.__doc__ = build.__doc__
    return property(get)


class Container:
    def __init__(self, **parts: Any) -> None:
        self._parts: dict[str, Any] = dict(parts)
        self._lock = threading.RLock()

    # -------------------------------------------------------------- outside world

    @_part
    def settings(self) -> Settings:
        return settings()

    def _tables(self) -> None:
        from usage_ledger.adapters.dynamodb import models

        models.bind(self.settings.ledger_table, self.settings.dedupe_table)

    @_part
    def ledger_store(self) -> Any:
        from usage_ledger.adapters.dynamodb.ledger import LedgerStore

        self._tables()
        return LedgerStore()

    @_part
    def usage_store(self) -> Any:
        from usage_ledger.adapters.dynamodb.usage import UsageStore

        return UsageStore(self.settings.usage_table)

    @_part
    def ingest_store(self) -> Any:
        from usage_ledger.adapters.dynamodb.ingest import IngestStore

        self._tables()
        return IngestStore(self.usage_store)

    @_part
    def billing_store(self) -> Any:
        from usage_ledger.adapters.dynamodb.billing import BillingStore

        self._tables()
        return BillingStore()

    @_part
    def credit_note_store(self) -> Any:
        from usage_ledger.adapters.dynamodb.credit_notes import CreditNoteStore

        self._tables()
        return CreditNoteStore()

    @_part
    def alert_store(self) -> Any:
        from usage_ledger.adapters.dynamodb.alerts import AlertStore

        self._tables()
        return AlertStore()

    @_part
    def event_queue(self) -> Any:
        from usage_ledger.adapters.queue import EventQueue

        return EventQueue(self.settings.events_queue_url)

    @_part
    def billing_queue(self) -> Any:
        from usage_ledger.adapters.queue import WorkQueue

        return WorkQueue(self.settings.billing_work_queue_url)

    @_part
    def alerts_queue(self) -> Any:
        from usage_ledger.adapters.queue import WorkQueue

        return WorkQueue(self.settings.alerts_work_queue_url)

    @_part
    def mailer(self) -> Any:
        from usage_ledger.adapters.email import SesMailer

        return SesMailer(self.settings.sender_email)

    @_part
    def renderer(self) -> Any:
        from usage_ledger.adapters.email import Renderer

        return Renderer()

    @_part
    def payments(self) -> Any:
        from usage_ledger.adapters.payments import StripeGateway, secret_from_secrets_manager

        settings = self.settings
        return StripeGateway(settings.stripe_api_base, secret_from_secrets_manager(settings.stripe_secret_name),
                             settings.stripe_publishable_key,
                             webhook_secret=secret_from_secrets_manager(settings.stripe_webhook_secret_name))

    @_part
    def processor_event_markers(self) -> Any:
        from usage_ledger.adapters.dynamodb.processor_events import ProcessorEventMarkers

        self._tables()
        return ProcessorEventMarkers()

    # -------------------------------------------------------------- use cases

    @property
    def grace(self) -> timedelta:
        return timedelta(minutes=self.settings.billing_grace_minutes)

    @_part
    def membership(self) -> Any:
        from usage_ledger.service.membership import Membership

        return Membership(self.ledger_store)

    @_part
    def operator(self) -> Any:
        from usage_ledger.service.operator import Operator

        return Operator(self.ledger_store, self.payments)

    @_part
    def ingest(self) -> Any:
        from usage_ledger.service.ingest import Ingest

        return Ingest(self.ledger_store, self.ingest_store, self.event_queue, self.grace)

    @_part
    def balances(self) -> Any:
        from usage_ledger.service.balances import Balances

        return Balances(self.ledger_store)

    @_part
    def usage(self) -> Any:
        from usage_ledger.service.usage import UsageReports

        return UsageReports(self.ledger_store, self.usage_store)

    @_part
    def billing(self) -> Any:
        from usage_ledger.service.billing import Billing, Issuer

        return Billing(self.ledger_store, self.billing_store, self.payments, self.mailer, self.renderer,
                       self.grace, self.settings.portal_base_url,
                       issuer=Issuer(self.settings.issuer_name, self.settings.issuer_address))

    @_part
    def payment_methods(self) -> Any:
        from usage_ledger.service.payments import PaymentMethods

        return PaymentMethods(self.ledger_store, self.billing_store, self.billing, self.payments)

    @_part
    def processor_events(self) -> Any:
        from usage_ledger.service.processor_events import ProcessorEvents

        return ProcessorEvents(self.payments, self.processor_event_markers, self.payment_methods.confirmations)

    @_part
    def credit_notes(self) -> Any:
        from usage_ledger.service.credit_notes import CreditNotes
        from usage_ledger.service.documents import Issuer

        return CreditNotes(self.ledger_store, self.billing_store, self.credit_note_store, self.payments, self.mailer,
                           self.renderer, self.settings.portal_base_url,
                           Issuer(self.settings.issuer_name, self.settings.issuer_address))

    @_part
    def cancellation(self) -> Any:
        from usage_ledger.service.cancellation import Cancellation

        return Cancellation(self.ledger_store)

    @_part
    def alerting(self) -> Any:
        from usage_ledger.service.alerting import Alerting

        return Alerting(self.ledger_store, self.alert_store, self.mailer, self.renderer,
                        self.settings.portal_base_url)

    @_part
    def jobs(self) -> Any:
        from usage_ledger.service.jobs import Jobs

        return Jobs(self.billing, self.alerting, self.billing_queue, self.alerts_queue)


_current: Container | None = None
_current_lock = threading.Lock()


def container() -> Container:
    """This container's parts (built on first use)."""
    global _current
    if _current is None:
        with _current_lock:
            if _current is None:
                _current = Container()
    return _current


def use(replacement: Container | None) -> None:
    """Install a container (tests: one with fakes); None starts afresh on next use."""
    global _current
    _current = replacement


def reset() -> None:
    """Forget every part (a test deployed a new stack: new names, new endpoints)."""
    use(None)
