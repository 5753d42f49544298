"""What cbmon holds in memory, fed by polls and read by scrapes: totals per event type since
start, the queue and cbmon's own health.

The poll thread writes and scrape threads read, under one lock held only for dictionary
updates and copies. Figures are immutable, so a copy of the dictionary is a consistent view.
Nothing here touches the database.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping

from cbmon.clock import Clock, SystemClock
from cbmon.domain import (
    POLL_ERROR_REASONS,
    Assumption,
    DatabaseInfo,
    Features,
    Figures,
    PollResult,
    Slot,
    TargetCounts,
    Topology,
)
from cbmon.ingest.labels import EventTypeLabels

POLL_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
Labeled = dict[str, Figures]


@dataclasses.dataclass(frozen=True)
class LabeledPoll:
    """A poll's figures keyed by label value (event types folded and shortened), and its
    history slots likewise: ``(slot end in the database's unix seconds, figures)``."""

    figures: Labeled
    history: tuple[tuple[float, Labeled], ...] = ()
    # For the error budgets, on the first poll: (slot seconds, ((slot end, figures), ...)).
    periods: tuple[tuple[float, tuple[tuple[float, Labeled], ...]], ...] = ()


@dataclasses.dataclass(frozen=True)
class View:
    """A consistent copy of the state for one scrape."""

    figures: dict[str, Figures]
    backlog: int
    oldest_age_seconds: float
    database_up: bool
    last_poll_timestamp: float
    polls_total: int
    poll_errors_total: int
    poll_errors: dict[str, int]  # by reason, every reason present
    poll_buckets: tuple[int, ...]
    poll_count: int
    poll_sum: float
    lag_rows: dict[str, int]
    open_gaps: dict[str, int]
    event_types: int
    folded_total: int
    truncated_total: int
    assumptions: tuple[Assumption, ...] = ()
    ahead_rows: dict[str, int] = dataclasses.field(default_factory=dict)
    database: DatabaseInfo | None = None
    topology: Topology | None = None
    resets: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    expired_gaps: dict[str, int] = dataclasses.field(default_factory=dict)
    features: Features | None = None  # what the tables let cbmon read of the lifecycle
    targets: dict[str, TargetCounts] = dataclasses.field(default_factory=dict)
    queue_states: dict[str, int] | None = None


class Store:
    """The figures since start, the queue and cbmon's own health, in memory: fed by polls,
    read by scrapes, the status page and the API.

    It owns the totals per event type label and per receiver, the latest queue figures,
    the poll histogram, the readers' lag and open gaps, what the first poll learnt of the
    database (version, topology, assumptions, lifecycle features) and the label caps that
    fold event types beyond ``max_event_types`` into ``other``.

    Threads: the poll thread alone writes (:meth:`label`, :meth:`apply`,
    :meth:`poll_failed`); any thread reads through :meth:`view` and the small accessors.
    One lock covers both, held only for dictionary updates and copies, never for I/O.

    Invariants: totals only grow (a failed poll adds nothing, a reset of the table does not
    take back what was counted); a :class:`View` is one consistent moment, since figures
    are immutable and copied under the lock; ages are read on the database's clock, advanced
    by the monotonic one, so a step of the wall clock does not move them.
    """

    def __init__(
        self,
        max_event_types: int,
        clock: Clock | None = None,
        max_event_type_length: int = 128,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock or SystemClock()
        self.labels = EventTypeLabels(max_event_types, max_event_type_length)
        self._figures: dict[str, Figures] = {}
        self._backlog = 0
        self._oldest_created: float | None = None
        # The database's clock minus our monotonic one, from the last poll: ages are read on
        # the database's clock, advanced by a clock that never steps.
        self._clock_offset = 0.0
        self._database_up = False
        self._last_poll = 0.0  # wall time, exported
        self._last_poll_at: float | None = None  # monotonic, for how long ago
        self._polls = 0
        self._poll_errors = dict.fromkeys(POLL_ERROR_REASONS, 0)
        self._poll_buckets = [0] * len(POLL_BUCKETS)
        self._poll_count = 0
        self._poll_sum = 0.0
        self._lag: dict[str, int] = {}
        self._gaps: dict[str, int] = {}
        self._assumptions: tuple[Assumption, ...] = ()
        self._ahead: dict[str, int] = {}
        self._database: DatabaseInfo | None = None
        self._topology: Topology | None = None
        self._resets: dict[tuple[str, str], int] = {}  # (table, reason): resets seen
        self._expired: dict[str, int] = {}  # table: gap ids given up without a fence
        self._features: Features | None = None
        # Receivers, labelled under the same cap as event types.
        self.target_labels = EventTypeLabels(max_event_types, max_event_type_length)
        self._targets: dict[str, TargetCounts] = {}
        self._queue_states: dict[str, int] | None = None

    def label(self, result: PollResult) -> LabeledPoll:
        """The poll's figures (and history) keyed by label value, event types folded."""
        with self._lock:
            figures = self._fold(result.figures)
            history = self._slots(result.history)
            periods = tuple((step, self._slots(slots)) for step, slots in result.period_history)
        return LabeledPoll(figures, history, periods)

    def _slots(self, slots: Iterable[Slot]) -> tuple[tuple[float, Labeled], ...]:
        return tuple((slot.end, self._fold({slot.event_type: slot.figures})) for slot in slots)

    def _fold(self, figures: Mapping[str | None, Figures]) -> Labeled:
        folded: Labeled = {}
        for raw, counted in figures.items():
            label = self.labels.label(raw)
            previous = folded.get(label)
            folded[label] = counted if previous is None else previous + counted
        return folded

    def apply(self, result: PollResult, labeled: LabeledPoll, duration: float) -> None:
        """Add one successful poll (``labeled`` from :meth:`label`)."""
        with self._lock:
            for label, counted in labeled.figures.items():
                previous = self._figures.get(label)
                self._figures[label] = counted if previous is None else previous + counted
            self._backlog = result.queue.backlog
            self._oldest_created = result.queue.oldest_created
            self._clock_offset = result.queue.db_now - self._clock.monotonic()
            self._database_up = True
            self._last_poll = self._clock.wall()
            self._last_poll_at = self._clock.monotonic()
            self._polls += 1
            self._poll_count += 1
            self._poll_sum += duration
            for index, bound in enumerate(POLL_BUCKETS):
                if duration <= bound:
                    self._poll_buckets[index] += 1
            self._lag = dict(result.lag_rows)
            self._gaps = dict(result.open_gaps)
            if result.assumptions:
                self._assumptions = result.assumptions
            if result.ahead_rows:
                self._ahead = dict(result.ahead_rows)
            if result.database is not None:
                self._database = result.database
            if result.topology is not None:
                self._topology = result.topology
            if result.features is not None:
                self._features = result.features
            self._queue_states = None if result.queue.states is None else dict(result.queue.states)
            for raw, tried in result.targets.items():
                label = self.target_labels.label(raw)
                self._targets[label] = self._targets.get(label, TargetCounts()) + tried
            for reset in result.resets:
                key = (reset.table, reset.reason)
                self._resets[key] = self._resets.get(key, 0) + 1
            for table, ids in result.expired_gaps.items():
                self._expired[table] = self._expired.get(table, 0) + ids

    def poll_failed(self, reason: str = "connection") -> None:
        """A poll failed for ``reason`` (:data:`~cbmon.domain.POLL_ERROR_REASONS`); the
        database is down only when it did not answer."""
        with self._lock:
            self._database_up = reason != "connection"
            self._polls += 1
            self._poll_errors[reason] = self._poll_errors.get(reason, 0) + 1

    @property
    def database_up(self) -> bool:
        with self._lock:
            return self._database_up

    @property
    def last_poll_timestamp(self) -> float:
        with self._lock:
            return self._last_poll

    def seconds_since_poll(self) -> float | None:
        """How long ago the last successful poll was, whatever the wall clock did since; None
        before the first."""
        with self._lock:
            if self._last_poll_at is None:
                return None
            return self._clock.monotonic() - self._last_poll_at

    def oldest_age_seconds(self) -> float:
        with self._lock:
            return self._oldest_age()

    def _oldest_age(self) -> float:
        if self._oldest_created is None:
            return 0.0
        return max(0.0, self._clock.monotonic() + self._clock_offset - self._oldest_created)

    def view(self) -> View:
        with self._lock:
            oldest_age = self._oldest_age()
            return View(
                figures=dict(self._figures),
                backlog=self._backlog,
                oldest_age_seconds=oldest_age,
                database_up=self._database_up,
                last_poll_timestamp=self._last_poll,
                polls_total=self._polls,
                poll_errors_total=sum(self._poll_errors.values()),
                poll_errors=dict(self._poll_errors),
                poll_buckets=tuple(self._poll_buckets),
                poll_count=self._poll_count,
                poll_sum=self._poll_sum,
                lag_rows=dict(self._lag),
                open_gaps=dict(self._gaps),
                event_types=len(self.labels),
                folded_total=self.labels.folded_total,
                truncated_total=self.labels.truncated_total,
                assumptions=self._assumptions,
                ahead_rows=dict(self._ahead),
                database=self._database,
                topology=self._topology,
                resets=dict(self._resets),
                expired_gaps=dict(self._expired),
                features=self._features,
                targets=dict(self._targets),
                queue_states=None if self._queue_states is None else dict(self._queue_states),
            )
