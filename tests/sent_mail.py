"""What moto SES sent, read the same way whether it went as SendEmail or as a raw MIME message.

SendEmail messages keep `subject`, `body` (moto keeps the HTML one) and `destinations`
({"ToAddresses": [...]}); raw ones (SendRawEmail, the invoice with its PDF) keep only the MIME text.
`SentEmail` gives both the first kind's attributes, plus the parts and attachments of raw ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import RawMessage, ses_backends

from infra.mime import Attachment, read_mime


@dataclass(frozen=True)
class SentEmail:
    subject: str
    body: str  # the HTML part when there is one (as moto keeps SendEmail's), else the text
    destinations: dict[str, list[str]]
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    mime: Any = None  # the parsed message of a raw email

    @classmethod
    def of(cls, message: Any) -> SentEmail:
        if not isinstance(message, RawMessage):
            return cls(message.subject, message.body, message.destinations, html=message.body)
        mime = read_mime(message.raw_data)
        to = list(dict.fromkeys(message.destinations))  # moto lists To-header recipients twice
        return cls(mime.subject, mime.html or mime.text or "", {"ToAddresses": to}, mime.text, mime.html,
                   mime.attachments, mime.parsed)


def sent_emails(region: str = "us-east-1") -> list[SentEmail]:
    return [SentEmail.of(message) for message in ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages]
