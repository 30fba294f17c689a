"""Email: jinja2 templates rendered to HTML and text, sent through Amazon SES from the template's SenderEmail."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from usage_ledger.adapters import aws
from usage_ledger.domain.money import format_minor_units

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


class SesMailer:
    def __init__(self, sender: str) -> None:
        self.sender = sender

    def send(self, to: list[str], subject: str, html: str, text: str) -> str:
        """One SES message with an HTML and a plain-text part; returns the SES message id."""
        response = aws.client("ses").send_email(
            Source=self.sender,
            Destination={"ToAddresses": to},
            Message={
                "Subject": {"Data": subject, "Charset": "UTF-8"},
                "Body": {"Text": {"Data": text, "Charset": "UTF-8"}, "Html": {"Data": html, "Charset": "UTF-8"}},
            },
        )
        return response["MessageId"]
