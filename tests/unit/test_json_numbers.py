"""Responses carry numbers exactly: every Decimal DynamoDB can hold comes back digit for digit."""
import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from usage_ledger.http.api import dumps

# DynamoDB numbers: up to 38 significant digits
DYNAMO_NUMBERS = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: len(d.as_tuple().digits) <= 38 and -130 < d.as_tuple().exponent < 126)


@given(st.lists(DYNAMO_NUMBERS, max_size=5))
def test_every_dynamodb_number_round_trips_exactly(values):
    decoded = json.loads(dumps({"values": values}), parse_float=Decimal, parse_int=Decimal)
    assert decoded["values"] == values


def test_more_digits_than_the_default_context_keeps_are_not_rounded():
    # found in review: normalize() rounded at 28 digits and left the marker in the response
    value = Decimal("12345678901234567890123456789.5")
    assert dumps({"a": value}) == '{"a":12345678901234567890123456789.5}'
