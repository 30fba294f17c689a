"""Deterministic identifiers: the same inputs always name the same thing (retries find their own work)."""
from __future__ import annotations

import hashlib
import re
import uuid

# every id a caller names (team, user, app, resource, ...): no '#' or '/', so keys split unambiguously
IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
_IDENTIFIER = re.compile(IDENTIFIER)


def is_identifier(value: str) -> bool:
    return bool(_IDENTIFIER.fullmatch(value))


def stable_hash(*parts: str, length: int = 32) -> str:
    """A hex digest of the parts, unambiguous across part boundaries."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(4, "big"))
        digest.update(encoded)
    return digest.hexdigest()[:length]


def new_subscription_id() -> str:
    return f"sub_{uuid.uuid4().hex[:20]}"


def new_credit_note_id() -> str:
    return f"cn_{uuid.uuid4().hex[:20]}"
