"""The usage CSV never hands a spreadsheet a formula (contract section 3): a cell that would begin
with `=`, `+`, `-`, `@`, a tab or a carriage return begins with `'` instead; the JSON keeps it as sent."""
import csv
import io

import pytest
from conftest import Identity, cloud_event, drain_events, send_events, utc

ALICE = Identity.user("alice")
FORMULAS = ["=HYPERLINK(\"https://evil.example\",\"click\")", "+1+2", "-3+4", "@SUM(1+1)", "\tcmd", "\rcmd"]
PLAIN = ["alice", "1-2", "a=b", "'quoted", "x@example.com"]
QUERY = "from=2026-10-01&to=2026-10-31&granularity=month&group_by=user&resource_id=minutes"


@pytest.fixture
def keys_used(api, world, clock):
    world.resource("minutes", kind="api", size=20)
    world.team("team-a")
    world.subscription("team-a", "minutes", "flex", quantity=100)
    clock.set(utc(2026, 10, 20, 12))
    reply = send_events(api, [cloud_event("team-a", "minutes", 3, utc(2026, 10, 20), user_id=user_id)
                              for user_id in FORMULAS + PLAIN])
    assert reply.status == 202, reply.text
    drain_events(api.stack)
    return FORMULAS + PLAIN


def test_a_cell_that_would_start_a_formula_starts_with_a_quote_in_the_csv_and_json_keeps_it(api, keys_used):
    reply = api.get("/v1/teams/team-a/usage", as_=ALICE, query=QUERY, headers={"Accept": "text/csv"})
    assert reply.status == 200 and reply.content_type == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(reply.text, newline="")))
    keys = {row[1] for row in rows[1:]}
    assert keys == {"'" + key for key in FORMULAS} | set(PLAIN)
    assert all(row[2] == "3" for row in rows[1:])  # quantities are numbers, never escaped

    series = api.get("/v1/teams/team-a/usage", as_=ALICE, query=QUERY).json["series"]
    assert {item["key"]["user_id"] for item in series} == set(keys_used)


@pytest.mark.parametrize("cell, written", [("=1+1", "'=1+1"), ("+1", "'+1"), ("-3+4", "'-3+4"), ("@A1", "'@A1"),
                                           ("\tx", "'\tx"), ("\rx", "'\rx"), ("a-b", "a-b"), ("", "")])
def test_each_formula_start_is_escaped_and_nothing_else(cell, written):
    from decimal import Decimal

    from usage_ledger.http.api import csv_body

    text = csv_body(("period", "key", "quantity"), [("2026-10", cell, Decimal("0.000001"))])
    assert list(csv.reader(io.StringIO(text, newline="")))[1] == ["2026-10", written, "0.000001"]
