"""Run-out alerts and API notices: what an alert is, and when a notification fires or re-arms.

Each (alert, resource, window) and each (api resource, low|exhausted) is a notice that starts
armed; an evaluation that finds it in range while armed sends it once and disarms it (a claim
with a lease, so a run that dies before sending hands it to the next run); leaving the range
re-arms it (contract section 4).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from usage_ledger.domain.calendar import iso
from usage_ledger.domain.ids import stable_hash
from usage_ledger.domain.model import Member

ALERT_ID = re.compile(r"^al_[0-9]{13}_[0-9a-f]{8}$")
WINDOWS_DAYS = (10, 5)
API_STATUSES = ("low", "exhausted")


def new_alert_id(now: datetime, random_hex: str) -> str:
    """Time-sortable, so newest first is a reverse read of the team's alerts."""
    return f"al_{int(now.timestamp() * 1000):013d}_{random_hex}"


def config_hash(windows: Iterable[int], resource_ids: Iterable[str], recipients: Iterable[str]) -> str:
    """The same sets in any order, whatever the name, hash alike (duplicate configurations are refused)."""
    canonical = json.dumps([sorted(set(windows)), sorted(set(resource_ids)), sorted(set(recipients))])
    return stable_hash(canonical)


@dataclass(frozen=True)
class Alert:
    team_id: str
    alert_id: str
    name: str
    windows_days: tuple[int, ...]
    resource_ids: tuple[str, ...]
    recipient_user_ids: tuple[str, ...]
    config_hash: str
    created_by: str
    created_at: datetime

    def view(self, members: Mapping[str, Member]) -> dict[str, Any]:
        """The alert as the API shows it; `members` holds at least its recipients who are still
        members of the team (an absent recipient has been removed)."""
        return {
            "alert_id": self.alert_id,
            "name": self.name,
            "windows_days": sorted(self.windows_days, reverse=True),
            "resource_ids": sorted(self.resource_ids),
            "recipient_user_ids": sorted(self.recipient_user_ids),
            "ineligible_recipient_user_ids": self.ineligible_recipients(members),
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
        }

    def eligible_recipients(self, members: Mapping[str, Member]) -> list[str]:
        """Recipients who are still admins of the team (who left or lost the role hears nothing)."""
        return [user_id for user_id in sorted(self.recipient_user_ids) if _is_admin(members.get(user_id))]

    def ineligible_recipients(self, members: Mapping[str, Member]) -> list[str]:
        """Recipients who are no longer admins of the team: removed, or their admin roles taken away.
        Decided when read, so removing a member rewrites no alert."""
        return [user_id for user_id in sorted(self.recipient_user_ids) if not _is_admin(members.get(user_id))]

    def recipients(self, members: Mapping[str, Member]) -> Recipients:
        """Whom the alert's emails go to, given every member of the team: its recipients who are
        still admins; when none is left, the team's `primary_admin` members instead (contract
        section 3), so that a run-out is never announced to nobody while the team has an owner."""
        eligible = self.eligible_recipients(members)
        if eligible:
            return Recipients(tuple(eligible))
        return Recipients(tuple(sorted(user_id for user_id, member in members.items()
                                       if member.is_primary_admin)), fallback=True)


def _is_admin(member: Member | None) -> bool:
    return member is not None and member.is_admin


@dataclass(frozen=True)
class Recipients:
    """The user ids an alert email goes to; `fallback` when they are the team's primary admins
    standing in for recipients who are no longer admins."""

    user_ids: tuple[str, ...]
    fallback: bool = False


@dataclass(frozen=True)
class WindowNotice:
    """`days_remaining` of a resource entered one of an alert's windows."""

    alert_id: str
    resource_id: str
    window: int


@dataclass(frozen=True)
class ApiNotice:
    """An api resource turned low or exhausted."""

    resource_id: str
    status: str


Notice = WindowNotice | ApiNotice


@dataclass(frozen=True)
class NoticeState:
    """A stored notice: absent means armed. A claim is taken before the send; `sent` after it."""

    armed: bool = True
    sent: bool = False
    claim: str | None = None
    lease_until: datetime | None = None

    def is_due(self, now: datetime) -> bool:
        """Armed, or claimed by a run that died before it sent (its lease has run out)."""
        if self.armed:
            return True
        return not self.sent and (self.lease_until is None or self.lease_until < now)


ARMED = NoticeState()


@dataclass(frozen=True)
class Decision:
    """Send the notice (if due), or re-arm it."""

    notice: Notice
    notify: bool


def window_decisions(alert: Alert, days_remaining: dict[str, int | None]) -> Iterator[Decision]:
    """Per resource and window, widest first: in the window -> notify, else (or no projection) re-arm."""
    for resource_id in alert.resource_ids:
        days = days_remaining.get(resource_id)
        for window in sorted(alert.windows_days, reverse=True):
            notice = WindowNotice(alert.alert_id, resource_id, window)
            yield Decision(notice, notify=days is not None and days <= window)


def api_decisions(resource_id: str, status: str) -> Iterator[Decision]:
    """`low` fires while low and re-arms once ok; `exhausted` fires while exhausted and re-arms after."""
    for watched, recovered in (("low", status == "ok"), ("exhausted", status != "exhausted")):
        notice = ApiNotice(resource_id, watched)
        if recovered:
            yield Decision(notice, notify=False)
        elif status == watched:
            yield Decision(notice, notify=True)
