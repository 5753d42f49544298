"""Error budgets and the periods they are counted over, on plain values."""

from __future__ import annotations

import math

import pytest

from cbmon.domain import Figures
from cbmon.ingest.periods import HOUR, MINUTE, Periods
from cbmon.slo.budget import Budget, budgets, thresholds_of
from cbmon.slo.objectives import Target
from tests.support.baselines import baseline

DAY = 86400.0
NOW = 1_800_000_000.0  # a minute and an hour boundary: 1800000000 = 500000 h


def attempts(total: int, failed: int = 0) -> Figures:
    return Figures(attempts=total, failures=failed)


def test_a_window_counts_the_slots_it_spans_and_the_rings_forget_what_is_too_old() -> None:
    periods = Periods(longest=2 * DAY)
    periods.add(NOW - 30 * MINUTE, {"pay": attempts(10, 1)}, attempts(10, 1))
    periods.add(NOW - 2 * HOUR, {"pay": attempts(5, 5)}, attempts(5, 5))
    periods.add(NOW + 10, {"pay": attempts(100)}, attempts(100))
    assert periods.counts("pay", HOUR, NOW + 10)[:2] == (110, 1)
    assert periods.counts("pay", 6 * HOUR, NOW + 10)[:2] == (115, 6)
    assert periods.counts("", DAY, NOW + 10)[:2] == (115, 6)
    # 47 hours on, the 2-day window still holds the hour of NOW, not the hours before it.
    later = NOW + 2 * DAY - HOUR
    periods.add(later, {"pay": attempts(1)}, attempts(1))
    assert periods.counts("pay", 2 * DAY, later)[:2] == (101, 0)
    assert periods.counts("pay", HOUR, later)[:2] == (1, 0)
    # Past the ring's span, nothing older is held, whatever the window asked for.
    latest = NOW + 5 * DAY
    periods.add(latest, {"pay": attempts(2)}, attempts(2))
    assert periods.counts("pay", 30 * DAY, latest)[:2] == (2, 0)


def test_history_lands_in_the_slot_it_ends() -> None:
    periods = Periods(longest=DAY)
    # The backfill stamps a slot with its end: 12:01 ends the slot 12:00-12:01.
    periods.backfill(MINUTE, [(NOW - 59 * MINUTE, {"pay": attempts(7, 7)})])
    periods.backfill(HOUR, [(NOW - 3 * HOUR, {"pay": attempts(7, 7)})])
    assert periods.counts("pay", HOUR, NOW - 1)[:2] == (7, 7)
    assert periods.counts("pay", DAY, NOW - 1)[:2] == (7, 7)
    assert periods.counts("", DAY, NOW - 1)[:2] == (7, 7)


def test_latency_counts_keep_the_attempts_at_or_below_each_threshold() -> None:
    periods = Periods(longest=DAY, thresholds=[0.2])
    fast = Figures(attempts=10, observed=10, buckets=(2, 4, 6, 8, 9, 10, 10, 10, 10))
    periods.add(NOW, {"pay": fast}, fast)
    assert periods.counts("pay", HOUR, NOW) == (10, 0, (10, 8))


def test_the_budget_spent_remaining_burn_and_time_to_exhaustion() -> None:
    target = Target(0.995, 30 * DAY)
    found = Budget("success_rate", "", target, events=10_000, bad=25, burn={"1h": 2.0})
    assert found.spent == pytest.approx(0.5)
    assert found.remaining == pytest.approx(0.5)
    # Half the budget left, burning twice as fast as it accrues: gone in a quarter period.
    assert found.exhausted_in("1h") == pytest.approx(0.5 * 30 * DAY / 2.0)
    overspent = Budget("success_rate", "", target, events=100, bad=10, burn={"1h": 0.0})
    assert overspent.remaining == pytest.approx(-19.0)
    assert overspent.exhausted_in("1h") == 0.0
    idle = Budget("success_rate", "", target, events=0, bad=0, burn={"1h": None})
    assert (idle.remaining, idle.exhausted_in()) == (None, None)


def test_every_objective_overall_and_per_event_type_with_its_own_target() -> None:
    judged_by = baseline(
        targets={
            "success_rate": Target(0.99, 30 * DAY),
            "latency": Target(0.9, 30 * DAY, threshold=0.2),
        },
        event_targets={"pay": {"success_rate": Target(0.999, 7 * DAY)}},
    )
    thresholds = thresholds_of(judged_by)
    periods = Periods(longest=30 * DAY, thresholds=thresholds)
    pay = Figures(attempts=1000, failures=2, observed=1000, buckets=(0, 0, 0, 950) + (1000,) * 5)
    ship = Figures(attempts=100, failures=10, observed=0)
    periods.add(NOW, {"pay": pay, "ship": ship}, pay + ship)
    found = {
        (b.slo, b.event_type): b
        for b in budgets(judged_by, periods.labels(), periods.counts, thresholds, NOW)
    }
    assert set(found) == {
        ("success_rate", ""),
        ("latency", ""),
        ("success_rate", "pay"),
        ("latency", "pay"),
        ("success_rate", "ship"),
        ("latency", "ship"),
    }
    assert found[("success_rate", "pay")].target.target == 0.999
    assert found[("success_rate", "pay")].spent == pytest.approx((2 / 1000) / 0.001)
    assert found[("success_rate", "ship")].spent == pytest.approx((10 / 100) / 0.01)
    assert found[("latency", "pay")].spent == pytest.approx((50 / 1000) / 0.1)
    assert found[("latency", "ship")].remaining is None  # no duration observed
    assert found[("success_rate", "")].events == 1100
    assert math.isclose(found[("success_rate", "")].burn["5m"] or 0, (12 / 1100) / 0.01)
