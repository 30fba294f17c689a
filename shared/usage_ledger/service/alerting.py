"""Run-out alerts: create, list and delete them, and evaluate them (plus API low/exhausted notices)."""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from aws_lambda_powertools import Logger

from usage_ledger import clock
from usage_ledger.domain.alert import (
    ARMED,
    Alert,
    ApiNotice,
    Decision,
    Notice,
    NoticeState,
    api_decisions,
    config_hash,
    new_alert_id,
    window_decisions,
)
from usage_ledger.domain.balance import Projection, project
from usage_ledger.domain.commands import CreateAlert
from usage_ledger.domain.errors import Conflict, FieldError, NotFound, ValidationFailed
from usage_ledger.domain.ledger import TeamSnapshot
from usage_ledger.domain.links import balances_link
from usage_ledger.domain.model import Resource
from usage_ledger.service.ports import AlertStore, LedgerStore, Mailer, Renderer

logger = Logger(child=True)



@dataclass
class Outcome:
    teams: int = 0
    emails_sent: int = 0
    send_failures: int = 0
    failed_teams: int = 0


class EvaluationFailed(Exception):
    """Some teams could not be evaluated; the others were. Raised so that the invocation fails:
    Lambda retries it (claims make that safe) and the function's error alarm sees it."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"{outcome.failed_teams} team(s) failed, {outcome.teams} evaluated")
        self.outcome = outcome


@dataclass
class _TeamView:
    """What one evaluation knows about a team: two Queries' worth."""

    team_id: str
    snapshot: TeamSnapshot
    alerts: list[Alert] = field(default_factory=list)
    states: dict[Notice, NoticeState] = field(default_factory=dict)


def _days(count: int) -> str:
    return f"{count} day{'s' if count != 1 else ''}"


def in_words(day: date | None) -> str | None:
    """2026-12-05 -> "December 5, 2026" (emails say dates in words, never raw ISO)."""
    return f"{day:%B} {day.day}, {day.year}" if day else None


def situation(resource: Resource, projection: Projection) -> str:
    """One line that says where a balance stands, right at zero with Pay as You Go accruing:
    the subject's and the heading's words."""
    balance = f"{projection.available:,} of {projection.total:,} available"
    if projection.available == 0 and projection.has_payg:
        return f"{balance}; Pay as You Go is covering usage"
    if projection.available == 0:
        return f"{balance}; prepaid capacity has run out"
    if projection.days_remaining == 0:
        return f"{balance}; projected to run out today"
    if projection.days_remaining is not None:
        when = in_words(projection.projected_depletion_date)
        return f"projected to run out in about {_days(projection.days_remaining)}" + (f", on {when}" if when else "")
    return f"{balance}"


class Alerting:
    def __init__(self, ledger: LedgerStore, store: AlertStore, mailer: Mailer, renderer: Renderer,
                 portal_url: str) -> None:
        self.ledger, self.store, self.mailer, self.renderer, self.portal_url = (
            ledger, store, mailer, renderer, portal_url)

    # -------------------------------------------------------------- create, read, delete

    def create_alert(self, command: CreateAlert, now: datetime) -> dict[str, Any]:
        # the team's resources, and of its members only the recipients (a team may have thousands)
        snapshot = self.ledger.load_team(command.team_id)
        members = self.ledger.members(command.team_id, command.recipient_user_ids)
        errors = []
        for index, resource_id in enumerate(command.resource_ids):
            ledger = snapshot.resources.get(resource_id)
            if ledger is None or not ledger.shown_at(now):
                errors.append(FieldError(f"resource_ids[{index}]", "must be a resource the team has a subscription to"))
        for index, user_id in enumerate(command.recipient_user_ids):
            member = members.get(user_id)
            if member is None or not member.is_admin:
                errors.append(FieldError(f"recipient_user_ids[{index}]", "must be an admin of the team"))
        if errors:
            raise ValidationFailed(errors)
        windows, resources, recipients = (set(command.windows_days), set(command.resource_ids),
                                          set(command.recipient_user_ids))
        alert = Alert(team_id=command.team_id, alert_id=new_alert_id(now, os.urandom(4).hex()), name=command.name,
                      windows_days=tuple(sorted(windows, reverse=True)), resource_ids=tuple(sorted(resources)),
                      recipient_user_ids=tuple(sorted(recipients)),
                      config_hash=config_hash(windows, resources, recipients), created_by=command.caller.user_id,
                      created_at=now)
        if self.store.create(alert):
            return alert.view(members)
        # named as the page lists it: by its name, not its id
        existing_id = self.store.alert_with_config(command.team_id, alert.config_hash)
        existing = self.store.get(command.team_id, existing_id) if existing_id else None
        detail = f': "{existing.name}", created {existing.created_at:%Y-%m-%d}' if existing else ""
        raise Conflict(f"An alert with the same windows, resources and recipients already exists{detail}. "
                       "Edit or delete that one instead.")

    def get_alert(self, team_id: str, alert_id: str) -> dict[str, Any]:
        alert = self.store.get(team_id, alert_id)
        if alert is None:
            raise NotFound(f"Alert {alert_id!r} not found.")
        return alert.view(self.ledger.members(team_id, alert.recipient_user_ids))

    def list_alerts(self, team_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        """A page of alerts; whether their recipients are still admins is read for the page's
        recipients only (never the team's whole member list)."""
        alerts, next_cursor = self.store.page(team_id, limit, cursor)
        members = self.ledger.members(team_id, {user_id for alert in alerts for user_id in alert.recipient_user_ids})
        return {"items": [alert.view(members) for alert in alerts], "next_cursor": next_cursor}

    def delete_alert(self, team_id: str, alert_id: str) -> None:
        """The alert, its configuration and its notice states go together."""
        alert = self.store.get(team_id, alert_id)
        if alert is None or not self.store.delete(alert):
            raise NotFound(f"Alert {alert_id!r} not found.")

    # -------------------------------------------------------------- evaluation

    def teams_to_evaluate(self) -> Iterable[str]:
        """Every team with alerts or api balances (what the scheduled run fans out)."""
        return self.store.teams_to_evaluate()

    def evaluate(self, now: datetime, team_ids: Iterable[str] | None = None) -> Outcome:
        """The scheduled run (every team with alerts or api balances) or a stream run (the given
        teams). One team's failure (a throttled read, say) does not hold up the others; the run
        then fails."""
        outcome = Outcome()
        first_error: Exception | None = None
        for team_id in sorted(set(team_ids)) if team_ids is not None else self.store.teams_to_evaluate():
            try:
                self.evaluate_team(team_id, now, outcome)
            except Exception as error:
                logger.exception("evaluating a team's alerts failed", extra={"team_id": team_id})
                outcome.failed_teams += 1
                first_error = first_error or error
        if first_error is not None:
            raise EvaluationFailed(outcome) from first_error
        return outcome

    def evaluate_team(self, team_id: str, now: datetime, outcome: Outcome) -> None:
        snapshot = self.ledger.load_team(team_id, everything=True)
        alerts, states = self.store.load(team_id)
        view = _TeamView(team_id, snapshot, alerts, states)
        projections = self._projections(view.snapshot, now)
        days = {resource_id: projection.days_remaining for resource_id, (_, projection) in projections.items()}
        members = view.snapshot.members
        for alert in view.alerts:
            # its recipients who are still admins, or the team's primary admins when none is left
            chosen = alert.recipients(members)
            recipients = self._emails(view, chosen.user_ids)
            for decision in window_decisions(alert, days):
                resource, projection = projections.get(decision.notice.resource_id, (None, None))
                subject = context = None
                if decision.notify:
                    assert resource is not None and projection is not None and projection.days_remaining is not None
                    context = {**self._context(view, resource, projection), "alert_name": alert.name,
                               "window_days": decision.notice.window,  # type: ignore[union-attr]
                               "fallback": chosen.fallback}
                    window = decision.notice.window  # type: ignore[union-attr]
                    subject = (f"{resource.display_name}: {situation(resource, projection)} "
                               f"({window}-day alert \"{alert.name}\")")
                self._act(view, decision, recipients, "alert_runout", subject, context, outcome)
        # hub admins and the owners of the team's apps; an owner who is no longer a member, or an
        # app that was removed, is not in the snapshot and hears nothing (_emails keeps members only)
        hub_admins = [member.user_id for member in members.values() if member.is_hub_admin]
        api_recipients = self._emails(view, [*hub_admins, *(app.owner_user_id for app in view.snapshot.apps.values())])
        for resource_id, (resource, projection) in sorted(projections.items()):
            if resource.kind != "api":
                continue
            for decision in api_decisions(resource_id, projection.status):
                assert isinstance(decision.notice, ApiNotice)
                if decision.notice.status == "low":
                    subject = f"{resource.display_name} API balance: " + (
                        situation(resource, projection) if projection.available == 0
                        else f"running low, {projection.available:,} of {projection.total:,} available")
                else:
                    subject = f"{resource.display_name} API balance is used up"
                self._act(view, decision, api_recipients, "api_status", subject,
                          self._context(view, resource, projection), outcome)
        outcome.teams += 1

    def _projections(self, snapshot: TeamSnapshot, now: datetime) -> dict[str, tuple[Resource, Projection]]:
        """Resources that have a card (a subscription that has not ended), as GET /balances shows them."""
        result = {}
        for resource_id, ledger in snapshot.resources.items():
            resource = self.ledger.resource(resource_id)
            if resource is None or not ledger.shown_at(now):
                continue
            result[resource_id] = (resource, project(resource, ledger.subscriptions, ledger.state, now))
        return result

    def _act(self, view: _TeamView, decision: Decision, recipients: list[str], template: str, subject: str | None,
             context: dict[str, Any] | None, outcome: Outcome) -> None:
        state = view.states.get(decision.notice, ARMED)
        if not decision.notify:
            if not state.armed:  # left the range: re-arm the claim this evaluation read
                self.store.rearm(view.team_id, decision.notice, state.claim)
            return
        assert subject is not None and context is not None
        if not recipients or not state.is_due(clock.now()):
            return
        claim = os.urandom(8).hex()
        # the claim holds a lease: if this run dies before it sends, a run after the lease takes over
        if not self.store.claim(view.team_id, decision.notice, claim, clock.now(), clock.lease_until()):
            return
        html = self.renderer.render(f"{template}.html", **context)
        text = self.renderer.render(f"{template}.txt", **context)
        try:
            message_id = self.mailer.send(recipients, subject, html, text)
        except Exception:
            logger.exception("email failed; re-arming so the next run retries", extra={"notice": str(decision.notice)})
            outcome.send_failures += 1
            self.store.rearm(view.team_id, decision.notice, claim)
            return
        outcome.emails_sent += 1
        try:
            self.store.mark_sent(view.team_id, decision.notice, claim, message_id, clock.now())
        except Exception:
            # the email went out: go on with the team (the claim's lease runs out and a later run
            # sends it again: at least once, never lost)
            logger.exception("sent, but could not record it; a later run may send it again",
                             extra={"notice": str(decision.notice), "message_id": message_id})

    def _context(self, view: _TeamView, resource: Resource, projection: Projection) -> dict[str, Any]:
        team = view.snapshot.team
        size = int(resource.charge_unit_size) if resource.charge_unit_size == int(resource.charge_unit_size) else \
            resource.charge_unit_size
        return {
            "team_name": team.name if team else view.team_id,
            "resource_name": resource.display_name,
            "unit": resource.unit,
            "charge_unit_size": size,
            "available": f"{projection.available:,}",
            "total": f"{projection.total:,}",
            "at_zero": projection.available == 0,
            "has_payg": projection.has_payg,
            "situation": situation(resource, projection),
            "status": projection.status,
            "days_remaining": projection.days_remaining,
            "projected_date": in_words(projection.projected_depletion_date),
            "as_of": in_words(clock.now().date()),
            # the one "view online" link: the resource's balance card (links.py is the page's scheme)
            "view_url": balances_link(self.portal_url, view.team_id, resource.resource_id),
        }

    @staticmethod
    def _emails(view: _TeamView, user_ids: Iterable[str]) -> list[str]:
        members = view.snapshot.members
        return sorted({members[user_id].email for user_id in user_ids if user_id in members})
