"""Reading an append-only table incrementally, exactly, at a cost in proportion to new rows.

Ids come from a sequence when a row is inserted, but transactions commit later and out of
order: a reader that only asks for ``id > last_seen`` loses a row whose id is below one it
already read but whose transaction commits afterwards. So the reader keeps *gaps*: ids below
the highest one read that were not visible yet. Each poll re-reads the gaps together with the
new range, and a gap is given up only when no transaction that could still fill it is left:

* a gap is found under a poll's snapshot, below a row that snapshot sees. The sequence handed
  out the gap's id before that row's id (``CACHE 1``), so the transaction holding the gap's id
  had begun before the snapshot was taken;
* at the start of a later poll, before its snapshot, the reader lists the transactions running
  in the database (their virtual transaction ids, which every transaction has from its first
  statement, and prepared transactions). That list is the gap's *fence*: the transaction
  holding the id is either on it or had already ended, and then the poll's snapshot sees it;
* when a poll starts and none of the fence is running any more, every transaction that could
  hold the id has ended before that poll's snapshot. An id that snapshot still cannot see was
  rolled back, and is given up.

No timing, clock or transaction-id arithmetic is involved, so the rule holds on a quiet server,
under any commit order and whatever a transaction does between taking an id and committing.
On a hot standby the fence is listed on the primary, and a listing counts only once the standby
has replayed past the primary's WAL position at that listing (:mod:`cbmon.ingest.fence`).
docs/design.md gives the argument in full.

A table's history can also be replaced (a truncate, a re-created table, a failover that lost
commits): the newest row read is checked at every poll, and :mod:`cbmon.ingest.history` tells
where the new history begins, so that each of its rows is counted once.

Each poll reads in one REPEATABLE READ, READ ONLY transaction, so every query of a poll sees the
same snapshot, and the reader's state changes only after the poll has read everything.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from cbmon.db import sqlfiles
from cbmon.domain import Reset
from cbmon.ingest import lifecycle
from cbmon.ingest.history import Identity, Ledger
from cbmon.ingest.lifecycle import Frame

log = logging.getLogger(__name__)

# At most this many gap ranges are read per poll; the rest wait for the next one.
MAX_GAP_RANGES_PER_POLL = 500
# A batch never shrinks below this many ids.
MIN_BATCH = 1000
# New gaps are looked for in the top this-many ids of a range first, then in eightfold wider
# steps below.
GAP_SEARCH_SPAN = 4096


@dataclasses.dataclass(frozen=True)
class Listing:
    """The transactions that were running at one moment (on the primary), numbered in the
    order they were listed."""

    number: int
    running: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Fence:
    """What a poll knows, before its snapshot, of the transactions that could fill gaps.

    ``current`` was listed after every earlier poll's snapshot: it fences the gaps they found.
    ``settled`` is the newest listing whose ended transactions this poll's snapshot sees (on
    a primary, ``current`` itself): a gap none of whose fence is on it, fenced no later than
    it, was rolled back. Without a primary to ask, gaps found before ``expire_before`` (the
    reader's clock) are given up instead.
    """

    current: Listing | None = None
    settled: Listing | None = None
    expire_before: float | None = None

    @classmethod
    def on_primary(cls, listing: Listing) -> Fence:
        return cls(listing, listing)


@dataclasses.dataclass(frozen=True)
class Gap:
    """Ids ``low..high`` not visible when first seen, below ids that were."""

    low: int
    high: int
    # The transactions running at the first listing after the gap was found; None until then.
    fence: frozenset[str] | None = None
    fenced_at: int = -1  # the number of that listing
    found_at: float = 0.0  # the reader's clock when the gap was found
    # The newest listing known when the gap was last read (-1: never, or without listings).
    read_at: int = -1

    @property
    def size(self) -> int:
        return self.high - self.low + 1


@dataclasses.dataclass(frozen=True)
class Source:
    """What to read: the table, its id column, and the SQL producing per-group aggregates.

    ``select`` maps column names to aggregate expressions over the table's columns, grouped
    by ``group_by``; ``params`` are bound. Every row read has ``key`` and ``rows_read`` too.
    """

    name: str
    table: sql.Composable
    id_column: sql.Identifier
    group_by: sql.Composable
    select: Mapping[str, sql.Composable]
    params: dict[str, Any]
    # A number telling one row from another that took the same id (see history.py).
    fingerprint: sql.Composable = dataclasses.field(default_factory=lambda: sql.SQL("0"))
    # The rows a read aggregates, with the callback lifecycle's columns (lifecycle.py).
    frame: Frame | None = None
    # A second grouping key: the receiver (NULL when the table has none).
    target: sql.Composable = dataclasses.field(default_factory=lambda: sql.SQL("NULL::text"))
    # The sequence the ids come from, when it hands them out one at a time and may be read:
    # it tells how far ids were handed out, so ids taken by transactions still open become
    # gaps (watched at the cost of a fence) instead of being walked through at every poll.
    sequence: sql.Composable | None = None

    def formatted(
        self, template: str, where: sql.Composable, *, counted: bool = True, **extra: sql.Composable
    ) -> sql.Composed:
        """``cbmon/sql/<template>`` over the rows ``where`` selects, with this source's key,
        aggregates and table filled in. ``counted``: a live read, where the rows counted before
        are those outside it up to ``%(counted_upto)s`` (a history read counts lower ids)."""
        aggregates = [
            sql.SQL("{} AS {}").format(expression, sql.Identifier(name))
            for name, expression in self.select.items()
        ]
        if self.frame is None:
            rows: sql.Composable = sql.SQL("{} WHERE {}").format(self.table, where)
        else:
            before = lifecycle.counted_before(where, self.frame.id_name) if counted else None
            rows = self.frame.rows(where, before)
        return sqlfiles.template(template).format(
            key=self.group_by,
            target=self.target,
            id=self.id_column,
            aggregates=sql.SQL(", ").join(aggregates) if aggregates else sql.SQL("0 AS nothing"),
            table=self.table,
            rows=rows,
            **extra,
        )


Row = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ReadResult:
    """What one poll found: per key, ``rows_read`` and the aggregates, over rows not read before."""

    rows: list[Row]
    new_rows: int
    lag_rows: int
    open_gaps: int
    resets: tuple[Reset, ...] = ()
    expired_gaps: int = 0  # ids given up unseen, without a fence to tell (standby, no primary)


class _Head(NamedTuple):
    head: int
    identity: Identity | None
    witness: int | None  # the witness row's fingerprint now; None when it is gone


@dataclasses.dataclass(frozen=True)
class _State:
    high_water: int | None
    gaps: list[Gap]
    ledger: Ledger
    identity: Identity | None
    excluded: array[int]


class TailReader:
    """Incremental, gap-aware reader of one table. Not thread-safe: one poller owns it."""

    def __init__(
        self,
        source: Source,
        *,
        batch_size: int = 1_000_000,
        startup_gap_scan: int = 10_000,
        history_rows: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.batch_size = batch_size
        self.startup_gap_scan = startup_gap_scan
        self.high_water: int | None = None  # highest id read; None before the first poll
        self.gaps: list[Gap] = []
        self.ledger = Ledger(history_rows)
        self.identity: Identity | None = None
        # After a reset: ids of the range being read again that hold rows already counted.
        self.excluded: array[int] = array("q")
        self._clock = clock
        self._counted_upto = 0
        self.gap_ids_read = 0  # ids of open gaps the last read looked at again

    def save(self) -> _State:
        """The reader's state, for :meth:`restore` when a poll's transaction fails."""
        return _State(
            self.high_water, list(self.gaps), self.ledger.copy(), self.identity, self.excluded
        )

    def restore(self, state: _State) -> None:
        self.high_water, self.gaps = state.high_water, state.gaps
        self.ledger, self.identity, self.excluded = state.ledger, state.identity, state.excluded

    @property
    def open_gap_ids(self) -> int:
        return sum(gap.size for gap in self.gaps)

    def shrink_batch(self) -> None:
        """A batch outran the statement timeout: read half as many ids at a time from now on,
        so a backlog on a slow server drains in smaller steps instead of failing forever."""
        self.batch_size = max(MIN_BATCH, self.batch_size // 2)

    def read(
        self, cur: psycopg.Cursor[Any], fence: Fence | None, *, new_server: bool = False
    ) -> ReadResult:
        """Read what is new under the current transaction's snapshot and advance the state.

        ``fence`` is what was learnt, just before this transaction began, of the transactions
        that could fill gaps (see :mod:`cbmon.ingest.fence`); it is needed only while gaps
        are open. ``new_server``: the server's history (system, timeline) changed since the
        last poll, which names a reset a failover. The caller runs this inside a REPEATABLE
        READ transaction and calls it again at once while ``lag_rows`` is above zero. If the
        transaction fails, the caller restores :meth:`save`'s state.
        """
        head = self._head(cur)
        self.gap_ids_read = 0
        if self.high_water is None:
            # First poll: counting starts at the tail; transactions still open near it are
            # watched, and the newest rows remembered, so a later reset can be told.
            start = max(0, head.head - self.startup_gap_scan)
            self.high_water, self.gaps = head.head, self._find_gaps(cur, start, head.head)
            self.identity = head.identity
            where = sql.SQL("{id} <= %(upto)s").format(id=self.source.id_column)
            self._remember(cur, where, {"upto": head.head})
            return ReadResult([], 0, 0, self.open_gap_ids)
        reset = self._check_history(cur, head, new_server)
        resets = () if reset is None else (reset,)
        after = self.high_water
        if head.head == after and not self.gaps:
            return ReadResult([], 0, 0, 0, resets)  # the common idle poll: one statement
        upto = min(head.head, after + self.batch_size)
        self._counted_upto = upto  # what this read will have counted, for the lifecycle
        excluded = [i for i in self.excluded if after < i <= upto]
        rows, in_range = (
            self._aggregate_range(cur, after, upto, excluded) if upto > after else ([], 0)
        )
        checked, waiting, left = _due(self.gaps, fence, self.batch_size)
        self.gap_ids_read = sum(gap.size for gap in checked)
        gap_rows, present = self._read_gaps(cur, checked)
        # With rows excluded the count cannot bound the search: look through the whole range.
        missing = None if excluded else upto - after - in_range
        new_gaps = self._find_gaps(cur, after, upto, missing=missing) if upto > after else []
        still_open, expired = _settle(_split(checked, present), fence)
        if in_range:
            where = sql.SQL("{id} > %(after)s AND {id} <= %(upto)s").format(
                id=self.source.id_column
            )
            self._remember(cur, where, {"after": after, "upto": upto})
        if present:
            self._remember(cur, *self._ranges([Gap(low, high) for low, high in present]))
        self.high_water = upto
        self.gaps = waiting + still_open + new_gaps
        if self.excluded and upto >= self.excluded[-1]:
            self.excluded = array("q")
        return ReadResult(
            rows=_merge_rows(rows, gap_rows),
            new_rows=in_range + sum(high - low + 1 for low, high in present),
            lag_rows=head.head - upto + left,
            open_gaps=self.open_gap_ids,
            resets=resets,
            expired_gaps=expired,
        )

    def _head(self, cur: psycopg.Cursor[Any]) -> _Head:
        """The newest id, the table's identity and the witness row's fingerprint, in one
        statement: an idle poll costs no more than reading the newest id.

        With the sequence known, the newest id is looked for above the high water only, and
        the head is the newest id handed out: ids above the high water that no visible row
        holds are read as a new range, so they become gaps, fenced like any other, and the
        index entries of a transaction still open (a bulk load of millions of rows) are walked
        once, not at every poll."""
        witness = self.ledger.witness
        sequence, above = self.source.sequence, self.high_water
        bounded = sequence is not None and above is not None
        newest = "SELECT max({id})::bigint FROM {table}"
        query = sqlfiles.template("queries/head.sql").format(
            id=self.source.id_column,
            table=self.source.table,
            fingerprint=self.source.fingerprint,
            newest=sql.SQL(newest + (" WHERE {id} > %(above)s" if bounded else "")).format(
                id=self.source.id_column, table=self.source.table
            ),
            issued=sql.SQL("NULL::bigint")
            if sequence is None
            else sql.SQL(
                # A standby's copy of a sequence runs up to 32 ids ahead of those handed out
                # (its WAL is written ahead), and ids not handed out yet must never be gaps.
                "CASE WHEN NOT pg_is_in_recovery() THEN (SELECT CASE WHEN is_called THEN "
                "last_value ELSE last_value - 1 END FROM {}) END"
            ).format(sequence),
        )
        params = {
            "relation": self.source.table.as_string(cur.connection),
            "witness": -1 if witness is None else witness[0],
            "above": above,
        }
        row = cur.execute(query, params).fetchone()
        if row is None:  # not a table pg_class knows: the statement itself would have failed
            return _Head(0, None, None)
        head = int(row[0]) if row[0] is not None else 0
        identity = Identity(int(row[1]), int(row[2]))
        witness_now = None if row[3] is None else int(row[3])
        issued = None if row[4] is None else int(row[4])
        if bounded and above is not None:
            if issued is None or issued < above:
                # The sequence went back below what was read, or cannot be trusted here (a
                # standby): where the rows end, in full.
                found = cur.execute(
                    sql.SQL(newest).format(id=self.source.id_column, table=self.source.table)
                ).fetchone()
                head = int(found[0]) if found is not None and found[0] is not None else 0
            else:
                head = max(head, above, issued or 0)
        elif issued is not None:
            head = max(head, issued)
        return _Head(head, identity, witness_now)

    def _check_history(
        self, cur: psycopg.Cursor[Any], head: _Head, new_server: bool
    ) -> Reset | None:
        """Whether the rows read are still the table's; if not, where its new history begins
        (the reader's position is moved there)."""
        assert self.high_water is not None
        witness = self.ledger.witness
        renamed = self.identity is not None and head.identity != self.identity
        recreated = (
            renamed
            and self.identity is not None
            and head.identity is not None
            and head.identity.relation != self.identity.relation
        )
        self.identity = head.identity
        if witness is None or head.witness == witness[1]:
            if renamed:
                # Rewritten in place (VACUUM FULL, CLUSTER), or a partition added or dropped:
                # the newest row read is still there.
                log.debug("the %s table was rewritten; its rows are still there", self.source.name)
            if head.head < self.high_water:
                # Ids above the newest row read had no rows; the sequence went back under them.
                self.high_water = head.head
                self.gaps = list(_below(self.gaps, head.head + 1))
            return None
        if renamed:
            reason = "recreate" if recreated else "truncate"
        elif new_server:
            reason = "failover"
        else:
            reason = "ids_fell" if head.head < self.high_water else "history"
        return self._reconcile(cur, reason, renamed=renamed)

    def _restart(self, reason: str, detail: str) -> Reset:
        self.high_water, self.gaps = 0, []
        self.ledger.clear()
        self.excluded = array("q")
        return Reset(self.source.name, reason, detail + "; what was counted before stays counted")

    def _reconcile(self, cur: psycopg.Cursor[Any], reason: str, *, renamed: bool) -> Reset | None:
        """The newest rows remembered against the table's rows now: those still the same stay
        counted, every other row from the oldest remembered id on is read as new."""
        assert self.high_water is not None
        low = self.ledger.lowest
        assert low is not None
        upto = self.high_water
        where = sql.SQL("{id} >= %(low)s AND {id} <= %(upto)s").format(id=self.source.id_column)
        current = dict(
            self._fingerprints(cur, where, {"low": low, "upto": upto}, limit=upto - low + 1)
        )
        kept, changed, lowest_kept = self.ledger.compare(current)
        remembered = len(self.ledger)
        name = self.source.name
        if not kept and (renamed or not current):
            # Nothing read is left: a new table, or one emptied (a DELETE, its sequence perhaps
            # reset). What it holds now is another history, read from its first row.
            what = {
                "recreate": f"the {name} table was dropped and created again",
                "truncate": f"the {name} table was truncated",
            }.get(reason, f"none of the {remembered} newest rows read is left in the {name} table")
            return self._restart(reason, f"{what}: reading its rows from the first")
        known = set(kept)
        in_gaps = [gap for gap in self.gaps if gap.high >= low]
        reused = [
            i
            for i in current
            if i not in known and not any(gap.low <= i <= gap.high for gap in in_gaps)
        ]
        if not changed and not reused:
            # Rows were deleted (retention: the newest row with them), none replaced.
            log.info(
                "%d of the %d newest rows read were deleted from the %s table; none was "
                "replaced, so counting goes on",
                remembered - len(kept),
                remembered,
                name,
            )
            self.ledger.keep_only(kept)
            return None
        self.high_water = low - 1
        self.gaps = list(_below(self.gaps, low))
        self.excluded = array("q", kept)
        self.ledger.keep_only(kept)
        detail = (
            f"{remembered - len(kept)} of the {remembered} newest rows read from the {name} "
            f"table (ids {low} to {upto}) are gone or hold other rows: reading from id {low} "
            "on again, the rows still the same left out; what was counted before stays counted"
        )
        if not lowest_kept:
            detail += (
                f". The change may reach below id {low}, the oldest row remembered: rows "
                "holding older ids again are not counted (reader.history_rows sets how many "
                "rows are remembered)"
            )
        return Reset(name, reason, detail)

    def _remember(
        self, cur: psycopg.Cursor[Any], where: sql.Composable, params: dict[str, Any]
    ) -> None:
        """Add the fingerprints of the newest rows ``where`` selects to the ledger."""
        self.ledger.add(self._fingerprints(cur, where, params))

    def _fingerprints(
        self,
        cur: psycopg.Cursor[Any],
        where: sql.Composable,
        params: dict[str, Any],
        limit: int | None = None,
    ) -> list[tuple[int, int]]:
        query = sqlfiles.template("queries/fingerprints.sql").format(
            id=self.source.id_column,
            table=self.source.table,
            fingerprint=self.source.fingerprint,
            where=where,
        )
        limit = self.ledger.capacity if limit is None else limit
        rows = cur.execute(query, {**params, "limit": limit}).fetchall()
        return [(int(row_id), int(fingerprint)) for row_id, fingerprint in rows]

    def _aggregate_range(
        self, cur: psycopg.Cursor[Any], after: int, upto: int, excluded: Sequence[int] = ()
    ) -> tuple[list[Row], int]:
        """Aggregates of the rows in ``(after, upto]`` but the ``excluded`` ids (counted
        before a reset and still the same), and how many rows there were."""
        where = sql.SQL("{id} > %(after)s AND {id} <= %(upto)s").format(id=self.source.id_column)
        params: dict[str, Any] = {"after": after, "upto": upto}
        if excluded:
            where = sql.SQL("{} AND NOT ({id} = ANY(%(excluded)s))").format(
                where, id=self.source.id_column
            )
            params["excluded"] = list(excluded)
        rows = self._aggregate(cur, where, params)
        return rows, sum(int(row["rows_read"]) for row in rows)

    def _read_gaps(
        self, cur: psycopg.Cursor[Any], gaps: Sequence[Gap]
    ) -> tuple[list[Row], list[tuple[int, int]]]:
        """Aggregates of the rows that have appeared in ``gaps``, and their id ranges."""
        if not gaps:
            return [], []
        where, params = self._ranges(gaps)
        query = sqlfiles.template("queries/present_ranges.sql").format(
            id=self.source.id_column, table=self.source.table, where=where
        )
        present = [(int(low), int(high)) for low, high in cur.execute(query, params)]
        if not present:
            return [], []  # the usual case: the transactions are still open
        return self._aggregate(cur, where, params), present

    def _ranges(self, gaps: Sequence[Gap]) -> tuple[sql.Composable, dict[str, Any]]:
        where: list[sql.Composable] = []
        params: dict[str, Any] = {}
        for index, gap in enumerate(gaps):
            where.append(
                sql.SQL("{id} BETWEEN {low} AND {high}").format(
                    id=self.source.id_column,
                    low=sql.Placeholder(f"gap_low_{index}"),
                    high=sql.Placeholder(f"gap_high_{index}"),
                )
            )
            params[f"gap_low_{index}"] = gap.low
            params[f"gap_high_{index}"] = gap.high
        return sql.SQL(" OR ").join(where), params

    def _aggregate(
        self, cur: psycopg.Cursor[Any], where: sql.Composable, params: dict[str, Any]
    ) -> list[Row]:
        """``key``, ``rows_read`` and the source's aggregates, per key, over what ``where``
        selects."""
        query = self.source.formatted("queries/aggregate_new_rows.sql", where)
        bound = {**self.source.params, **params, "counted_upto": self._counted_upto}
        with cur.connection.cursor(row_factory=dict_row) as named:
            return named.execute(query, bound).fetchall()

    def _find_gaps(
        self, cur: psycopg.Cursor[Any], after: int, upto: int, missing: int | None = None
    ) -> list[Gap]:
        """The ranges of ids in ``(after, upto]`` that no visible row holds.

        With ``missing``, the number of such ids (known from the count of the range), the
        search starts at the top, where transactions still open have their ids, and widens
        downwards eightfold only until that many are found: it reads a few thousand ids of the
        index, not the whole range, unless a gap lies deep in it.
        """
        now = self._clock()
        if missing is not None and missing == upto - after:
            # No row of the range is visible (ids a transaction still open holds, say): it is
            # one gap, and walking its index entries again would tell nothing more.
            return [Gap(after + 1, upto, found_at=now)] if upto > after else []
        query = sqlfiles.template("queries/find_gaps.sql").format(
            id=self.source.id_column, table=self.source.table
        )
        found: list[tuple[int, int]] = []
        top, span = upto, GAP_SEARCH_SPAN if missing is not None else upto - after
        remaining = upto - after if missing is None else missing
        while remaining > 0 and top > after:
            bottom = max(after, top - span)
            for low, high in cur.execute(query, {"after": bottom, "upto": top}).fetchall():
                found.append((int(low), int(high)))
                remaining -= int(high) - int(low) + 1
            top, span = bottom, span * 8
        return [Gap(low, high, found_at=now) for low, high in _joined(sorted(found))]


def running_transactions(cur: psycopg.Cursor[Any]) -> frozenset[str]:
    """The transactions running now in this database, other than our own.

    Run it outside the poll's transaction and before it begins: a transaction missing from
    the list had ended before the poll's snapshot was taken.
    """
    rows = cur.execute(sqlfiles.template("queries/running_transactions.sql")).fetchall()
    return frozenset(str(row[0]) for row in rows)


def _unchanged(gap: Gap, fence: Fence | None) -> bool:
    """Whether ``gap`` cannot have changed since it was last read: every transaction of its
    fence was still running at a listing made after that read's snapshot, so none had
    committed by then. One that commits after the listing is missing from the next one, and
    the gap is read then; nothing else can fill it. (On a standby the listing need not be
    replayed yet: a transaction still running on the primary cannot be visible anywhere.)"""
    current = None if fence is None else fence.current
    return (
        current is not None
        and gap.fence is not None
        and bool(gap.fence)
        and 0 <= gap.read_at < current.number
        and gap.fence <= current.running
    )


class _Due(NamedTuple):
    due: list[Gap]  # to read in this poll
    waiting: list[Gap]  # for a later one
    # Ids left for the next poll that may have changed (some of their fence ended): work the
    # caller is told of, so that it polls again at once.
    left: int


def _due(gaps: Sequence[Gap], fence: Fence | None, budget: int) -> _Due:
    """The gaps to read again in this poll, and those that wait: unchanged ones (see
    :func:`_unchanged`) are not read, and at most ``budget`` ids of the others (a large gap is
    split), in at most :data:`MAX_GAP_RANGES_PER_POLL` ranges. Those left wait for the next
    poll, first in line, so a poll's cost stays bounded whatever is open."""
    due: list[Gap] = []
    waiting: list[Gap] = []
    room, left = budget, 0
    for gap in gaps:
        if _unchanged(gap, fence):
            waiting.append(gap)
            continue
        if room <= 0 or len(due) >= MAX_GAP_RANGES_PER_POLL:
            waiting.append(gap)
            left += gap.size if gap.fence is not None else 0
            continue
        if gap.size > room:
            due.append(dataclasses.replace(gap, high=gap.low + room - 1))
            waiting.append(dataclasses.replace(gap, low=gap.low + room))
            left += waiting[-1].size if gap.fence is not None else 0
        else:
            due.append(gap)
        room -= due[-1].size
    return _Due(due, waiting, left)


def _settle(gaps: Iterable[Gap], fence: Fence | None) -> tuple[list[Gap], int]:
    """Fence gaps found by earlier polls, and give up those whose fence has ended; returns
    the gaps kept and how many ids were given up unseen for want of a fence (expired).

    Called with gaps re-read under this poll's snapshot, which began after ``fence`` was
    learnt: an id still missing when none of its fence was running at a listing this
    snapshot sees the end of was rolled back. Those of the fence that had ended could not
    hold it either, so the fence narrows to those still running.
    """
    if fence is None:
        return list(gaps), 0
    current, settled = fence.current, fence.settled
    read_at = -1 if current is None else current.number
    kept: list[Gap] = []
    expired = 0
    for gap in gaps:
        gap = dataclasses.replace(gap, read_at=read_at)
        if gap.fence is None and current is not None:
            gap = dataclasses.replace(gap, fence=current.running, fenced_at=current.number)
        if gap.fence is not None and settled is not None and settled.number >= gap.fenced_at:
            if gap.fence.isdisjoint(settled.running):
                continue
            gap = dataclasses.replace(gap, fence=gap.fence & settled.running)
        if fence.expire_before is not None and gap.found_at < fence.expire_before:
            expired += gap.size
            continue
        kept.append(gap)
    return kept, expired


def _below(gaps: Iterable[Gap], limit: int) -> Iterator[Gap]:
    """The parts of ``gaps`` below ``limit``."""
    for gap in gaps:
        if gap.low < limit:
            yield gap if gap.high < limit else dataclasses.replace(gap, high=limit - 1)


def _split(gaps: Iterable[Gap], present: Sequence[tuple[int, int]]) -> Iterable[Gap]:
    """Remove the ``present`` id ranges (sorted, disjoint) from ``gaps``, keeping each fence."""
    lows = [low for low, _ in present]
    for gap in gaps:
        low = gap.low
        start = max(0, bisect.bisect_right(lows, gap.low) - 1)
        for taken_low, taken_high in present[start:]:
            if taken_low > gap.high:
                break
            if taken_high < low:
                continue
            if taken_low > low:
                yield dataclasses.replace(gap, low=low, high=taken_low - 1)
            low = taken_high + 1
        if low <= gap.high:
            yield dataclasses.replace(gap, low=low, high=gap.high)


def _joined(ranges: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Sorted id ranges with adjacent ones joined (a gap found across two search steps)."""
    current: tuple[int, int] | None = None
    for low, high in ranges:
        if current is not None and low == current[1] + 1:
            current = (current[0], high)
            continue
        if current is not None:
            yield current
        current = (low, high)
    if current is not None:
        yield current


def _merge_rows(first: list[Row], second: list[Row]) -> list[Row]:
    """Add two lists of rows group by group (key and target; NULL sums stay NULL)."""
    if not second:
        return first
    merged: dict[Any, Row] = {(row["key"], row.get("target")): row for row in first}
    for row in second:
        group = (row["key"], row.get("target"))
        old = merged.get(group)
        if old is None:
            merged[group] = row
        else:
            merged[group] = {
                name: value if name in ("key", "target") else _add(old[name], value)
                for name, value in row.items()
            }
    return list(merged.values())


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    # Text is a sample of the group's values (one bad value to show), not an amount.
    return min(a, b) if isinstance(a, str) else a + b
