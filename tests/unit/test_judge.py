"""The one judge: exact baseline boundaries, and enough samples before anything is judged."""

from __future__ import annotations

import pytest

from cbmon.domain import BUCKETS, Figures, Level
from cbmon.slo.judge import Indicator, evaluate, judge, judge_slo
from cbmon.slo.objectives import DEFAULT
from tests.support.baselines import baseline

T = DEFAULT


def figures(attempts: int, failures: int, seconds: float, observed: int | None = None) -> Figures:
    """``attempts`` calls of ``seconds`` each; ``observed`` of them with a duration."""
    seen = attempts if observed is None else observed
    return Figures(
        attempts=attempts,
        failures=failures,
        observed=seen,
        sum_seconds=seconds * seen,
        buckets=tuple(seen if seconds <= bound else 0 for bound in BUCKETS),
        slow=seen if seconds > 0.2 else 0,
    )


@pytest.mark.parametrize(
    ("rate", "level"),
    [
        (1.0, Level.OK),
        (0.9951, Level.OK),
        (0.995, Level.WARNING),
        (0.992, Level.WARNING),
        (0.99, Level.WARNING),
        (0.9899, Level.CRITICAL),
        (0.0, Level.CRITICAL),
        (None, Level.UNKNOWN),
        (float("nan"), Level.UNKNOWN),
    ],
)
def test_success_rate_boundaries(rate: float | None, level: Level) -> None:
    assert judge_slo("success_rate", rate, T) is level


@pytest.mark.parametrize(
    ("seconds", "level"),
    [
        (0.0, Level.OK),
        (0.1499, Level.OK),
        (0.15, Level.WARNING),
        (0.3, Level.WARNING),
        (0.5, Level.WARNING),
        (0.5001, Level.CRITICAL),
    ],
)
def test_latency_boundaries(seconds: float, level: Level) -> None:
    assert judge_slo("avg_latency", seconds, T) is level


@pytest.mark.parametrize(
    ("items", "level"),
    [(0, Level.OK), (999, Level.OK), (1000, Level.WARNING), (5000, Level.WARNING),
     (5001, Level.CRITICAL)],
)  # fmt: skip
def test_backlog_boundaries(items: int, level: Level) -> None:
    assert judge_slo("backlog", items, T) is level


def levels(indicators: list[Indicator]) -> dict[tuple[str, str], Level]:
    return {(i.slo, i.event_type): i.state for i in indicators}


def test_exactly_the_boundaries_are_warnings() -> None:
    # 995 of 1000 is exactly 99.5 %: a warning, not ok.
    got = levels(evaluate(figures(1000, 5, 0.15), {}, 1000, baseline(min_events=20)))
    assert got[("success_rate", "")] is Level.WARNING
    assert got[("avg_latency", "")] is Level.WARNING
    assert got[("backlog", "")] is Level.WARNING


def test_too_few_events_are_not_judged() -> None:
    few = figures(3, 1, 2.0)
    got = levels(evaluate(few, {"a": few}, 0, baseline(min_events=20)))
    assert got[("success_rate", "")] is Level.UNKNOWN
    assert got[("avg_latency", "a")] is Level.UNKNOWN
    assert got[("backlog", "")] is Level.OK  # the queue is always judged


def test_latency_is_judged_on_observed_durations_not_on_attempts() -> None:
    """100 attempts, only 5 with a duration: the rate is judged, the latency is not."""
    verdicts = judge(figures(100, 0, 0.9, observed=5), baseline(min_events=20))
    assert verdicts.success_rate is Level.OK
    assert verdicts.avg_latency is Level.UNKNOWN
    verdicts = judge(figures(100, 0, 0.9, observed=20), baseline(min_events=20))
    assert verdicts.avg_latency is Level.CRITICAL
    assert verdicts.worst is Level.CRITICAL


def test_p95_is_shown_and_the_slow_share_judged_by_the_design_limit() -> None:
    got = evaluate(figures(1000, 0, 0.3), {}, 0, baseline(min_events=20))
    shown = {i.slo: i for i in got if i.slo in ("p95_latency", "slow_share")}
    assert shown["p95_latency"].value == pytest.approx(0.295)  # 95 % into (0.2, 0.3]
    assert shown["p95_latency"].state is Level.UNKNOWN  # the baseline has no rule for it
    assert shown["slow_share"].value == 1.0  # every attempt above 200 ms: above 20 %
    assert shown["slow_share"].state is Level.CRITICAL
    few = evaluate(figures(10, 0, 0.3), {}, 0, baseline(min_events=20))
    assert next(i for i in few if i.slo == "slow_share").state is Level.UNKNOWN


def test_callbacks_are_judged_on_finished_callbacks_and_any_dead_letter_warns() -> None:
    from cbmon.domain import Callbacks, Figures

    callbacks = Callbacks(delivered=99, dead=1, ended=99, ends=(99,) * 10)
    counted = Figures(attempts=120, failures=21, callbacks=callbacks)
    got = {i.slo: i for i in evaluate(counted, {}, 0, baseline(min_events=20), callbacks=True)}
    assert got["callback_success_rate"].value == pytest.approx(0.99)
    assert got["callback_success_rate"].state is Level.WARNING  # exactly 99 %: not critical
    assert got["dead_letters"].state is Level.WARNING
    assert got["end_to_end_p95"].state is Level.OK  # every one within 50 ms
    none = evaluate(counted, {}, 0, baseline(min_events=20))
    assert not {i.slo for i in none} & {"callback_success_rate", "dead_letters"}
