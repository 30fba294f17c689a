"""Text the ledger can store. Every string it keeps goes to DynamoDB and SQS as UTF-8, so a string
is storable when it encodes as UTF-8: valid Unicode, which a lone surrogate ("\\ud800", legal in
JSON's escapes and in a Python str) is not."""
from __future__ import annotations

import json

from usage_ledger.domain.model import UsageEvent

NOT_UNICODE = "must be valid Unicode text (no lone surrogate such as \\ud800)"


def is_storable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_fields(event: UsageEvent) -> list[str]:
    """The names of an event's strings that could not be stored (ingest sets such events aside)."""
    fields = {"source": event.source, "id": event.id, "team_id": event.team_id, "resource_id": event.resource_id,
              "user_id": event.user_id, "app_id": event.app_id}
    return [name for name, value in fields.items() if value is not None and not is_storable(value)]


def shown(value: str, limit: int = 80) -> str:
    """A string as it can be shown in any log, item or response: JSON-escaped ASCII, shortened."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 4] + '..."'
