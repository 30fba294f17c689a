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


# the events queues' maxReceiveCount (template.yaml): the receive after which SQS dead-letters a message
EVENTS_MAX_RECEIVES = 5


def redelivery_delay(receive_count: int) -> int:
    """Seconds before SQS delivers a failed events message again: 5, 10, 20, 40 after its 1st to
    4th receive (what fails on the 5th is set aside; 80 if even that fails, then the DLQ), never
    more than the queue's 180 s visibility timeout. A FIFO group
    waits behind its failed message, so a momentary failure (throttling, a conflict) must not
    hold a team's usage back for the whole timeout."""
    return min(180, 5 * 2 ** (max(receive_count, 1) - 1))


def backoff(attempt: int) -> None:
    time.sleep(min(0.02 * (2 ** attempt), 0.5) * random.random())
