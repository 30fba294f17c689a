"""DynamoDB failures as the few outcomes the stores act on: a condition failed, a transaction was
cancelled (with a reason per item), or anything else (raised as it is)."""
from __future__ import annotations

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
    ('None' for items that were fine); [] when the error is not a cancelled transaction."""
    if not isinstance(error, TransactWriteError) or error_code(error) != "TransactionCanceledException":
        return []
    reasons = error.cancellation_reasons
    if reasons:
        return [reason.code if reason is not None else "None" for reason in reasons]
    # some stand-ins put the codes only in the message: "... [None, ConditionalCheckFailed]"
    message = error.cause_response_message or ""
    inside = message[message.find("[") + 1 : message.rfind("]")]
    return [code.strip() for code in inside.split(",")] if inside else []
