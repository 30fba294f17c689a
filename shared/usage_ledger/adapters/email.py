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
        """One SES message with an HTML and a plain-text part; returns the SES message id. With
        attachments it is a raw MIME message: multipart/mixed of multipart/alternative and the files."""
        if attachments:
            return self._send_raw(to, subject, html, text, attachments)
        response = aws.client("ses").send_email(
            Source=self.sender,
            Destination={"ToAddresses": to},
            Message={
                "Subject": {"Data": subject, "Charset": "UTF-8"},
                "Body": {"Text": {"Data": text, "Charset": "UTF-8"}, "Html": {"Data": html, "Charset": "UTF-8"}},
            },
        )
        return response["MessageId"]

    def _send_raw(self, to: list[str], subject: str, html: str, text: str,
                  attachments: Sequence[Attachment]) -> str:
        raw = mime_message(self.sender, to, subject, html, text, attachments)
        # no Destinations: SES takes the recipients from the To header (naming both lists them twice)
        response = aws.client("ses").send_raw_email(Source=self.sender, RawMessage={"Data": raw})
        return response["MessageId"]


def mime_message(sender: str, to: list[str], subject: str, html: str, text: str,
                 attachments: Sequence[Attachment]) -> bytes:
    """multipart/mixed: [multipart/alternative: [text/plain, text/html], attachment...] (RFC 2046)."""
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
