"""The invoice a business can send, through the handlers: the close job's email (HTML, text, the
PDF attached, one "view online" link) and GET .../invoices/{id} as JSON, HTML or PDF."""
import pytest
from conftest import (
    Identity,
    close_billing,
    cloud_event,
    drain_events,
    reset_domain_caches,
    send_events,
    utc,
)
from pdf_text import pdf_text
from sent_mail import sent_emails

from infra.local import lambda_response

ALICE = Identity.user("alice")
PDF = {"accept": "application/pdf"}
BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}





def billed_cycle(api, world, clock, team_id="team-a", minutes=238, **fields):
    """A Los Angeles purchase (cycle Feb 28 - Mar 27 local) that used `minutes` in it, closed at
    08:00Z on Mar 28 (1:00 AM PDT): 238 minutes in units of 20 are 11 units with 18 rolled over."""
    world.subscription(team_id, "minutes", "payg", purchased_at="2026-03-01T05:00:00Z",
                       starts_at="2026-03-01T05:00:00Z", timezone="America/Los_Angeles",
                       subscription_id=f"payg-{team_id}", **fields)
    clock.set(utc(2026, 3, 10, 1))
    assert send_events(api, [cloud_event(team_id, "minutes", minutes, utc(2026, 3, 10))]).status == 202
    drain_events(api.stack)


def only_invoice(api, team_id="team-a"):
    (item,) = api.get(f"/v1/teams/{team_id}/invoices", as_=ALICE).json["items"]
    return item


@pytest.fixture
def team(world):
    world.resource("minutes", kind="api", size=20)
    world.team("team-a")
    return "team-a"


def test_the_invoice_email_has_text_and_html_one_view_link_and_the_pdf(api, world, team, clock):
    billed_cycle(api, world, clock)
    assert close_billing(api.stack, utc(2026, 3, 28, 8))["invoiced"] == 1
    item = only_invoice(api)
    reference = str(item["number"]) if item["number"] is not None else item["invoice_id"]

    (message,) = sent_emails()
    assert message.destinations["ToAddresses"] == ["alice@example.com"]
    assert message.subject == f"Invoice {reference} for TEAM-A: 27.50 USD"
    assert message.mime.get_content_type() == "multipart/mixed"
    alternative, _ = message.mime.get_payload()
    assert [part.get_content_type() for part in alternative.get_payload()] == ["text/plain", "text/html"]
    view = f"http://127.0.0.1:3000/#/teams/team-a/invoices/{item['invoice_id']}"
    assert message.html.count(f'href="{view}"') == 1 and message.text.count(view) == 1
    for part in (message.html, message.text):
        for expected in ("Usage Ledger Example Ltd.", "1 Example Street", "TEAM-A", "alice@example.com",
                         "Issued", "March 28, 2026", "February 28, 2026 to March 27, 2026",
                         "1 unit = 20 processing minutes",
                         "18 processing minutes of partial usage carry over to the next cycle",
                         "2.50 USD", "27.50 USD", "Paid", "Visa ending in 4242"):
            assert expected in part, expected

    (pdf,) = message.attachments
    assert (pdf.filename, pdf.content_type) == (f"invoice-{reference}.pdf", "application/pdf")
    assert pdf.data.startswith(b"%PDF-")
    text = pdf_text(pdf.data)
    assert f"Reference {item['invoice_id']}" in text and "1 unit = 20 processing minutes" in text
    assert "February 28, 2026 to March 27, 2026" in text and "27.50 USD" in text


def test_accept_pdf_answers_the_same_invoice_as_a_pdf(api, world, team, clock):
    billed_cycle(api, world, clock)
    close_billing(api.stack, utc(2026, 3, 28, 8))
    item = only_invoice(api)
    reference = str(item["number"]) if item["number"] is not None else item["invoice_id"]
    path = f"/v1/teams/team-a/invoices/{item['invoice_id']}"

    reply = api.get(path, as_=ALICE, headers=PDF)
    assert reply.status == 200 and reply.content_type == "application/pdf" and reply.base64_encoded
    assert reply.headers["Content-Disposition"] == f'inline; filename="invoice-{reference}.pdf"'
    assert reply.headers["Vary"] == "Accept"
    assert reply.content.startswith(b"%PDF-")
    text = pdf_text(reply.content)
    assert "Invoice" in text and item["invoice_id"] in text and "18 processing minutes" in text
    # the local gateway hands the bytes back, as API Gateway decodes isBase64Encoded
    served = lambda_response({"statusCode": 200, "headers": reply.headers, "body": reply.text,
                              "isBase64Encoded": True})
    assert served.get_data() == reply.content and served.headers["Content-Type"] == "application/pdf"

    assert api.get(path, as_=ALICE, headers=BROWSER).content_type.startswith("text/html")
    assert api.get(path, as_=ALICE, headers={"accept": "*/*"}).json == item  # JSON when nothing is preferred
    pdf_over_html = {"accept": "text/html;q=0.5, application/pdf"}
    assert api.get(path, as_=ALICE, headers=pdf_over_html).content_type == "application/pdf"


def test_hostile_team_names_render_in_every_form(api, world, clock):
    world.resource("minutes", kind="api", size=20)
    names = {"team-rtl": "צוות שלום <b>x</b>", "team-emoji": "Team 🚀😀 👩‍👩‍👧 & <i>",
             "team-zalgo": "Z\u0337\u0322a\u0334lgo", "team-override": "فريق \u202eevil"}
    for team_id, name in names.items():
        world.team(team_id)
        assert api.put(f"/v1/admin/teams/{team_id}", {"name": name}).status in (200, 201)
        billed_cycle(api, world, clock, team_id)
    refused = api.put("/v1/admin/teams/team-bad", {"name": "bad \ud800 name"})
    assert refused.status == 422  # a lone surrogate is never stored, so it never reaches a document
    assert close_billing(api.stack, utc(2026, 3, 28, 8))["invoiced"] == len(names)

    for team_id, _name in names.items():
        item = only_invoice(api, team_id)
        path = f"/v1/teams/{team_id}/invoices/{item['invoice_id']}"
        html = api.get(path, as_=ALICE, headers=BROWSER).text
        assert "<b>x</b>" not in html and "<i>" not in html
        pdf = api.get(path, as_=ALICE, headers=PDF)
        assert pdf.status == 200 and pdf.content.startswith(b"%PDF-")
    zalgo = only_invoice(api, "team-zalgo")
    pdf = api.get(f"/v1/teams/team-zalgo/invoices/{zalgo['invoice_id']}", as_=ALICE, headers=PDF)
    assert names["team-zalgo"] in pdf_text(pdf.content)  # combining marks kept, in order
    assert {message.subject.split(" for ", 1)[1].rsplit(":", 1)[0] for message in sent_emails()} == set(names.values())


def test_the_issuer_comes_from_the_template_parameters(api, world, team, clock, monkeypatch):
    environment = api.stack.function_environment("CloseBillingCyclesFunction")
    assert environment["ISSUER_NAME"] == "Usage Ledger Example Ltd."
    assert environment["ISSUER_ADDRESS"] == "1 Example Street, Springfield 00000, United States"
    assert api.stack.function_environment("TeamApiFunction")["ISSUER_NAME"] == environment["ISSUER_NAME"]
    monkeypatch.setenv("ISSUER_NAME", "Acme Billing GmbH")  # as a deployment with IssuerName set
    monkeypatch.setenv("ISSUER_ADDRESS", "Hauptstraße 1, 10115 Berlin, Germany")
    reset_domain_caches()
    billed_cycle(api, world, clock)
    close_billing(api.stack, utc(2026, 3, 28, 8))
    (message,) = sent_emails()
    assert "Acme Billing GmbH<br>" in message.html and "Hauptstraße 1<br>" in message.html
    assert "From: Acme Billing GmbH, Hauptstraße 1, 10115 Berlin, Germany" in message.text
    item = only_invoice(api)
    pdf = api.get(f"/v1/teams/team-a/invoices/{item['invoice_id']}", as_=ALICE, headers=PDF)
    assert "Acme Billing GmbH" in pdf_text(pdf.content) and "10115 Berlin" in pdf_text(pdf.content)


def test_a_zero_decimal_currency_is_invoiced_in_whole_yen(api, world, team, clock):
    billed_cycle(api, world, clock, unit_amount=500, currency="jpy")
    close_billing(api.stack, utc(2026, 3, 28, 8))
    item = only_invoice(api)
    assert (item["total"], item["currency"]) == (5500, "jpy")
    (message,) = sent_emails()
    assert message.subject.endswith(": 5,500 JPY")
    assert "500 JPY" in message.text and "5,500 JPY" in message.text and "5,500 JPY" in pdf_text(
        message.attachments[0].data)
