"""The demo's scenarios as data: how the receivers answer and how much traffic arrives, over time.

A scenario is a list of phases laid out over one cycle (the demo's ``--duration``, or two minutes
when it runs until Ctrl-C, repeating). Phases end at fractions of the cycle, so a scenario keeps
its shape at any length. Pure values: no clocks, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CYCLE = 120.0  # seconds; one pass of a scenario when the demo runs until stopped
MIN_WINDOW = 10.0
MAX_WINDOW = 30.0


@dataclass(frozen=True)
class Phase:
    """One stretch of a scenario. ``until`` is where it ends, as a fraction of the cycle."""

    name: str
    until: float
    latency: float  # seconds a receiver takes to answer, on average
    failure_rate: float  # share of requests answered with HTTP 500, 0..1
    orders_per_second: float = 6.0
    ships_per_second: float = 5.0
    burst_orders: int = 0  # orders placed evenly over the phase, on top of the rate
    fault: str = ""  # a fault of the mechanism held over the phase (cbmon/demo/faults.py)
    # One worker stops right after a delivery, before recording it (as a killed one would),
    # and comes back when the phase ends: its rows stick past their lease, another worker
    # delivers them again, and the late record of the first delivery is a duplicate.
    freeze_worker: bool = False

    def describe(self) -> str:
        if self.failure_rate >= 1:
            return "receivers down, longer than the retries"
        if self.freeze_worker:
            return "a worker stops mid-lease"
        latency = f"{self.latency * 1000:.0f} ms" if self.latency < 1 else f"{self.latency:g} s"
        failing = f", {self.failure_rate:.1%} failing" if self.failure_rate else ""
        fault = f"; {FAULT_WORDS[self.fault]}" if self.fault else ""
        return f"receivers answer in ~{latency}{failing}{fault}"


FAULT_WORDS = {
    "throttled": "a token bucket of 2 drops most order_created callbacks",
    "unrouted": "the order_shipped route is disabled",
    "stuck_listener": "a listener stops reading and the NOTIFY queue fills",
    "job_disabled": "the queue's scheduled job is switched off (where pg_cron runs it)",
}


@dataclass(frozen=True)
class Conditions:
    """What holds at one moment: the phase, and the order rate with any burst spread in."""

    phase: Phase
    orders_per_second: float
    ships_per_second: float


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    phases: tuple[Phase, ...]

    def at(self, elapsed: float, cycle: float) -> Conditions:
        """The conditions ``elapsed`` seconds into the demo; the scenario repeats every cycle."""
        fraction = (elapsed % cycle) / cycle if cycle > 0 else 0.0
        start = 0.0
        for phase in self.phases:
            if fraction < phase.until or phase is self.phases[-1]:
                orders = phase.orders_per_second
                span = (phase.until - start) * cycle
                if phase.burst_orders and span > 0:
                    orders += phase.burst_orders / span
                return Conditions(phase, orders, phase.ships_per_second)
            start = phase.until
        raise AssertionError("a scenario has at least one phase")


HEALTHY_LATENCY = 0.04
# The lease of the worker the "callbacks" scenario stops: longer than one delivery can take
# (one claim at a time, the receivers' slowest answer), shorter than the phase it stops in.
FROZEN_LEASE = 8.0

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "steady",
            "healthy receivers all along: every indicator stays ok",
            (Phase("healthy", 1.0, HEALTHY_LATENCY, 0.0),),
        ),
        Scenario(
            "degraded",
            "receivers slow down and fail, through warning into critical, then recover",
            (
                Phase("healthy", 0.15, HEALTHY_LATENCY, 0.0),
                # 280 ms and 0.7 % failures sit inside both warning bands
                Phase("warning", 0.35, 0.28, 0.007),
                # long and slow enough that the window's average stays critical beyond `for`
                Phase("critical", 0.6, 0.9, 0.04),
                # long enough for the bad calls to leave the window, so the alerts resolve
                Phase("recovered", 1.0, HEALTHY_LATENCY, 0.0),
            ),
        ),
        Scenario(
            "backlog",
            "receivers stall while orders surge, the queue grows past 5000, then drains",
            (
                Phase("healthy", 0.15, HEALTHY_LATENCY, 0.0),
                Phase("stalled", 0.55, 3.0, 0.0, ships_per_second=0.0, burst_orders=6500),
                Phase("draining", 1.0, 0.01, 0.0),
            ),
        ),
        Scenario(
            "mechanism",
            "the mechanism breaks inside the database: a drained token bucket, a disabled "
            "route, a listener that stops reading, the scheduler's job switched off (where "
            "pg_cron runs it); each is repaired in turn",
            (
                Phase("healthy", 0.1, HEALTHY_LATENCY, 0.0),
                Phase("throttled", 0.3, HEALTHY_LATENCY, 0.0, fault="throttled"),
                Phase("unrouted", 0.45, HEALTHY_LATENCY, 0.0, fault="unrouted"),
                Phase("stuck listener", 0.6, HEALTHY_LATENCY, 0.0, fault="stuck_listener"),
                Phase("job disabled", 0.75, HEALTHY_LATENCY, 0.0, fault="job_disabled"),
                Phase("repaired", 1.0, HEALTHY_LATENCY, 0.0),
            ),
        ),
        Scenario(
            "callbacks",
            "receivers go down past the retries (dead letters), slow down (end to end rises), "
            "and a worker stops mid-lease (its callbacks delivered twice)",
            (
                Phase("healthy", 0.1, HEALTHY_LATENCY, 0.0),
                Phase("down", 0.25, HEALTHY_LATENCY, 1.0),
                Phase("recovered", 0.4, HEALTHY_LATENCY, 0.0),
                # slower than the workers can keep up with: callbacks wait, end to end rises
                Phase("slow", 0.6, 1.2, 0.0),
                Phase("worker lost", 0.8, HEALTHY_LATENCY, 0.0, freeze_worker=True),
                Phase("recovered", 1.0, HEALTHY_LATENCY, 0.0),
            ),
        ),
    )
}


def slo_window(cycle: float) -> float:
    """The demo's SLO window: a quarter of the cycle, from 10 s to 30 s.

    Short enough that the window empties of bad calls during the recovery phase (40 % of the
    cycle), so alerts resolve before the demo ends.
    """
    return max(MIN_WINDOW, min(MAX_WINDOW, cycle / 4))


def shortest_cycle(scenario: Scenario) -> float:
    """Below this a scenario's alerts may not have time to fire and resolve."""
    if scenario.name == "callbacks":
        # the stopped worker's phase outlasts its lease, with time to deliver again
        return max(4 * MIN_WINDOW, (FROZEN_LEASE + 4) / 0.2)
    return 0.0 if scenario.name == "steady" else 4 * MIN_WINDOW
