"""Deterministic identifiers: the same inputs always name the same thing (retries find their own work)."""
from __future__ import annotations

import hashlib
import uuid


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
