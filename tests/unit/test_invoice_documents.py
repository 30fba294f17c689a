"""The invoice a business can send, rendered from Invoice values in every state the payments work
can put one in (dunning fills number and attempts; these build them directly): the email each
state calls for, dates in the purchaser's zone in words, exact money, the PDF's text."""
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fakes import FakeBillingStore, FakeGateway, FakeLedgerStore, FakeMailer
from pdf_text import pdf_text
from usage_ledger.adapters.email import Renderer, mime_message
from usage_ledger.domain.billing import PAID, PAYMENT_FAILED, UNCOLLECTIBLE, UNPAID, Attempt, Invoice, InvoiceLine
from usage_ledger.domain.links import invoice_link, payment_method_link
from usage_ledger.domain.model import PaymentMethod
from usage_ledger.service.billing import Billing, Issuer
from usage_ledger.service.ports import Attachment

PORTAL = "https://portal.example.com"
VIEW = invoice_link(PORTAL, "team-a", "in_20260327_0123456789abcdef")
UPDATE = payment_method_link(PORTAL, "team-a", "payg-1")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def invoice(**changes) -> Invoice:
    """Invoice 7 of TEAM-A: 11 units of 20 processing minutes at 2.50 USD, paid at its first attempt."""
    base = Invoice(
        invoice_id="in_20260327_0123456789abcdef", team_id="team-a", subscription_id="payg-1",
        resource_id="minutes", cycle_index=0, period_start="2026-02-28", period_end="2026-03-27",
        timezone="America/Los_Angeles", lines=(InvoiceLine("minutes", 11, 250, 2750),), total=2750, currency="usd",
        status=PAID, issued_at=utc(2026, 3, 28, 8), team_name="TEAM-A", resource_name="Processing minutes",
        unit="processing minute", purchaser_user_id="alice", purchaser_email="alice@example.com",
        payment_method=PaymentMethod("pm_1", "visa", "4242", 12, 2030), number=7, charge_unit_size=Decimal(20),
        rolled_over_usage=Decimal(18), attempt_count=1,
        attempts=(Attempt(1, utc(2026, 3, 28, 8), True, "pi_1"),), paid_at=utc(2026, 3, 28, 8),
    )
    return replace(base, **changes)


FAILED_ONCE = (Attempt(1, utc(2026, 3, 28, 8), False, "pi_1", "insufficient_funds"),)
FAILED_FIVE = tuple(Attempt(n, utc(2026, 3, 28, 8) + timedelta(days=day), False, f"pi_{n}", "card_declined")
                    for n, day in zip(range(1, 6), (0, 1, 3, 5, 7), strict=True))


@pytest.fixture(scope="module")
def billing() -> Billing:
    return Billing(FakeLedgerStore(), FakeBillingStore(), FakeGateway(), FakeMailer(), Renderer(), None, PORTAL,
                   issuer=Issuer("Acme Billing GmbH", "Hauptstraße 1, 10115 Berlin, Germany"))


def links_to(html: str, url: str) -> int:
    return html.count(f'href="{url}"')


# ------------------------------------------------------------------ which email, from the state


def test_an_invoice_paid_at_its_first_attempt_is_emailed_as_the_invoice_with_its_pdf(billing):
    subject, html, text, attachments = billing.render_email(invoice())
    assert subject == "Invoice 7 for TEAM-A: 27.50 USD"
    assert links_to(html, VIEW) == 1 and text.count(VIEW) == 1 and "View this invoice online" in html
    assert VIEW not in html.replace(f'href="{VIEW}"', "")  # the one link, nowhere else
    (pdf,) = attachments
    assert (pdf.filename, pdf.content_type) == ("invoice-7.pdf", "application/pdf")
    assert pdf.data.startswith(b"%PDF-") and "Invoice 7" in pdf_text(pdf.data)
    assert "could not charge" not in text and "Update your payment method" not in html


def test_an_open_invoice_not_yet_charged_is_the_invoice_too(billing):
    subject, _, text, attachments = billing.render_email(invoice(status=UNPAID, attempts=(), attempt_count=0,
                                                                    paid_at=None))
    assert subject == "Invoice 7 for TEAM-A: 27.50 USD" and len(attachments) == 1
    assert "Status: Open" in text and "Paid:" not in text and "Payment attempts" not in text


def test_a_failed_attempt_with_a_retry_says_when_and_links_the_card_update(billing):
    failed = invoice(status=PAYMENT_FAILED, attempts=FAILED_ONCE, paid_at=None,
                     next_payment_attempt=utc(2026, 3, 29, 8))
    subject, html, text, attachments = billing.render_email(failed)
    assert subject == "Payment failed for invoice 7 for TEAM-A (27.50 USD): please update your card"
    assert "We'll retry on March 29, 2026." in text and "retry on March 29, 2026." in html
    assert f"Please update your card so the payment goes through: {UPDATE}" in text
    assert links_to(html, UPDATE) == 1 and "Update your payment method" in html
    assert links_to(html, VIEW) == 1 and text.count(VIEW) == 1
    assert "Declined (insufficient funds)" in text and "Next payment attempt: March 29, 2026, 1:00 AM PDT" in text
    assert attachments == ()  # the notice is light: the invoice itself was sent at issue


NEEDS_CUSTOMER = (Attempt(1, utc(2026, 3, 28, 8), False, "pi_1", "authentication_required"),)


def test_an_attempt_that_needs_the_customer_asks_to_confirm_on_the_invoices_page(billing):
    waiting = invoice(status=PAYMENT_FAILED, attempts=NEEDS_CUSTOMER, paid_at=None,
                      next_payment_attempt=utc(2026, 3, 29, 8))
    assert waiting.action_required and waiting.view()["action_required"] is True
    subject, html, text, attachments = billing.render_email(waiting)
    assert subject == "Payment failed for invoice 7 for TEAM-A (27.50 USD): please confirm the payment"
    assert f"Please confirm it on the invoice's page: {VIEW}" in text and "Until you do, we'll retry on" in text
    assert f'<a href="{VIEW}">Confirm the payment</a>' in html and links_to(html, UPDATE) == 1
    assert "We could not charge" not in text and attachments == ()
    final = replace(waiting, status=UNCOLLECTIBLE, next_payment_attempt=None)
    subject, html, text, _ = billing.render_email(final)
    assert subject.endswith("no more attempts will be made, please confirm the payment")
    assert "No more automatic attempts will be made." in text and f'<a href="{VIEW}">Confirm the payment</a>' in html


def test_a_receipt_names_the_card_that_paid_not_the_one_that_declined(billing):
    new_card = PaymentMethod("pm_2", "mastercard", "4444", 11, 2031)
    paid = invoice(attempts=(*FAILED_ONCE, Attempt(2, utc(2026, 3, 29, 8), True, "pi_2")), attempt_count=2,
                   payment_method=PaymentMethod("pm_1", "visa", "0341", 12, 2030), paid_with=new_card,
                   paid_at=utc(2026, 3, 29, 8))
    assert paid.view()["paid_with"] == {"id": "pm_2", "brand": "mastercard", "last4": "4444"}
    assert paid.view()["action_required"] is False
    subject, html, text, (pdf,) = billing.render_email(paid)
    assert subject.startswith("Receipt for invoice 7")
    assert "Paid with: Mastercard ending in 4444" in text and "ending in 0341" not in text
    assert "Mastercard ending in 4444" in html and "ending in 0341" not in html
    assert "Paid with" in pdf_text(pdf.data) and "Mastercard ending in 4444" in pdf_text(pdf.data)


def test_the_last_failure_says_no_more_attempts_will_be_made(billing):
    final = invoice(status=UNCOLLECTIBLE, attempts=FAILED_FIVE, attempt_count=5, paid_at=None,
                    next_payment_attempt=None)
    subject, html, text, attachments = billing.render_email(final)
    assert subject.startswith("Payment failed for invoice 7 for TEAM-A (27.50 USD): no more attempts will be made")
    assert "No more attempts will be made." in text and "No more attempts will be made." in html
    assert links_to(html, UPDATE) == 1 and links_to(html, VIEW) == 1 and attachments == ()
    assert "retry on" not in text and "Next payment attempt" not in text
    assert [line.strip() for line in text.splitlines() if "Declined (card declined)" in line][-1].startswith("5.")
    assert "Status: Uncollectible" in text


def test_a_payment_after_failures_sends_a_receipt_with_the_attempt_history(billing):
    paid = invoice(attempts=FAILED_ONCE + (Attempt(2, utc(2026, 3, 30, 16, 5), True, "pi_2"),), attempt_count=2,
                   paid_at=utc(2026, 3, 30, 16, 5))
    subject, html, text, attachments = billing.render_email(paid)
    assert subject == "Receipt for invoice 7 for TEAM-A: 27.50 USD paid"
    assert "we received your payment of 27.50 USD for invoice 7 on March 30, 2026" in text
    assert "1. March 28, 2026, 1:00 AM PDT: Declined (insufficient funds)" in text
    assert "2. March 30, 2026, 9:05 AM PDT: Paid" in text
    assert links_to(html, VIEW) == 1 and links_to(html, UPDATE) == 0
    (pdf,) = attachments
    assert "Declined (insufficient funds)" in pdf_text(pdf.data)


def test_before_it_has_a_number_an_invoice_is_named_by_its_id(billing):
    subject, html, _, attachments = billing.render_email(invoice(number=None))
    assert subject == "Invoice in_20260327_0123456789abcdef for TEAM-A: 27.50 USD"
    assert "<h1>Invoice</h1>" in html and attachments[0].filename == "invoice-in_20260327_0123456789abcdef.pdf"


# ------------------------------------------------------------------ the document


def test_the_document_names_issuer_customer_unit_and_rollover_in_html_text_and_pdf(billing):
    paid = invoice()
    html, pdf = billing.render_invoice_html(paid), pdf_text(billing.render_invoice_pdf(paid))
    _, _, text, _ = billing.render_email(paid)
    for rendering in (html, text, pdf):
        for expected in ("Invoice 7", "in_20260327_0123456789abcdef", "Acme Billing GmbH", "Hauptstraße 1",
                         "10115 Berlin", "TEAM-A", "alice@example.com", "March 28, 2026",
                         "February 28, 2026 to March 27, 2026", "1 unit = 20 processing minutes",
                         "18 processing minutes of partial usage carry over to the next cycle",
                         "2.50 USD", "27.50 USD", "Paid", "Visa ending in 4242", "America/Los_Angeles"):
            assert expected in rendering, (expected, rendering[:300])
    assert VIEW not in html  # the page's own rendering needs no link to itself


@pytest.mark.parametrize("size, unit, rolled, explained, carried", [
    (Decimal(1), "asset", Decimal(0), "1 unit = 1 asset", None),
    (Decimal("0.5"), "GB", Decimal("0.25"), "1 unit = 0.5 GB", "0.25 GB of partial usage carry over"),
    (Decimal(1000), "request", Decimal(1), "1 unit = 1,000 requests", "1 request of partial usage carries over"),
])
def test_the_unit_line_reads_for_any_size(billing, size, unit, rolled, explained, carried):
    _, _, text, _ = billing.render_email(invoice(charge_unit_size=size, unit=unit, rolled_over_usage=rolled))
    assert explained in text
    assert (carried in text) if carried else ("carry over" not in text)


@pytest.mark.parametrize("zone, issued_on, attempt", [
    ("Pacific/Kiritimati", "March 29, 2026", "March 29, 2026, 12:30 AM +14"),  # UTC+14: the day after
    ("Pacific/Pago_Pago", "March 27, 2026", "March 27, 2026, 11:30 PM SST"),  # UTC-11: the day before
    ("America/Los_Angeles", "March 28, 2026", "March 28, 2026, 3:30 AM PDT"),
    ("Europe/London", "March 28, 2026", "March 28, 2026, 10:30 AM GMT"),  # DST starts on the 29th
    (None, "March 28, 2026", "March 28, 2026, 10:30 AM UTC"),
])
def test_dates_are_in_the_purchasers_zone_across_the_date_line(billing, zone, issued_on, attempt):
    at = utc(2026, 3, 28, 10, 30)
    doc = invoice(timezone=zone, issued_at=at, attempts=(Attempt(1, at, True, "pi_1"),), paid_at=at)
    _, _, text, _ = billing.render_email(doc)
    assert f"Issued: {issued_on}" in text and f"Paid: {issued_on}" in text
    assert f"1. {attempt}: Paid" in text
    assert "Billing period: February 28, 2026 to March 27, 2026" in text  # the cycle's own local dates


def test_a_dst_change_between_attempts_shows_each_in_its_own_offset(billing):
    attempts = (Attempt(1, utc(2026, 3, 7, 12), False, "pi_1", "card_declined"),
                Attempt(2, utc(2026, 3, 9, 12), True, "pi_2"))
    _, _, text, _ = billing.render_email(invoice(attempts=attempts, paid_at=utc(2026, 3, 9, 12)))
    assert "1. March 7, 2026, 4:00 AM PST: Declined (card declined)" in text
    assert "2. March 9, 2026, 5:00 AM PDT: Paid" in text


@pytest.mark.parametrize("currency, unit_amount, expected_unit, expected_total", [
    ("jpy", 500, "500 JPY", "5,500 JPY"),  # zero-decimal
    ("bhd", 1250, "1.250 BHD", "13.750 BHD"),  # three decimals
    ("usd", 250, "2.50 USD", "27.50 USD"),
])
def test_money_is_exact_in_the_currencys_minor_units(billing, currency, unit_amount, expected_unit, expected_total):
    doc = invoice(currency=currency, lines=(InvoiceLine("minutes", 11, unit_amount, 11 * unit_amount),),
                  total=11 * unit_amount)
    subject, html, text, (pdf,) = billing.render_email(doc)
    assert subject.endswith(expected_total)
    for rendering in (html, text, pdf_text(pdf.data)):
        assert expected_unit in rendering and expected_total in rendering


HOSTILE = [
    "<script>alert(1)</script> & Co",
    "צוות שלום <b>",  # right to left
    "فريق \u202eevil\u202c",  # Arabic with an RTL override
    "Team 🚀😀 👩‍👩‍👧",  # emoji the font has no glyph for, a ZWJ sequence
    "Z\u0337\u0322a\u0334l\u0335g\u0336o\u0338 ẞ",  # combining marks
    "チーム日本",  # CJK: no glyph in the embedded font
    "x" * 200,  # one long word
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_team_names_are_escaped_in_html_and_never_break_the_pdf(billing, name):
    doc = invoice(team_name=name)
    subject, html, text, (pdf,) = billing.render_email(doc)
    assert name in subject and name in text
    assert "<script>" not in html and "<b>" not in html
    assert pdf.data.startswith(b"%PDF-") and pdf.data.rstrip().endswith(b"%%EOF")
    assert "Invoice 7" in pdf_text(pdf.data)
    if name.isascii() or name.startswith("Z"):  # scripts the font covers, in logical order
        assert name.replace(" ", "") in pdf_text(pdf.data).replace("\n", "").replace(" ", "")


# ------------------------------------------------------------------ the MIME message


def test_the_mime_message_is_mixed_of_alternative_text_html_and_the_pdf():
    raw = mime_message("billing@example.com", ["alice@example.com"], "Invoice 7 for Équipe 🚀: 27.50 USD",
                       "<p>html</p>", "text", [Attachment("invoice-7.pdf", "application/pdf", b"%PDF-1.3 x")])
    import email
    import email.policy

    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message.get_content_type() == "multipart/mixed"
    alternative, pdf = message.get_payload()
    assert [part.get_content_type() for part in alternative.get_payload()] == ["text/plain", "text/html"]
    assert (pdf.get_content_type(), pdf.get_filename(), pdf.get_content()) == (
        "application/pdf", "invoice-7.pdf", b"%PDF-1.3 x")
    assert str(message["Subject"]) == "Invoice 7 for Équipe 🚀: 27.50 USD" and message["To"] == "alice@example.com"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n")) and re.fullmatch(rb"[\x00-\x7f]*", raw)


@pytest.mark.parametrize("logical, drawn", [
    ("Team צוות שלום x", "Team םולש תווצ x"),  # an RTL run inside LTR text, reversed in place
    ("צוות שלום Team 1", "Team 1 םולש תווצ"),  # an RTL paragraph: runs in right-to-left order
    ("שָׁלוֹם", "םוֹלשָׁ"),  # points stay on their letters
    ("فريق \u202eevil", "live قيرف"),  # an override: its run is right to left too
    ("Z\u0337\u0322a\u0334lgo ẞ", "Z\u0337\u0322a\u0334lgo ẞ"),  # left to right: as it is
])
def test_right_to_left_text_is_drawn_in_visual_order(billing, logical, drawn):
    from usage_ledger.adapters.pdf import visual

    assert visual(logical) == drawn
    assert drawn in pdf_text(billing.render_invoice_pdf(invoice(team_name=logical)))
