"""Usage reports: actual usage in base units by UTC day or month, grouped by resource, user or app."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from usage_ledger.domain.access import require_visible, visible_resource
from usage_ledger.domain.calendar import add_months, iso, utc_day
from usage_ledger.domain.errors import FieldError, ValidationFailed
from usage_ledger.domain.model import Member, UsageBucket
from usage_ledger.service.ports import LedgerStore, UsageStore

GRANULARITIES = ("day", "month")
GROUPS = ("resource", "user", "app")
HISTORY_MONTHS = 24
DEFAULT_DAYS = 30
# a report may end in the future (this month's view), but not so far as to be a huge answer
MAX_FUTURE_DAYS = 366


def _date(raw: str | None, name: str, errors: list[FieldError]) -> date | None:
    if raw is None:
        return None
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(FieldError(name, "must be a date as YYYY-MM-DD"))
        return None


def periods(first: date, last: date, granularity: str) -> list[str]:
    if granularity == "day":
        return [(first + timedelta(days=offset)).isoformat() for offset in range((last - first).days + 1)]
    months = (last.year - first.year) * 12 + last.month - first.month
    return [add_months(first.replace(day=1), offset).isoformat()[:7] for offset in range(months + 1)]


class UsageReports:
    def __init__(self, ledger: LedgerStore, usage: UsageStore) -> None:
        self.ledger, self.usage = ledger, usage

    def _days(self, team_id: str, resource_id: str, first: date, last: date) -> list[UsageBucket]:
        return self.usage.buckets(team_id, resource_id, "day", first.isoformat(), last.isoformat())

    def _months(self, team_id: str, resource_id: str, first: date, last: date) -> list[UsageBucket]:
        """Month buckets; partly covered edge months are summed from their days, so totals are exact."""
        whole_first = first if first.day == 1 else add_months(first.replace(day=1), 1)
        last_of_month = add_months(last.replace(day=1), 1) - timedelta(days=1)
        whole_last = last if last == last_of_month else last.replace(day=1) - timedelta(days=1)
        buckets: list[UsageBucket] = []
        if whole_first <= whole_last:
            buckets.extend(self.usage.buckets(team_id, resource_id, "month", whole_first.isoformat()[:7],
                                              whole_last.isoformat()[:7]))
        edges = []
        if first < whole_first:
            edges.append((first, min(last, whole_first - timedelta(days=1))))
        if whole_last < last and (not edges or last > edges[0][1]):
            edges.append((max(first, whole_last + timedelta(days=1)), last))
        for edge_first, edge_last in edges:
            buckets.extend(replace(bucket, period=bucket.period[:7])
                           for bucket in self._days(team_id, resource_id, edge_first, edge_last))
        return buckets

    def report(self, team_id: str, member: Member, now: datetime, *, from_: str | None, to: str | None,
               granularity: str | None, group_by: str | None, resource_id: str | None) -> dict[str, Any]:
        errors: list[FieldError] = []
        granularity = granularity or "day"
        group_by = group_by or "resource"
        if granularity not in GRANULARITIES:
            errors.append(FieldError("granularity", "must be day or month"))
        if group_by not in GROUPS:
            errors.append(FieldError("group_by", "must be resource, user or app"))
        today = utc_day(now)
        oldest = add_months(today, -HISTORY_MONTHS)
        last = _date(to, "to", errors) if to is not None else today
        if last and last < oldest:
            errors.append(FieldError("to", f"must be within the last {HISTORY_MONTHS} months (on or after {oldest})"))
            last = None
        default_first = (last or today) - timedelta(days=DEFAULT_DAYS - 1)
        first = _date(from_, "from", errors) if from_ is not None else default_first
        if first and first < oldest:
            errors.append(FieldError("from", f"must be within the last {HISTORY_MONTHS} months (on or after {oldest})"))
        if first and last and last < first:
            errors.append(FieldError("to", "must not be before from"))
        if last and last > today + timedelta(days=MAX_FUTURE_DAYS):
            errors.append(FieldError("to", f"must be at most {MAX_FUTURE_DAYS} days after today"))
        resource = None
        if resource_id is not None:
            resource = self.ledger.resource(resource_id)
            if resource is None:
                errors.append(FieldError("resource_id", "is not a catalogue resource"))
            else:  # a resource the caller may not see is a 403 whatever else is wrong with the query
                require_visible(member, resource)
        if errors:
            raise ValidationFailed(errors)
        assert first and last

        if resource is not None:
            resource_ids = [resource.resource_id]
        else:  # every resource the team has stored state for, that the caller may see
            snapshot = self.ledger.load_team(team_id)
            resource_ids = [
                rid for rid in sorted(snapshot.resources)
                if (found := self.ledger.resource(rid)) is not None and visible_resource(member, found)
            ]

        reader = self._days if granularity == "day" else self._months
        buckets: dict[Any, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for rid in resource_ids:
            if group_by == "resource":
                buckets[rid]  # a zero-filled series for every resource shown
            for bucket in reader(team_id, rid, first, last):
                if group_by == "resource":
                    buckets[rid][bucket.period] += bucket.quantity
                else:
                    for key, quantity in (bucket.by_user if group_by == "user" else bucket.by_app).items():
                        buckets[key][bucket.period] += quantity

        key_name = {"resource": "resource_id", "user": "user_id", "app": "app_id"}[group_by]
        all_periods = periods(first, last, granularity)
        series = [
            {"key": {key_name: key}, "points": [{"period": p, "quantity": buckets[key].get(p, Decimal(0))}
                                                for p in all_periods]}
            for key in sorted(buckets, key=lambda k: (k is None, k or ""))
        ]
        body: dict[str, Any] = {"from": first.isoformat(), "to": last.isoformat(), "granularity": granularity,
                                "group_by": group_by, "as_of": iso(now), "series": series}
        if resource_id is not None:
            body["resource_id"] = resource_id
        return body
