"""Typed domain errors; the HTTP edge maps each type to one RFC 9457 problem."""
from __future__ import annotations

from dataclasses import dataclass


class LedgerError(Exception):
    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class NotFound(LedgerError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Forbidden(LedgerError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class Unauthorized(LedgerError):
    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class Conflict(LedgerError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class BadRequest(LedgerError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class PayloadTooLarge(LedgerError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(LedgerError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


@dataclass
class FieldError:
    path: str
    message: str


class ValidationFailed(LedgerError):
    status = 422
    slug = "validation-error"
    title = "Validation failed"

    def __init__(self, errors: list[FieldError], detail: str = "") -> None:
        self.errors = errors
        summary = "; ".join(f"{error.path}: {error.message}" for error in errors[:5])
        super().__init__(detail or f"Invalid request: {summary}")

    @classmethod
    def single(cls, path: str, message: str) -> ValidationFailed:
        return cls([FieldError(path, message)])


class ForgedEvent(LedgerError):
    """A processor event whose signature is missing, wrong or too old: nothing is changed."""

    status = 400
    slug = "bad-signature"
    title = "Bad signature"


class PaymentMethodRejected(LedgerError):
    """The processor does not know the PaymentMethod, or it is not a card (the caller names the field)."""

    status = 422
    slug = "validation-error"
    title = "Validation failed"


class ProcessorUnavailable(LedgerError):
    """The payment processor timed out or failed (5xx, network): not a decline; retry later with the
    same idempotency key."""

    status = 503
    slug = "payment-processor-unavailable"
    title = "Payment processor unavailable"


class Contended(LedgerError):
    """A write kept losing races (versions, conflicting transactions); the caller retries later
    (SQS redelivers the message, the scheduler reruns the job)."""
