"""How values look on every screen: percentages and durations that never seem to sit on a
threshold they are not on, aligned tables, escaped Markdown, colour only where it belongs."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import pytest

from cbmon.domain import Level
from cbmon.present import (
    MISSING,
    colour,
    count,
    level_word,
    markdown_table,
    millis,
    percent,
    table,
    use_colour,
)

RATES = (0.995, 0.99)  # the baseline's success-rate thresholds
LATENCIES = (0.15, 0.5)  # and its average-latency ones, in seconds


@pytest.mark.parametrize(
    ("ratio", "shown"),
    [
        (598 / 601, "99.501%"),  # 99.5008 %: "99.50%" would read as the warning boundary
        (0.995, "99.50%"),  # exactly on it: two decimals are the truth
        (0.99, "99.00%"),
        (0.98999, "98.999%"),
        (0.5, "50.00%"),
        (1.0, "100.00%"),
        (0.0, "0.00%"),
    ],
)
def test_percent_never_looks_like_a_boundary_it_is_not(ratio: float, shown: str) -> None:
    assert percent(ratio, boundaries=RATES) == shown


def test_percent_a_hair_below_a_boundary_is_not_shown_on_it() -> None:
    assert percent(0.99 - 1e-10, boundaries=RATES) == "<99.0000000%"
    assert percent(0.995 + 1e-12, boundaries=RATES) == ">99.5000000%"


def test_percent_without_boundaries_rounds_plainly() -> None:
    assert percent(598 / 601) == "99.50%"
    assert percent(0.12345, digits=1) == "12.3%"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.15, "150 ms"),
        (0.1496, "149.6 ms"),  # "150 ms" would read as the warning boundary
        (0.1504, "150.4 ms"),
        (0.5, "500 ms"),
        (0.50004, "500.04 ms"),  # as many decimals as it takes
        (0.0123, "12 ms"),
        (2.5, "2500 ms"),
    ],
)
def test_millis_never_looks_like_a_boundary_it_is_not(seconds: float, shown: str) -> None:
    assert millis(seconds, boundaries=LATENCIES) == shown


@pytest.mark.parametrize("show", [percent, millis, count])
def test_missing_values_show_as_a_dash(show: Callable[[float | None], str]) -> None:
    assert show(None) == MISSING == "-"
    assert show(math.nan) == "-"


def test_count_is_a_whole_number() -> None:
    assert count(1200.0) == "1200"
    assert count(0) == "0"


def test_level_words_put_problems_in_capitals() -> None:
    assert [level_word(level) for level in Level] == ["-", "ok", "WARNING", "CRITICAL"]
    assert level_word(Level.UNKNOWN, unknown="unknown") == "unknown"


def test_table_aligns_text_left_and_numbers_right() -> None:
    lines = table(
        ["event type", "calls", "success"],
        [["order_created", "12345", "99.50%"], ["refund", "7", "-"]],
    )
    assert lines == [
        "event type     calls  success",
        "order_created  12345   99.50%",
        "refund             7        -",
    ]


def test_table_has_no_trailing_spaces_after_a_short_text_column() -> None:
    lines = table(["calls", "message"], [["3", "HTTP 500"], ["12", "timeout"]], text_columns=[1])
    assert lines == ["calls  message", "    3  HTTP 500", "   12  timeout"]


def test_markdown_escapes_pipes_and_aligns_numbers_right() -> None:
    lines = markdown_table(
        ["error", "count"], [["HTTP 500 | upstream\nfailed", "3"], ["C:\\temp", "1"]]
    )
    assert lines == [
        "| error | count |",
        "|:---|---:|",
        "| HTTP 500 \\| upstream failed | 3 |",
        "| C:\\\\temp | 1 |",
    ]


def test_colour_only_when_enabled() -> None:
    assert colour("CRITICAL", Level.CRITICAL, enabled=True) == "\x1b[1;31mCRITICAL\x1b[0m"
    assert colour("ok", Level.OK, enabled=True) == "\x1b[32mok\x1b[0m"
    assert colour("CRITICAL", Level.CRITICAL, enabled=False) == "CRITICAL"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_on_a_terminal_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(Terminal())
    assert not use_colour(io.StringIO())  # a file or a pipe
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(Terminal())
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: an empty value does not count
    assert use_colour(Terminal())


def test_a_stream_without_isatty_gets_no_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)

    class Sink:
        def write(self, text: str) -> int:
            return len(text)

    assert not use_colour(Sink())  # type: ignore[arg-type]
