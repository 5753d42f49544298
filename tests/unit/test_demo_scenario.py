"""The demo's scenarios: each phase lands in the band of the baseline it is meant to show."""

from __future__ import annotations

import json

import pytest

from cbmon.demo.run import RETRY_POLICY
from cbmon.demo.scenario import FROZEN_LEASE, SCENARIOS, Phase, shortest_cycle, slo_window


def _phases(name: str, cycle: float) -> list[Phase]:
    """The phases one sees sampling the scenario every 100 ms over one cycle."""
    seen: list[Phase] = []
    for step in range(int(cycle * 10)):
        phase = SCENARIOS[name].at(step / 10, cycle).phase
        if not seen or seen[-1] is not phase:
            seen.append(phase)
    return seen


def test_degraded_passes_through_warning_into_critical_and_recovers() -> None:
    phases = _phases("degraded", 120.0)
    assert [p.name for p in phases] == ["healthy", "warning", "critical", "recovered"]
    healthy, warning, critical, recovered = phases
    # the receivers' behaviour lands in each band of the baseline (150/500 ms, 99.5/99 %)
    assert healthy.latency < 0.15
    assert healthy.failure_rate == 0
    assert 0.15 < warning.latency < 0.5
    assert 0.005 < warning.failure_rate < 0.01
    assert critical.latency > 0.5
    assert critical.failure_rate > 0.01
    assert recovered.latency < 0.15
    assert recovered.failure_rate == 0


@pytest.mark.parametrize("cycle", [40.0, 60.0, 120.0, 600.0])
def test_recovery_outlasts_the_window_so_alerts_can_resolve(cycle: float) -> None:
    recovered = SCENARIOS["degraded"].phases[-1]
    critical = SCENARIOS["degraded"].phases[-2]
    recovery_seconds = (recovered.until - critical.until) * cycle
    assert recovery_seconds >= slo_window(cycle) + 5  # the window empties, plus a poll or two
    assert 10 <= slo_window(cycle) <= 30


def test_backlog_scenario_queues_more_than_5000_while_receivers_stall() -> None:
    cycle = 60.0
    scenario = SCENARIOS["backlog"]
    queued = 0.0
    for step in range(int(cycle * 10)):
        conditions = scenario.at(step / 10, cycle)
        if conditions.phase.name == "stalled":
            assert conditions.phase.latency >= 1.0  # workers drain a few rows a second at most
            queued += (conditions.orders_per_second + conditions.ships_per_second) / 10
    assert queued > 5000


def test_the_scenario_repeats_when_the_demo_runs_until_stopped() -> None:
    degraded = SCENARIOS["degraded"]
    assert degraded.at(5.0, 120.0).phase.name == "healthy"
    assert degraded.at(60.0, 120.0).phase.name == "critical"
    assert degraded.at(125.0, 120.0).phase.name == "healthy"


@pytest.mark.parametrize("cycle", [60.0, 120.0, 600.0])
def test_callbacks_scenario_shows_dead_letters_slow_deliveries_and_a_lost_lease(
    cycle: float,
) -> None:
    cycle = max(cycle, shortest_cycle(SCENARIOS["callbacks"]))
    phases = _phases("callbacks", cycle)
    names = [p.name for p in phases]
    assert names == ["healthy", "down", "recovered", "slow", "worker lost", "recovered"]
    spans = dict.fromkeys(names, 0.0)
    start = 0.0
    for phase in phases:
        spans[phase.name] = (phase.until - start) * cycle
        start = phase.until
    down = phases[1]
    assert down.failure_rate == 1.0
    # The retries (0.5 s, 1 s, 2 s at most) run out well inside the phase: dead letters.
    policy = json.loads(RETRY_POLICY)
    retries = sum(
        min(policy["backoff_seconds"] * 2**n, policy["max_backoff_seconds"])
        for n in range(policy["max_retries"])
    )
    assert spans["down"] > 2 * retries
    # Slower than the 1 s end-to-end normal on its own: end to end rises.
    assert phases[3].latency > 1.0
    # The stopped worker's lease runs out within its phase, with seconds to deliver again.
    assert phases[4].freeze_worker
    assert spans["worker lost"] >= FROZEN_LEASE + 4
    assert not any(p.freeze_worker for p in phases if p is not phases[4])
    assert phases[4].describe() == "a worker stops mid-lease"
