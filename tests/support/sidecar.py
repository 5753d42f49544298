"""The sidecar's inputs made by hand for in-process tests: figures from durations, a poll's
result, a clock the test moves, a store fed the way ``cbmon serve`` feeds it, and leadership
decided by the test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cbmon.domain import BUCKETS, Assumption, Figures, PollResult, QueueState, Slot
from cbmon.ingest.store import LabeledPoll, Store

DB_NOW = 1_700_000_000.0  # the database's clock at a poll, unless a test says otherwise


class ManualClock:
    """A clock that moves only when the test says so: :meth:`advance` moves time on, and
    :meth:`step` moves the wall clock alone, as NTP or an operator fixing it does."""

    def __init__(self, now: float = DB_NOW) -> None:
        self.now = now
        self.wall_offset = 0.0

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def step(self, seconds: float) -> None:
        self.wall_offset += seconds


def callbacks(
    durations: Sequence[float] = (),
    *,
    failures: int = 0,
    invalid: int = 0,
    errors: int = 0,
    slow_above: float = 0.2,
) -> Figures:
    """Attempts with these valid durations (seconds), plus ``invalid`` ones without one."""
    return Figures(
        attempts=len(durations) + invalid,
        failures=failures,
        observed=len(durations),
        sum_seconds=sum(durations),
        buckets=tuple(sum(d <= bound for d in durations) for bound in BUCKETS),
        invalid=invalid,
        slow=sum(d > slow_above for d in durations),
        errors=errors,
    )


def poll_result(
    figures: Mapping[str | None, Figures] | None = None,
    *,
    backlog: int = 0,
    oldest_created: float | None = None,
    db_now: float = DB_NOW,
    lag_rows: Mapping[str, int] | None = None,
    open_gaps: Mapping[str, int] | None = None,
    history: tuple[Slot, ...] = (),
    assumptions: tuple[Assumption, ...] = (),
    ahead_rows: Mapping[str, int] | None = None,
) -> PollResult:
    return PollResult(
        figures=dict(figures or {}),
        queue=QueueState(backlog=backlog, oldest_created=oldest_created, db_now=db_now),
        lag_rows=dict(lag_rows or {"logs": 0, "errors": 0}),
        open_gaps=dict(open_gaps or {"logs": 0, "errors": 0}),
        history=history,
        assumptions=assumptions,
        ahead_rows=dict(ahead_rows or {}),
    )


def feed(store: Store, result: PollResult, duration: float = 0.01) -> LabeledPoll:
    """One successful poll into ``store``, labelled then applied as the service does."""
    labeled = store.label(result)
    store.apply(result, labeled, duration)
    return labeled


class Leadership:
    """Who leads, decided by the test: the real leadership holds an advisory lock in the
    database, and in-process tests run without one."""

    def __init__(self, leading: bool, foreign_holder: str | None = None) -> None:
        self.is_leader = leading
        self.foreign_holder = foreign_holder

    def check(self) -> bool:
        return self.is_leader

    def close(self) -> None:
        pass
