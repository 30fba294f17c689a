"""DynamoDB plumbing: one client per container, item (de)serialization, keys, transactions."""
from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any, Iterator

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from usage_ledger.adapters import aws

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# a transaction holds at most 100 items (DynamoDB limit)
MAX_TRANSACTION_ITEMS = 100


def client() -> Any:
    return aws.client("dynamodb")


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in values.items() if value is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def values(mapping: dict[str, Any]) -> dict[str, Any]:
    """ExpressionAttributeValues from plain Python values."""
    return {key: _serializer.serialize(value) for key, value in mapping.items()}


def as_int(value: Any) -> int:
    return int(value) if value is not None else 0


def as_decimal(value: Any) -> Decimal:
    return Decimal(value) if value is not None else Decimal(0)


def stable_hash(*parts: str, length: int = 32) -> str:
    """A hex digest of the parts, unambiguous across part boundaries."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(4, "big"))
        digest.update(encoded)
    return digest.hexdigest()[:length]


def query_all(**kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a Query, following LastEvaluatedKey."""
    while True:
        page = client().query(**kwargs)
        for item in page.get("Items", []):
            yield from_item(item)
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def is_condition_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def cancellation_codes(error: ClientError) -> list[str]:
    """Per-item reason codes of a cancelled transaction ('None' for items that were fine)."""
    if error.response["Error"]["Code"] != "TransactionCanceledException":
        return []
    reasons = error.response.get("CancellationReasons")
    if reasons is None:  # some stand-ins only put the codes in the message
        message = error.response["Error"].get("Message", "")
        inside = message[message.find("[") + 1 : message.rfind("]")]
        return [code.strip() for code in inside.split(",")] if inside else []
    return [reason.get("Code", "None") for reason in reasons]
