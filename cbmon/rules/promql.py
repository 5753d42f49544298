"""PromQL as text: numbers written exactly, durations the Prometheus way, and the labels every
aggregation keeps."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from cbmon.durations import format_duration

# Every aggregation keeps these: replicas of one job read the same tables and are taken
# together (max), but two databases or two jobs are never merged.
BY = ("job", "database")
SIGNIFICANT = 12  # digits of a threshold whose decimal expansion does not end


def by(*extra: str) -> str:
    return ", ".join((*BY, *extra))


def exact(value: float | Fraction | int) -> Fraction:
    """The number a person wrote: 0.995 as 995/1000, not the binary float nearest it."""
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)


def number(value: float | Fraction | int) -> str:
    """A threshold as PromQL reads it: ``0.072``, ``5000``, never ``0.07200000000000001``."""
    fraction = exact(value)
    denominator = fraction.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator == 1:  # a finite decimal: exactly
        text = format(Decimal(fraction.numerator) / Decimal(fraction.denominator), "f")
    else:
        text = format(round(Decimal(fraction.numerator) / Decimal(fraction.denominator), 15), "f")
        text = format(Decimal(f"{Decimal(text):.{SIGNIFICANT}g}"), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def duration(seconds: float) -> str:
    return format_duration(seconds)
