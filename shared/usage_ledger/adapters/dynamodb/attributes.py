"""Attribute types pynamodb lacks: exact decimals, RFC 3339 instants that sort as strings, int maps."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pynamodb.attributes import Attribute
from pynamodb.constants import MAP, NUMBER, STRING

from usage_ledger.domain.calendar import iso, parse_instant


class ExactDecimalAttribute(Attribute[Decimal]):
    """A DynamoDB number read back as the Decimal that was written (NumberAttribute goes through
    float: 999999999999.999999 would come back as 1000000000000.0)."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return format(Decimal(value), "f")

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


class InstantAttribute(Attribute[datetime]):
    """A UTC instant as RFC 3339 with a Z, to the second: strings that sort as time does (the
    due-cycle index and lease conditions compare them)."""

    attr_type = STRING

    def serialize(self, value: datetime) -> str:
        text = iso(value)
        assert text is not None
        return text

    def deserialize(self, value: str) -> datetime:
        return parse_instant(value)


class IntMapAttribute(Attribute[dict]):
    """A map of string keys to integers (charged units per period or per day)."""

    attr_type = MAP

    def serialize(self, value: dict[str, int]) -> dict[str, Any]:
        return {key: {NUMBER: str(int(amount))} for key, amount in value.items()}

    def deserialize(self, value: dict[str, Any]) -> dict[str, int]:
        return {key: int(Decimal(amount[NUMBER])) for key, amount in value.items()}
