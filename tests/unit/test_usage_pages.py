"""A usage report page's size bound holds for any key and quantity, and the report's date split
(whole months, partly covered edges) covers each day once."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from usage_ledger.http.api import csv_body, dumps
from usage_ledger.service.usage import CSV_HEADER, KEY_NAMES, Span, csv_rows, periods, series_sizes

# what ingest can store: up to 128 characters of any text (lone surrogates are refused at the edge)
keys = st.none() | st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=128)
quantities = st.decimals(min_value=0, max_value=Decimal(10) ** 21, places=6, allow_nan=False,
                         allow_infinity=False).map(Decimal.normalize)  # as DynamoDB returns them


@settings(max_examples=300, deadline=None)
@given(group_by=st.sampled_from(sorted(KEY_NAMES)), key=keys, values=st.lists(quantities, min_size=1, max_size=40),
       granularity=st.sampled_from(["day", "month"]))
def test_the_size_bound_holds_in_json_and_csv(group_by, key, values, granularity):
    first = date(2026, 1, 1)
    all_periods = periods(first, first + timedelta(days=len(values) * 31), granularity)[:len(values)]
    points = list(zip(all_periods, values, strict=True))
    series = {"key": {KEY_NAMES[group_by]: key}, "points": [{"period": p, "quantity": q} for p, q in points]}
    report = {"group_by": group_by, "series": [series]}
    json_bound, csv_bound = series_sizes(KEY_NAMES[group_by], key, points)
    assert len((dumps(series) + ",").encode()) <= json_bound
    header = len(csv_body(CSV_HEADER, []).encode())
    assert len(csv_body(CSV_HEADER, csv_rows(report)).encode()) - header <= csv_bound


@settings(max_examples=300, deadline=None)
@given(first=st.dates(date(2024, 1, 1), date(2027, 12, 31)), days=st.integers(0, 1100))
def test_whole_months_and_edges_cover_each_day_once(first, days):
    last = first + timedelta(days=days)
    span = Span(first, last, "month")
    covered: list[date] = []
    if span.whole:
        whole_first, whole_last = span.whole
        assert whole_first.day == 1 and (whole_last + timedelta(days=1)).day == 1
        covered += [whole_first + timedelta(days=n) for n in range((whole_last - whole_first).days + 1)]
    assert len(span.edges) <= 2
    for edge_first, edge_last in span.edges:
        assert edge_first.isoformat()[:7] == edge_last.isoformat()[:7] and not span.covers(edge_first.isoformat()[:7])
        covered += [edge_first + timedelta(days=n) for n in range((edge_last - edge_first).days + 1)]
    assert sorted(covered) == [first + timedelta(days=n) for n in range(days + 1)]
