"""Responses carry numbers exactly: every Decimal DynamoDB can hold comes back digit for digit."""
import json
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from usage_ledger.http.api import dumps

# DynamoDB numbers: up to 38 significant digits
DYNAMO_NUMBERS = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: len(d.as_tuple().digits) <= 38 and -130 < d.as_tuple().exponent < 126)

# any finite Decimal of up to 40 digits (trailing zeros, -0 and exponents included), built from its parts
ANY_DECIMALS = st.builds(
    lambda sign, digits, exponent: Decimal((sign, tuple(digits), exponent)),
    st.integers(0, 1), st.lists(st.integers(0, 9), min_size=1, max_size=40), st.integers(-60, 60))

# how the API writes a number: no exponent, no trailing zeros, no leading zeros, no "-0"
PLAIN_NUMBER = re.compile(r"0|-?(0\.[0-9]*[1-9]|[1-9][0-9]*(\.[0-9]*[1-9])?)")


@given(st.lists(DYNAMO_NUMBERS, max_size=5))
def test_every_dynamodb_number_round_trips_exactly(values):
    decoded = json.loads(dumps({"values": values}), parse_float=Decimal, parse_int=Decimal)
    assert decoded["values"] == values


@given(ANY_DECIMALS)
def test_any_decimal_of_up_to_40_digits_round_trips_exactly_in_plain_notation(value):
    text = dumps(value)
    assert PLAIN_NUMBER.fullmatch(text), text
    assert json.loads(text, parse_float=Decimal) == value
    assert json.loads(dumps({"v": [value]}), parse_float=Decimal) == {"v": [value]}


def test_more_digits_than_the_default_context_keeps_are_not_rounded():
    # found in review: normalize() rounded at 28 digits and left the marker in the response
    value = Decimal("12345678901234567890123456789.5")
    assert dumps({"a": value}) == '{"a":12345678901234567890123456789.5}'
    assert dumps(Decimal("1234567890123456789012345678901234567890")) == "1234567890123456789012345678901234567890"


@pytest.mark.parametrize("value, text", [
    (Decimal("5"), "5"),
    (Decimal("5.000"), "5"),
    (Decimal("1E+2"), "100"),
    (Decimal("-1.00E+3"), "-1000"),
    (Decimal("0.10"), "0.1"),
    (Decimal("1E-7"), "0.0000001"),
    (Decimal("-0"), "0"),
    (Decimal("0E-5"), "0"),
    (Decimal("-0.50"), "-0.5"),
    (Decimal("999999999999.999999"), "999999999999.999999"),
])
def test_integral_decimals_are_integers_and_fractions_keep_their_digits_without_exponent(value, text):
    assert dumps(value) == text
    assert dumps({"n": value}) == f'{{"n":{text}}}'


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("-sNaN"), Decimal("Infinity"), Decimal("-Infinity"),
                                   float("nan"), float("inf")])
def test_numbers_json_cannot_carry_are_refused(value):
    with pytest.raises(ValueError):
        dumps({"n": [value]})


def test_times_dates_and_sets_have_one_form():
    instant = datetime(2026, 11, 25, 13, 30, tzinfo=timezone(timedelta(hours=1)))
    body = {"at": instant, "day": date(2026, 2, 1), "ids": {"b", "c", "a"}, "sizes": frozenset({Decimal("2.50"), 1})}
    assert dumps(body) == '{"at":"2026-11-25T12:30:00Z","day":"2026-02-01","ids":["a","b","c"],"sizes":[1,2.5]}'


def test_output_is_compact_utf_8_and_strings_stay_strings():
    body = {"name": "Équipe 東京 \u2028", "n": "5", "t": (1, None, True)}
    assert dumps(body) == '{"name":"Équipe 東京 \u2028","n":"5","t":[1,null,true]}'


def test_what_json_has_no_form_for_is_refused():
    for value in (b"bytes", object(), {Decimal("1"): "decimal key"}):
        with pytest.raises(TypeError):
            dumps({"v": value})
