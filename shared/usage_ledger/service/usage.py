"""Usage reports: actual usage in base units by UTC day or month, grouped by resource, user or app,
one page of series at a time (contract section 3).

Series are ordered by key and paged with an opaque cursor (the store's). A page holds at most
`limit` series and stops before its estimated size passes PAGE_BYTES, in JSON and in CSV alike,
so one page stays far below Lambda's and API Gateway's 6 MB response limit whatever the team's
size: 24 months by day is ~27 KB a series, about 29 series a page.

A page of users or apps reads the share items (one per key, resource and month: usage by day and
month) of its own keys only, in key order from the cursor on: what a page reads stays the size of
the page whatever the size of the team (docs/data-model.md).
"""
from __future__ import annotations

import heapq
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from usage_ledger.domain.access import require_visible, visible_resource
from usage_ledger.domain.calendar import add_months, iso, utc_day
from usage_ledger.domain.errors import FieldError, ValidationFailed
from usage_ledger.domain.model import Member, UsageBucket
from usage_ledger.domain.pages import DEFAULT_PAGE, MAX_PAGE
from usage_ledger.service.ports import LedgerStore, UsageStore

GRANULARITIES = ("day", "month")
GROUPS = ("resource", "user", "app")
HISTORY_MONTHS = 24
DEFAULT_DAYS = 30
# a report may end in the future (this month's view), but not so far as to be a huge answer
MAX_FUTURE_DAYS = 366
# a page stops before its series would pass this many bytes (an upper bound of both the JSON and
# the CSV answer): far below the 6 MB response limit of Lambda and API Gateway
PAGE_BYTES = 768 * 1024
KEY_NAMES = {"resource": "resource_id", "user": "user_id", "app": "app_id"}
CSV_HEADER = ("period", "key", "quantity")


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


def order(key: str | None) -> tuple[bool, str]:
    """Series order: by key; usage recorded without a user or app (key None) last."""
    return (key is None, key or "")


def csv_rows(report: dict[str, Any]) -> Iterator[tuple[str, str, Decimal]]:
    """The report as CSV rows (`period`, `key`, `quantity`; CSV_HEADER): one per (period, key), in
    the order of the series (by key, then period); the key of usage without a user or app is empty."""
    key_name = KEY_NAMES[report["group_by"]]
    for series in report["series"]:
        key = series["key"][key_name]
        for point in series["points"]:
            yield point["period"], "" if key is None else key, point["quantity"]


def series_sizes(key_name: str, key: str | None, points: list[tuple[str, Decimal]]) -> tuple[int, int]:
    """Upper bounds of one series' size in JSON (`{"key":{...},"points":[...]},`) and as CSV rows
    (`period,key,quantity` and CRLF, the key in every row): the key as JSON with every non-ASCII
    character escaped (no encoder writes it longer), in CSV as quoted UTF-8 with its quotes
    doubled and a formula's `'`; a quantity as its digits written out."""
    key_json = len(json.dumps(key))
    # quoted, its quotes doubled, and one `'` more when it would start a formula (http.api.csv_cell)
    key_csv = 0 if key is None else 3 + len(key.encode("utf-8", "surrogatepass")) + key.count('"')
    json_size = 26 + len(key_name) + key_json
    csv_size = 0
    for period, quantity in points:
        number = len(format(quantity, "f"))
        json_size += 26 + len(period) + number  # {"period":"...","quantity":N},
        csv_size += len(period) + key_csv + number + 4  # period,"key",N\r\n
    return json_size, csv_size


def series_bytes(key_name: str, key: str | None, points: list[tuple[str, Decimal]]) -> int:
    """What a series takes of a page: the larger of its JSON and CSV bounds (a page is the same in both)."""
    return max(series_sizes(key_name, key, points))


@dataclass(frozen=True)
class Span:
    """A report's dates: its periods, the months it covers whole, and its partly covered edges."""

    first: date
    last: date
    granularity: str

    @cached_property
    def periods(self) -> list[str]:
        return periods(self.first, self.last, self.granularity)

    @property
    def months(self) -> tuple[str, str]:
        """The first and last month the span touches, YYYY-MM."""
        return self.first.isoformat()[:7], self.last.isoformat()[:7]

    @cached_property
    def whole(self) -> tuple[date, date] | None:
        """The first day of the first whole month and the last day of the last whole month, if any."""
        whole_first = self.first if self.first.day == 1 else add_months(self.first.replace(day=1), 1)
        last_of_month = add_months(self.last.replace(day=1), 1) - timedelta(days=1)
        whole_last = self.last if self.last == last_of_month else self.last.replace(day=1) - timedelta(days=1)
        return (whole_first, whole_last) if whole_first <= whole_last else None

    @cached_property
    def edges(self) -> list[tuple[date, date]]:
        """The day ranges of the months the span covers only in part (at most two)."""
        if self.whole is None:  # one or two partly covered months, no whole one between them
            if self.first.month == self.last.month and self.first.year == self.last.year:
                return [(self.first, self.last)]
            first_month_end = add_months(self.first.replace(day=1), 1) - timedelta(days=1)
            return [(self.first, first_month_end), (first_month_end + timedelta(days=1), self.last)]
        whole_first, whole_last = self.whole
        edges = []
        if self.first < whole_first:
            edges.append((self.first, whole_first - timedelta(days=1)))
        if whole_last < self.last:
            edges.append((whole_last + timedelta(days=1), self.last))
        return edges

    def covers(self, month: str) -> bool:
        return self.whole is not None and self.whole[0].isoformat()[:7] <= month <= self.whole[1].isoformat()[:7]

    @property
    def smallest_series(self) -> int:
        """Bytes a series takes at the least (every quantity one digit): how many can fit a page."""
        return sum(27 + len(period) for period in self.periods)


class UsageReports:
    def __init__(self, ledger: LedgerStore, usage: UsageStore) -> None:
        self.ledger, self.usage = ledger, usage

    # -------------------------------------------------------------- reading

    def _buckets(self, team_id: str, resource_id: str, span: Span) -> list[UsageBucket]:
        """The span's totals of one resource, by day or month. Month buckets of partly covered
        edge months are summed from their days (one bucket per day, the month as its period), so
        totals are exact."""
        if span.granularity == "day":
            return self.usage.buckets(team_id, resource_id, "day", span.first.isoformat(), span.last.isoformat())
        buckets: list[UsageBucket] = []
        if span.whole is not None:
            buckets.extend(self.usage.buckets(team_id, resource_id, "month", span.whole[0].isoformat()[:7],
                                              span.whole[1].isoformat()[:7]))
        for edge_first, edge_last in span.edges:
            buckets.extend(replace(bucket, period=bucket.period[:7]) for bucket in self.usage.buckets(
                team_id, resource_id, "day", edge_first.isoformat(), edge_last.isoformat()))
        return buckets

    def _shares(self, team_id: str, resource_ids: list[str], span: Span, group_by: str, after: str | None,
                wanted: int) -> tuple[dict[str | None, dict[str, Decimal]], bool]:
        """The first `wanted` users (apps) after `after` with usage in the span, each with its usage
        by period summed over the resources, and whether more follow. Each resource's share items
        are read in key order from `after` on, only as far as the page needs (one item per key and
        month: what a page reads does not grow with the team)."""
        streams = [self.usage.shares(team_id, rid, group_by, span.first, span.last, after, wanted)
                   for rid in resource_ids]
        found: dict[str | None, dict[str, Decimal]] = {}
        for key, days in heapq.merge(*streams, key=lambda pair: order(pair[0])):
            if key not in found:
                if len(found) == wanted:
                    return found, True
                found[key] = defaultdict(Decimal)
            for day, quantity in days.items():
                found[key][day if span.granularity == "day" else day[:7]] += quantity
        return found, False

    # -------------------------------------------------------------- the report

    def report(self, team_id: str, member: Member, now: datetime, *, from_: str | None, to: str | None,
               granularity: str | None, group_by: str | None, resource_id: str | None,
               limit: int = DEFAULT_PAGE, cursor: str | None = None) -> dict[str, Any]:
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
        if not 1 <= limit <= MAX_PAGE:
            errors.append(FieldError("limit", f"must be between 1 and {MAX_PAGE}"))
        after = None
        if cursor is not None and group_by in GROUPS:
            try:
                after = self.usage.page_after(team_id, group_by, cursor)
            except ValidationFailed as failed:
                errors.extend(failed.errors)
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

        span = Span(first, last, granularity)
        wanted = min(limit, max(1, PAGE_BYTES // span.smallest_series))
        page: list[str | None]
        values: dict[str | None, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        if group_by == "resource":  # a zero-filled series for every resource shown
            following = [rid for rid in resource_ids if after is None or order(rid) > order(after)]
            shown, more = following[:wanted], len(following) > wanted
            for rid in shown:
                for bucket in self._buckets(team_id, rid, span):
                    values[rid][bucket.period] += bucket.quantity
            page = list(shown)
        else:
            shares, more = self._shares(team_id, resource_ids, span, group_by, after, wanted)
            page = list(shares)
            values.update(shares)

        key_name = KEY_NAMES[group_by]
        series: list[dict[str, Any]] = []
        size = 0
        for key in page:
            points = [(period, values[key].get(period, Decimal(0))) for period in span.periods]
            size += series_bytes(key_name, key, points)
            if series and size > PAGE_BYTES:
                more = True
                break
            series.append({"key": {key_name: key},
                           "points": [{"period": period, "quantity": quantity} for period, quantity in points]})
        last_key = series[-1]["key"][key_name] if series else None
        next_cursor = None
        if more and last_key is not None:  # the key None sorts last: nothing follows it
            next_cursor = self.usage.page_cursor(team_id, group_by, last_key)
        body: dict[str, Any] = {"from": first.isoformat(), "to": last.isoformat(), "granularity": granularity,
                                "group_by": group_by, "as_of": iso(now), "series": series,
                                "next_cursor": next_cursor}
        if resource_id is not None:
            body["resource_id"] = resource_id
        return body
