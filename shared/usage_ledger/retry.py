"""The one retry policy for lost races (a version moved, a transaction conflicted): jittered,
exponential, capped. Throttling and 5xx are retried below this, by the SDK's own policy."""
from __future__ import annotations

import random
import time
from collections.abc import Iterator


def attempts(count: int) -> Iterator[int]:
    """0, 1, ... count-1, backing off before every attempt after the first."""
    for attempt in range(count):
        if attempt:
            backoff(attempt - 1)
        yield attempt


def backoff(attempt: int) -> None:
    time.sleep(min(0.02 * (2 ** attempt), 0.5) * random.random())
