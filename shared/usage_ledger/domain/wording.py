"""How documents say dates, instants and quantities: in words, in the purchaser's zone, exactly.

    date_in_words("2026-03-28")                            -> "March 28, 2026"
    instant_in_words(2026-03-28T08:00Z, "America/Los_Angeles") -> "March 28, 2026, 1:00 AM PDT"
    quantity_in_words(Decimal(18), "processing minute")    -> "18 processing minutes"
"""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def date_in_words(day: date | str) -> str:
    """A calendar date (or its ISO form) as 'March 28, 2026' (no locale: the same on every host)."""
    value = date.fromisoformat(day) if isinstance(day, str) else day
    return f"{MONTHS[value.month - 1]} {value.day}, {value.year}"


def local(at: datetime, zone: str | None) -> datetime:
    return at.astimezone(ZoneInfo(zone) if zone else UTC)


def local_date_in_words(at: datetime, zone: str | None) -> str:
    """The date that `at` falls on in `zone` (UTC when the zone is unknown)."""
    return date_in_words(local(at, zone).date())


def instant_in_words(at: datetime, zone: str | None) -> str:
    """'March 28, 2026, 1:00 AM PDT': the local date and the clock time with the zone's abbreviation."""
    moment = local(at, zone)
    hour = moment.hour % 12 or 12
    clock = f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"
    return f"{date_in_words(moment.date())}, {clock} {moment.tzname() or 'UTC'}"


def number_in_words(value: Decimal | int) -> str:
    """An exact quantity as written: 18, 2.5, 1,250 (no exponent, no trailing zeros)."""
    number = Decimal(value)
    if number == number.to_integral_value():
        return f"{int(number):,}"
    text = format(number.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{int(whole):,}.{fraction}" if whole.lstrip("-").isdigit() else text


def plural(unit: str, quantity: Decimal | int) -> str:
    """'processing minute' -> 'processing minutes' unless the quantity is exactly one; 'GB' stays."""
    last = unit.split()[-1] if unit.strip() else ""
    if Decimal(quantity) == 1 or not last.isalpha() or last.endswith("s") or last.isupper():
        return unit  # one, an abbreviation (GB, kWh stays as written: only all-caps ones), already plural
    return f"{unit}es" if unit.endswith(("ch", "sh", "x")) else f"{unit}s"


def quantity_in_words(quantity: Decimal | int, unit: str) -> str:
    return f"{number_in_words(quantity)} {plural(unit, quantity)}"
