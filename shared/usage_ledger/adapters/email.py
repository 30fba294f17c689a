"""Email through Amazon SES from the template's SenderEmail, rendered by jinja2 (HTML + text)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from usage_ledger.adapters import aws
from usage_ledger.config import settings
from usage_ledger.domain.money import format_minor_units

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """Built once per container; HTML templates are autoescaped, text templates are not."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = lambda amount, currency: format_minor_units(int(amount), currency)
    return env


def render(name: str, **context: Any) -> str:
    """Render `templates/<name>` (e.g. 'invoice.html')."""
    return environment().get_template(name).render(**context)


def send(to: list[str], subject: str, html: str, text: str) -> str:
    """One SES message with an HTML and a plain-text part; returns the SES message id."""
    response = aws.client("ses").send_email(
        Source=settings().sender_email,
        Destination={"ToAddresses": to},
        Message={
            "Subject": {"Data": subject, "Charset": "UTF-8"},
            "Body": {"Text": {"Data": text, "Charset": "UTF-8"}, "Html": {"Data": html, "Charset": "UTF-8"}},
        },
    )
    return response["MessageId"]
