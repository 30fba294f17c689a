"""What moto SES sent, read the same way whether it went as SendEmail or as a raw MIME message.

SendEmail messages keep `subject`, `body` (moto keeps the HTML one) and `destinations`
({"ToAddresses": [...]}); raw ones (SendRawEmail, the invoice with its PDF) keep only the MIME text.
`SentEmail` gives both the first kind's attributes, plus the parts and attachments of raw ones.
"""
from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import RawMessage, ses_backends


@dataclass(frozen=True)
class SentAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class SentEmail:
    subject: str
    body: str  # the HTML part when there is one (as moto keeps SendEmail's), else the text
    destinations: dict[str, list[str]]
    text: str | None = None
    html: str | None = None
    attachments: list[SentAttachment] = field(default_factory=list)
    mime: Any = None  # the parsed message of a raw email

    @classmethod
    def of(cls, message: Any) -> SentEmail:
        if not isinstance(message, RawMessage):
            return cls(message.subject, message.body, message.destinations, html=message.body)
        parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
        text = html = None
        attachments = []
        for part in parsed.walk():
            if part.is_multipart():
                continue
            if part.get_content_disposition() == "attachment":
                attachments.append(SentAttachment(part.get_filename(), part.get_content_type(),
                                                  part.get_payload(decode=True)))
            elif part.get_content_type() == "text/plain" and text is None:
                text = part.get_content()
            elif part.get_content_type() == "text/html" and html is None:
                html = part.get_content()
        to = list(dict.fromkeys(message.destinations))
        return cls(str(parsed["Subject"]), html or text or "", {"ToAddresses": to}, text, html, attachments, parsed)


def sent_emails(region: str = "us-east-1") -> list[SentEmail]:
    return [SentEmail.of(message) for message in ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages]
