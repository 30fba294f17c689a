"""Email: jinja2 templates rendered to HTML and text (and the invoice's PDF), sent through Amazon
SES from the template's SenderEmail: a message with attachments goes as a raw MIME message."""
from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP
from functools import cached_property
from pathlib import Path
from typing import Any

from usage_ledger.adapters import aws
from usage_ledger.domain.money import format_minor_units
from usage_ledger.service.ports import Attachment

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class Renderer:
    """jinja2, imported and configured on first use (only the functions that render pay for it)."""

    @cached_property
    def environment(self) -> Any:
        from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

        env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["money"] = lambda amount, currency: format_minor_units(int(amount), currency)
        return env

    def render(self, name: str, **context: Any) -> str:
        """Render `templates/<name>` (e.g. 'invoice.html'); HTML is autoescaped, text is not."""
        return self.environment.get_template(name).render(**context)

    def pdf(self, document: dict[str, Any]) -> bytes:
        """The invoice document as a PDF (fpdf2, imported on first use: only PDFs pay for it)."""
        from usage_ledger.adapters.pdf import invoice_pdf

        return invoice_pdf(document)


class SesMailer:
    def __init__(self, sender: str) -> None:
        self.sender = sender

    def send(self, to: list[str], subject: str, html: str, text: str,
             attachments: Sequence[Attachment] = ()) -> str:
        """One SES message, always raw MIME: multipart/alternative of the plain-text and the HTML
        part, in multipart/mixed with the files when there are any; returns the SES message id.
        One way for every email, so each keeps both its parts wherever it is read (moto's
        SendEmail keeps only the HTML)."""
        raw = mime_message(self.sender, to, subject, html, text, attachments)
        # no Destinations: SES takes the recipients from the To header (naming both lists them twice)
        response = aws.client("ses").send_raw_email(Source=self.sender, RawMessage={"Data": raw})
        return response["MessageId"]


def mime_message(sender: str, to: list[str], subject: str, html: str, text: str,
                 attachments: Sequence[Attachment]) -> bytes:
    """multipart/alternative: [text/plain, text/html], inside multipart/mixed with attachments (RFC 2046)."""
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return message.as_bytes()
