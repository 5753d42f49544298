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
    avg_latency,
    avg_ms,
    colour,
    count,
    ellipsis_for,
    fit,
    level_word,
    markdown_table,
    millis,
    number,
    percent,
    plain,
    success_rate,
    table,
    use_colour,
    visible_len,
    wrap,
)
from cbmon.slo.objectives import DEFAULT, Baseline

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


def test_a_value_that_is_not_zero_is_never_shown_as_zero() -> None:
    """A limit of 0.0001 % (a NOTIFY queue judged tightly) reads as itself, not "0.00%"."""
    assert percent(0.000001) == "0.0001%"
    assert percent(0.0) == "0.00%"
    assert percent(1e-15) == "<0.0000001%"
    assert millis(0.0000004) == "0.0004 ms"


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


# -- terminal widths: colour codes take no room, lines are cut or wrapped by design -------------


def test_a_table_of_coloured_cells_aligns_by_what_the_terminal_shows() -> None:
    red = colour("CRITICAL", Level.CRITICAL, enabled=True)
    lines = table(["state", "calls"], [[red, "1"], ["ok", "12345"]], text_columns=[0])
    assert [plain(line) for line in lines] == [
        "state     calls",
        "CRITICAL      1",
        "ok        12345",
    ]
    assert lines[1].startswith(red)


def test_min_widths_keep_columns_in_place() -> None:
    assert table(["a", "b"], [["x", "1"]], min_widths=(8, 4)) == [
        "a            b",
        "x            1",
    ]


@pytest.mark.parametrize(
    ("text", "width", "fitted"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("a line that is too long", 10, "a line th\u2026"),
        ("abc", 1, "\u2026"),
    ],
)
def test_fit_cuts_with_an_ellipsis(text: str, width: int, fitted: str) -> None:
    assert fit(text, width) == fitted


def test_fit_keeps_colour_codes_whole_and_resets_after_a_cut() -> None:
    text = "state " + colour("CRITICAL", Level.CRITICAL, enabled=True) + " and more text"
    cut = fit(text, 10)
    assert plain(cut) == "state CRI\u2026"
    assert cut.endswith("\x1b[0m")
    assert visible_len(cut) == 10
    assert fit(text, 10, ellipsis="...") == "state \x1b[1;31mC...\x1b[0m"


def test_wrap_breaks_between_words_and_keeps_numbers_with_their_units() -> None:
    text = "Callback average latency 230 ms for all event types (at or above 150 ms)"
    lines = wrap(text, 30, indent="  ")
    assert lines == [
        "Callback average latency",
        "  230 ms for all event types",
        "  (at or above 150 ms)",
    ]
    assert all(len(line) <= 30 for line in lines)


def test_wrap_cuts_a_word_longer_than_a_line() -> None:
    lines = wrap("id " + "x" * 50 + " end", 20)
    assert lines == ["id", "    xxxxxxxxxxxxxxx\u2026", "    end"]


def test_ellipsis_where_the_stream_can_write_it() -> None:
    class Latin1(io.StringIO):
        encoding = "latin-1"

    class Utf8(io.StringIO):
        encoding = "utf-8"

    assert ellipsis_for(Utf8()) == "\u2026"
    assert ellipsis_for(Latin1()) == "..."


@pytest.mark.parametrize(
    ("show", "shown"),
    [
        (lambda t: success_rate(598 / 601, t), "99.501%"),
        (lambda t: success_rate(0.99, t), "99.00%"),
        (lambda t: avg_latency(0.1496, t), "149.6 ms"),
        (lambda t: avg_ms(149.96, t), "149.96"),
        (lambda t: avg_ms(500.0, t), "500.0"),
        (lambda t: number(123.456), "123.5"),
    ],
)
def test_judged_figures_use_the_thresholds_as_boundaries(
    show: Callable[[Baseline], str], shown: str
) -> None:
    assert show(DEFAULT) == shown
