"""The alert and API notice emails as a recipient reads them: subjects that name the resource and
the window, wording right at zero with Pay as You Go accruing, dates in words, an HTML and a
plain-text part, and one "view online" link built by domain/links.py.

moto's SES keeps only the HTML body of a two-part message, so the text part is read through the
mailer port: a recording mailer handed to the composition root (`compose`)."""
import re
from dataclasses import dataclass, field

import pytest
from conftest import ALERT_METRICS, Identity, cloud_event, drain_events, run_job, send_events, summary, utc
from test_alerts import scheduled_event
from usage_ledger.adapters.email import Renderer
from usage_ledger.domain.links import balances_link

YESTERDAY = utc(2026, 11, 24, 10)
ALICE = Identity.user("alice")
PORTAL = "http://127.0.0.1:3000"


@dataclass
class Message:
    to: list[str]
    subject: str
    html: str
    text: str


@dataclass
class RecordingMailer:
    messages: list[Message] = field(default_factory=list)

    def send(self, to, subject, html, text):
        self.messages.append(Message(sorted(to), subject, html, text))
        return f"msg-{len(self.messages)}"


@pytest.fixture
def mailer(compose):
    recording = RecordingMailer()
    compose(mailer=recording, renderer=Renderer())
    return recording


@pytest.fixture
def team(world):
    world.resource("minutes", kind="resource", size=1)
    world.resource("calls", kind="api", size=20)
    world.team("team-a")
    world.member("team-a", "hank", ["hub_admin"])
    world.subscription("team-a", "minutes", "flex", quantity=100)
    return "team-a"


def use(api, resource_id, units, at=YESTERDAY):
    assert send_events(api, [cloud_event("team-a", resource_id, units, at)]).status == 202
    drain_events(api.stack)


def evaluate(stack):
    """The scheduled alert run and its workers (the job fans out)."""
    return summary(run_job(stack, "EvaluateAlertsFunction", scheduled_event()), ALERT_METRICS)


def links(text):
    return re.findall(r"https?://[^\s\"<]+", text)


def test_two_windows_give_two_subjects_naming_resource_and_window_with_text_and_html(api, team, mailer):
    reply = api.post("/v1/teams/team-a/alerts", {"name": "Ops", "windows_days": [10, 5], "resource_ids": ["minutes"],
                                                 "recipient_user_ids": ["alice"]}, as_=ALICE)
    assert reply.status == 201, reply.text
    use(api, "minutes", 80)  # 20 left at 80 a week: about 1 day
    evaluate(api.stack)
    subjects = sorted(message.subject for message in mailer.messages)
    assert subjects == ['Minutes: projected to run out in about 1 day, on November 26, 2026 (10-day alert "Ops")',
                        'Minutes: projected to run out in about 1 day, on November 26, 2026 (5-day alert "Ops")']
    for message in mailer.messages:
        for part in (message.html, message.text):
            assert "20 of 100" in part and "November 26, 2026" in part and "2026-11-26" not in part
            assert "purchased and free" in part  # what "N of M" counts, beside the page's "purchased P"
        # one "view online" link per part, the page's own scheme for the resource's card
        assert links(message.text) == [balances_link(PORTAL, "team-a", "minutes")]
        assert links(message.html) == [balances_link(PORTAL, "team-a", "minutes")]
        assert "<" not in message.text and "<a href" in message.html


def test_at_zero_prepaid_with_payg_the_alert_says_payg_is_covering_not_running_out(api, world, team, mailer):
    world.subscription("team-a", "minutes", "payg", unit_amount=250, currency="usd")
    api.post("/v1/teams/team-a/alerts", {"name": "Ops", "windows_days": [10], "resource_ids": ["minutes"],
                                         "recipient_user_ids": ["alice"]}, as_=ALICE)
    use(api, "minutes", 130)  # 100 prepaid used, 30 on Pay as You Go
    evaluate(api.stack)
    [message] = mailer.messages
    assert message.subject == ('Minutes: 0 of 100 available; Pay as You Go is covering usage '
                               '(10-day alert "Ops")')
    for part in (message.html, message.text):
        assert "Pay as You Go subscription: it is charged per unit" in " ".join(part.split())
        assert "runs out in" not in part and "running low" not in part


def test_api_notice_at_zero_with_payg_and_when_used_up(api, world, team, mailer):
    world.subscription("team-a", "calls", "flex", quantity=10)  # 10 units of 20 calls
    use(api, "calls", 184)  # 9 units used (1 left of 10): low
    evaluate(api.stack)
    [low] = mailer.messages
    assert low.subject == "Calls API balance: running low, 1 of 10 available"
    assert low.to == ["hank@example.com"]
    assert "1 unit = 20 processing minutes" in low.text and "1 unit = 20 processing minutes" in low.html
    assert links(low.text) == [balances_link(PORTAL, "team-a", "calls")]
    use(api, "calls", 40)  # used up, no payg
    evaluate(api.stack)
    assert mailer.messages[-1].subject == "Calls API balance is used up"
    assert "shortfall" in mailer.messages[-1].text


def test_api_notice_low_at_zero_with_payg_says_payg_is_covering(api, world, team, mailer):
    world.subscription("team-a", "calls", "flex", quantity=10)
    world.subscription("team-a", "calls", "payg", unit_amount=250, currency="usd")
    use(api, "calls", 260)  # 10 prepaid units used, 3 on Pay as You Go
    evaluate(api.stack)
    [message] = mailer.messages
    assert message.subject == "Calls API balance: 0 of 10 available; Pay as You Go is covering usage"
    for part in (message.text, message.html):
        assert "running low" not in part and "Pay as You Go is covering usage" in part


def test_the_banner_says_payg_is_covering_at_zero_prepaid_not_running_low(api, world, team):
    world.subscription("team-a", "calls", "flex", quantity=10)
    world.subscription("team-a", "calls", "payg", unit_amount=250, currency="usd")
    use(api, "calls", 260)
    banner = api.get("/v1/teams/team-a/notices", as_=Identity.user("hank")).json["banner"]
    assert banner["level"] == "warning" and banner["resource_ids"] == ["calls"]
    assert banner["message"] == ("Prepaid API units used up, Pay as You Go is covering usage: "
                                 "Calls (0 of 10 available).")
