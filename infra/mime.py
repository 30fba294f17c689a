"""Read a raw MIME email (what SES's SendRawEmail takes) into its subject, text and HTML parts and
attachments: the local runner's outbox (`/_local/emails`) and the tests' `sent_mail` both read
moto's raw messages here."""
from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class MimeEmail:
    subject: str
    text: str | None = None  # the first text/plain part that is not an attachment
    html: str | None = None  # the first text/html part that is not an attachment
    attachments: list[Attachment] = field(default_factory=list)
    parsed: Any = None  # the email.message.EmailMessage


def read_mime(raw: str) -> MimeEmail:
    parsed = email.message_from_string(raw, policy=email.policy.default)
    text = html = None
    attachments = []
    for part in parsed.walk():
        if part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment":
            attachments.append(Attachment(part.get_filename(), part.get_content_type(), part.get_payload(decode=True)))
        elif part.get_content_type() == "text/plain" and text is None:
            text = part.get_content()
        elif part.get_content_type() == "text/html" and html is None:
            html = part.get_content()
    # a long subject is folded right after "Subject:": the unfolded value starts with that space
    return MimeEmail(str(parsed.get("Subject", "")).strip(), text, html, attachments, parsed)
