"""DynamoDB failures as the few outcomes the stores act on: a condition failed, a transaction was
cancelled (with a reason per item), a failure a later attempt may not meet, or anything else
(raised as it is)."""
from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from pynamodb.exceptions import PynamoDBException, TransactWriteError

CONDITION_FAILED = "ConditionalCheckFailed"
TRANSACTION_CONFLICT = "TransactionConflict"


def error_code(error: BaseException) -> str:
    """The AWS error code behind a pynamodb or botocore error ('' when there is none)."""
    if isinstance(error, PynamoDBException):
        return error.cause_response_code or ""
    response = getattr(error, "response", None)
    return (response or {}).get("Error", {}).get("Code", "") if isinstance(response, dict) else ""


def is_condition_failure(error: BaseException) -> bool:
    return error_code(error) == "ConditionalCheckFailedException"


def cancellation_codes(error: BaseException) -> list[str]:
    """Per-item reason codes of a cancelled transaction, in the order its items were given
    ('None' for items that were fine); [] when the error is not a cancelled transaction. Takes
    pynamodb's TransactWriteError and botocore's ClientError (a low-level transaction)."""
    if error_code(error) != "TransactionCanceledException":
        return []
    if isinstance(error, TransactWriteError):
        reasons = [reason.code if reason is not None else "None" for reason in error.cancellation_reasons or []]
        message = error.cause_response_message or ""
    elif isinstance(error, ClientError):
        reasons = [reason.get("Code") or "None" for reason in error.response.get("CancellationReasons") or []]
        message = error.response.get("Error", {}).get("Message", "")
    else:
        return []
    if reasons:
        return reasons
    # some stand-ins put the codes only in the message: "... [None, ConditionalCheckFailed]"
    inside = message[message.find("[") + 1 : message.rfind("]")]
    return [code.strip() for code in inside.split(",")] if inside else []


# what DynamoDB says when the request itself is wrong (an item over 400 KB, a key too long, a
# string it cannot take): the same data meets it again, so retrying cannot help
REQUEST_INVALID = frozenset({"ValidationException", "SerializationException"})
# cancellation reasons that depend on the moment (another writer, throttling), not on the data:
# only these make a cancelled transaction worth re-reading and trying again
MOMENTARY = frozenset({CONDITION_FAILED, TRANSACTION_CONFLICT, "ThrottlingError", "ProvisionedThroughputExceeded"})


def lost_a_race(codes: list[str]) -> bool:
    """A cancelled transaction another attempt may get through (ValidationError, or anything a
    stand-in reports instead, is the data's: the same items fail the same way)."""
    return bool(set(codes) & MOMENTARY)


def must_retry(error: BaseException) -> bool:
    """Whether a later attempt may not meet this error: throttling, conflicts, 5xx, the network,
    credentials, permissions, a missing table: anything from AWS but a request it calls invalid.
    A Python error (a string that cannot be encoded, a number out of range) is the data's."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ParamValidationError):
            return False
        code = error_code(current)
        if code == "TransactionCanceledException":
            reasons = cancellation_codes(current)
            return not reasons or lost_a_race(reasons)
        if code:
            return code not in REQUEST_INVALID
        if isinstance(current, (ClientError, BotoCoreError)):
            return True
        current = (current.cause if isinstance(current, PynamoDBException) else None) or current.__cause__
    return False
