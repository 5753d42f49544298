"""The plain values every stage passes along: figures, levels, the queue, a poll's result.

A leaf module: it imports nothing from cbmon, so the reader, the judge, the collectors and the
report all depend on it and on nothing above them. No I/O here.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping

# Histogram bucket bounds in seconds. 0.15, 0.2 and 0.5 are the baseline's and the design
# limit's thresholds, so Prometheus can tell exactly how many callbacks crossed them.
BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0)
_NO_BUCKETS = (0,) * len(BUCKETS)
# Attempts a finished callback used: 1 (first try) to 4 (3 retries), more above.
TRIES: tuple[int, ...] = (1, 2, 3, 4)
# Seconds a callback waited in the queue, and took from queued to delivered, retries included:
# the design limit (0.2 s) and the marks an on-call engineer thinks in.
WAIT_BUCKETS: tuple[float, ...] = (0.05, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Level(enum.IntEnum):
    """A judgement against the baseline. Values are what ``cbmon_slo_state`` exports."""

    UNKNOWN = -1
    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


def _sum(a: tuple[int, ...], b: tuple[int, ...], sign: int = 1) -> tuple[int, ...]:
    return tuple(x + sign * y for x, y in zip(a, b, strict=True))


@dataclasses.dataclass(frozen=True, slots=True)
class Callbacks:
    """What happened to callbacks (queue rows), read from their attempts: a callback is
    delivered at its first successful attempt and dead when its last allowed attempt fails.

    ``tries`` counts finished callbacks (delivered or dead) by the attempts they used,
    cumulative at each bound of :data:`TRIES`; ``waits`` the first attempts by how long their
    callback had waited in the queue, and ``ends`` the deliveries by how long they took from
    queued to delivered, cumulative at each bound of :data:`WAIT_BUCKETS`.
    """

    delivered: int = 0
    dead: int = 0
    duplicates: int = 0  # successful attempts of a callback already delivered
    tries: tuple[int, ...] = (0,) * len(TRIES)
    tries_sum: int = 0
    waited: int = 0  # first attempts whose queue row was found
    wait_sum: float = 0.0
    waits: tuple[int, ...] = (0,) * len(WAIT_BUCKETS)
    ended: int = 0  # deliveries whose queue row was found
    end_sum: float = 0.0
    ends: tuple[int, ...] = (0,) * len(WAIT_BUCKETS)

    def __add__(self, other: Callbacks) -> Callbacks:
        return Callbacks(
            self.delivered + other.delivered,
            self.dead + other.dead,
            self.duplicates + other.duplicates,
            _sum(self.tries, other.tries),
            self.tries_sum + other.tries_sum,
            self.waited + other.waited,
            self.wait_sum + other.wait_sum,
            _sum(self.waits, other.waits),
            self.ended + other.ended,
            self.end_sum + other.end_sum,
            _sum(self.ends, other.ends),
        )

    def __sub__(self, other: Callbacks) -> Callbacks:
        return Callbacks(
            self.delivered - other.delivered,
            self.dead - other.dead,
            self.duplicates - other.duplicates,
            _sum(self.tries, other.tries, -1),
            self.tries_sum - other.tries_sum,
            self.waited - other.waited,
            self.wait_sum - other.wait_sum if self.waited > other.waited else 0.0,
            _sum(self.waits, other.waits, -1),
            self.ended - other.ended,
            self.end_sum - other.end_sum if self.ended > other.ended else 0.0,
            _sum(self.ends, other.ends, -1),
        )

    @property
    def finished(self) -> int:
        return self.delivered + self.dead

    @property
    def success_rate(self) -> float | None:
        """Delivered callbacks over finished ones, 0..1; None when none finished."""
        return None if self.finished == 0 else self.delivered / self.finished

    def end_quantile(self, q: float) -> float | None:
        """The q-quantile of queued-to-delivered times, from the buckets."""
        return quantile(q, WAIT_BUCKETS, self.ends, self.ended)


@dataclasses.dataclass(frozen=True, slots=True)
class Figures:
    """What was counted of callbacks, for one event type or all of them, over some span: one
    poll's new rows, the totals since start, the SLO window, a report's period.

    ``observed`` counts attempts with a valid duration; latency covers only those. ``invalid``
    counts durations present but unusable (negative, NaN, infinite, absurd). ``buckets`` are
    cumulative counts of observed durations at or below each bound of :data:`BUCKETS`.
    """

    attempts: int = 0
    failures: int = 0
    observed: int = 0
    sum_seconds: float = 0.0
    buckets: tuple[int, ...] = _NO_BUCKETS
    invalid: int = 0
    slow: int = 0  # observed durations above thresholds.slow_callback
    errors: int = 0  # rows of the error table
    callbacks: Callbacks = Callbacks()

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.attempts + other.attempts,
            self.failures + other.failures,
            self.observed + other.observed,
            self.sum_seconds + other.sum_seconds,
            tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)),
            self.invalid + other.invalid,
            self.slow + other.slow,
            self.errors + other.errors,
            self.callbacks + other.callbacks,
        )

    def __sub__(self, other: Figures) -> Figures:
        return Figures(
            self.attempts - other.attempts,
            self.failures - other.failures,
            self.observed - other.observed,
            # Sums of floats do not come back to exactly zero: nothing observed, nothing summed.
            self.sum_seconds - other.sum_seconds if self.observed > other.observed else 0.0,
            tuple(a - b for a, b in zip(self.buckets, other.buckets, strict=True)),
            self.invalid - other.invalid,
            self.slow - other.slow,
            self.errors - other.errors,
            self.callbacks - other.callbacks,
        )

    @property
    def empty(self) -> bool:
        return self.attempts == 0 and self.errors == 0 and self.invalid == 0

    @property
    def success_rate(self) -> float | None:
        """Successful attempts over attempts, 0..1; None without attempts."""
        return None if self.attempts == 0 else (self.attempts - self.failures) / self.attempts

    @property
    def avg_latency(self) -> float | None:
        """Mean of the observed durations, seconds; None when none was observed."""
        return None if self.observed == 0 else self.sum_seconds / self.observed

    @property
    def slow_share(self) -> float | None:
        """Observed durations above the slow-callback threshold over observed durations."""
        return None if self.observed == 0 else self.slow / self.observed

    def quantile(self, q: float) -> float | None:
        """The q-quantile of the observed durations, from the buckets (see :func:`quantile`)."""
        return quantile(q, BUCKETS, self.buckets, self.observed)


def total(figures: Iterable[Figures]) -> Figures:
    result = Figures()
    for item in figures:
        result = result + item
    return result


def quantile(
    q: float, bounds: Iterable[float], cumulative: Iterable[int], count: int
) -> float | None:
    """The q-quantile from cumulative bucket counts, interpolated as ``histogram_quantile`` does.

    Observations above the last bound report the last bound, as Prometheus does for +Inf.
    """
    if count == 0:
        return None
    rank = q * count
    lower_bound, lower_count = 0.0, 0
    bound = 0.0
    for bound, cumulated in zip(bounds, cumulative, strict=True):
        if cumulated >= rank:
            if cumulated == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                cumulated - lower_count
            )
        lower_bound, lower_count = bound, cumulated
    return bound


QUEUE_STATES = ("due", "retry_scheduled", "in_flight", "stuck", "dead")
FAILURE_CLASSES = ("4xx", "5xx", "timeout", "other")
# Why a poll failed (cbmon_poll_errors_total{reason}); only "connection" means the database
# did not answer. docs/metrics.md says what each covers.
POLL_ERROR_REASONS = ("connection", "timeout", "permission", "schema", "data", "query")


@dataclasses.dataclass(frozen=True)
class Features:
    """What the tables let cbmon read of the callback lifecycle, found at start."""

    outcomes: bool = False  # delivered, dead, duplicates, tries
    queue_times: bool = False  # queue wait, end to end
    targets: bool = False  # per target attempts and failures
    states: bool = False  # the queue's rows by state
    dead_state: bool = False  # dead rows in the queue
    notes: tuple[str, ...] = ()  # what is off, and why, in one line each

    @property
    def names(self) -> dict[str, bool]:
        return {
            "outcomes": self.outcomes,
            "queue_times": self.queue_times,
            "targets": self.targets,
            "queue_states": self.states,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class TargetCounts:
    """Attempts to one target and its failures by class."""

    attempts: int = 0
    failures: tuple[int, ...] = (0,) * len(FAILURE_CLASSES)  # as FAILURE_CLASSES

    def __add__(self, other: TargetCounts) -> TargetCounts:
        return TargetCounts(
            self.attempts + other.attempts,
            tuple(a + b for a, b in zip(self.failures, other.failures, strict=True)),
        )


@dataclasses.dataclass(frozen=True)
class QueueState:
    backlog: int
    oldest_created: float | None  # unix seconds of the oldest waiting row, by the db's clock
    db_now: float  # the database's clock at the poll, unix seconds
    # Rows by state (QUEUE_STATES), where the queue's lease and outcome columns are mapped.
    states: Mapping[str, int] | None = None


@dataclasses.dataclass(frozen=True)
class Assumption:
    """One checked assumption of exact counting: ``ok`` and, when it fails, what was found.

    ``ok`` is None when it could not be checked (openGauss keeps a sequence's cache size in
    the sequence itself, which only a role with SELECT on it may read)."""

    table: str  # "logs" or "errors"
    check: str  # "ids_from_sequence" or "sequence_cache_1"
    ok: bool | None
    detail: str


@dataclasses.dataclass(frozen=True)
class DatabaseInfo:
    """What cbmon found on the other end of its connection."""

    flavor: str  # "postgresql", "opengauss" or "gaussdb"
    version: str  # "15.3", "5.0.2", ...


@dataclasses.dataclass(frozen=True)
class Reset:
    """A table's history was replaced under the reader (a truncate, a re-created table, a
    failover that lost commits): counting went on from where the new history begins."""

    table: str  # "logs" or "errors"
    reason: str  # truncate, recreate, ids_fell, failover, history
    detail: str


@dataclasses.dataclass(frozen=True)
class Topology:
    """Where the poll read: a primary or a hot standby, how gaps were fenced, through what."""

    standby: bool
    fence: str  # primary, primary_dsn, unreachable or none (see cbmon.ingest.fence)
    pooler: str  # none, session or transaction


@dataclasses.dataclass(frozen=True)
class Slot:
    """History read on start for the SLO window: one time slot of one raw event type."""

    end: float  # the slot's end, in the database's unix seconds
    event_type: str | None
    figures: Figures


@dataclasses.dataclass(frozen=True)
class PollResult:
    """What one poll read: the new rows' figures per raw event type (errors included), the
    queue, and how far the reader is behind."""

    figures: Mapping[str | None, Figures]
    queue: QueueState
    lag_rows: Mapping[str, int]
    open_gaps: Mapping[str, int]
    # On the first poll only, when asked for: rows already there, per time slot.
    history: tuple[Slot, ...] = ()
    # On the first poll only, for the error budgets: (slot seconds, slots) per ring.
    period_history: tuple[tuple[float, tuple[Slot, ...]], ...] = ()
    # On the first poll only: what the catalogs say about the tables' ids.
    assumptions: tuple[Assumption, ...] = ()
    # On the first poll only, with a history: rows dated ahead of the database's clock by more
    # than slo.clock_skew, left out of it, per table.
    ahead_rows: Mapping[str, int] = dataclasses.field(default_factory=dict)
    # The server the poll read from (known once connected).
    database: DatabaseInfo | None = None
    topology: Topology | None = None
    # On the first poll only: what the tables let cbmon read of the callback lifecycle.
    features: Features | None = None
    # Attempts and failures by class, per receiver (None: no target column).
    targets: Mapping[str | None, TargetCounts] = dataclasses.field(default_factory=dict)
    # Histories replaced under the reader, and gap ids given up without a fence, per table.
    resets: tuple[Reset, ...] = ()
    expired_gaps: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def caught_up(self) -> bool:
        return not any(self.lag_rows.values())


# -- the callback mechanism inside the database (cbmon/ingest/mechanism.py probes it) ----------
@dataclasses.dataclass(frozen=True, slots=True)
class SourceState:
    """One optional source of the mechanism: ``ok`` (read), ``absent`` (off) or
    ``unreadable`` by cbmon's role; ``detail`` says why, with the GRANT that fixes it."""

    name: str
    state: str
    detail: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """A scheduler job (pg_cron, or openGauss' PG_JOB). Times are epoch seconds on the
    database's clock; ``since`` is when its current run without a success began (its last
    success, else its first run seen, else when cbmon first saw it)."""

    name: str
    enabled: bool
    interval: float | None  # seconds between runs, when the schedule says
    succeeded: int = 0
    failed: int = 0
    last_success: float | None = None
    since: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    tokens: float  # as the limiter's next take would find them (refill included)
    capacity: int
    dropped: int  # callbacks refused since the bucket was made


@dataclasses.dataclass(frozen=True, slots=True)
class HandlerStats:
    function: str
    calls: int
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Mechanism:
    """One probe of the mechanism. A value is None where its source is not ok."""

    at: float  # the database's clock, epoch seconds
    sources: tuple[SourceState, ...] = ()
    notify_usage: float | None = None
    listeners: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    jobs: tuple[Job, ...] | None = None
    buckets: tuple[Bucket, ...] | None = None
    dropped_in_window: int | None = None
    # problem -> the event types that have it (no_route, disabled, missing_handler, ...)
    route_problems: Mapping[str, tuple[str, ...]] | None = None
    handlers: tuple[HandlerStats, ...] | None = None
    track_functions: str | None = None

    def source(self, name: str) -> SourceState | None:
        return next((s for s in self.sources if s.name == name), None)
