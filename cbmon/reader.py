"""Reading an append-only table incrementally, exactly, at a cost in proportion to new rows.

Ids come from a sequence when a row is inserted, but transactions commit later and out of
order: a reader that only asks for ``id > last_seen`` loses a row whose id is below one it
already read but whose transaction commits afterwards. So the reader keeps *gaps*: ids below
the highest one read that were not visible yet. Each poll re-reads the gaps together with the
new range. A transaction takes its row's id before it is given a transaction id, and a
busy server can let other transactions commit in between, so a gap is given up in two steps:
once ``gap_grace`` has passed since it was found, the next poll notes its snapshot's
``txid_snapshot_xmax`` (by then the transaction holding the id has a transaction id below it);
when a later poll's ``txid_snapshot_xmin`` reaches that mark, every such transaction has ended,
and an id still missing was rolled back. Rows are therefore counted once, whatever the commit
order.

Each poll runs in one REPEATABLE READ, READ ONLY transaction, so every query of a poll sees
the same snapshot, and the reader's state changes only after the poll has read everything.
The SQL uses ``txid_*`` functions, not ``xid8``, so openGauss accepts it too.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from cbmon import sqlfiles

# At most this many gap ranges are read per poll; the rest wait for the next one.
MAX_GAP_RANGES_PER_POLL = 500


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The transaction snapshot a poll read under (``txid_current_snapshot()``)."""

    xmin: int
    xmax: int


@dataclasses.dataclass(frozen=True)
class Gap:
    """Ids ``low..high`` not visible when first seen, below ids that were."""

    low: int
    high: int
    seen_at: float  # monotonic seconds when first found
    # xmax of a snapshot taken gap_grace after the gap was found; None until then.
    mark_xmax: int | None = None

    @property
    def size(self) -> int:
        return self.high - self.low + 1


@dataclasses.dataclass(frozen=True)
class Source:
    """What to read: the table, its id column, and the SQL producing per-group aggregates.

    ``select`` are aggregate expressions over the table's columns, grouped by ``group_by``;
    ``params`` are bound.
    """

    name: str
    table: sql.Composable
    id_column: sql.Identifier
    group_by: sql.Composable
    select: Sequence[sql.Composable]
    params: dict[str, Any]

    def formatted(self, template: str, **extra: sql.Composable) -> sql.Composed:
        """``sql/<template>`` with this source's key, aggregates and table filled in."""
        return sqlfiles.template(template).format(
            key=self.group_by,
            id=self.id_column,
            aggregates=sql.SQL(", ").join(self.select) if self.select else sql.SQL("0"),
            table=self.table,
            **extra,
        )


@dataclasses.dataclass(frozen=True)
class ReadResult:
    """What one poll found: rows of ``(key, count, *aggregates)`` over the rows not read before."""

    rows: list[tuple[Any, ...]]
    new_rows: int
    lag_rows: int
    open_gaps: int


class TailReader:
    """Incremental, gap-aware reader of one table. Not thread-safe: one poller owns it."""

    def __init__(
        self,
        source: Source,
        *,
        batch_size: int = 500_000,
        gap_grace: float = 10.0,
        startup_gap_scan: int = 10_000,
    ) -> None:
        self.source = source
        self.batch_size = batch_size
        self.gap_grace = gap_grace
        self.startup_gap_scan = startup_gap_scan
        self.high_water: int | None = None  # highest id read; None before the first poll
        self.gaps: list[Gap] = []

    @property
    def open_gap_ids(self) -> int:
        return sum(gap.size for gap in self.gaps)

    def read(self, cur: psycopg.Cursor[Any], snapshot: Snapshot, now: float) -> ReadResult:
        """Read what is new under the current transaction's snapshot and advance the state.

        The caller runs this inside a REPEATABLE READ transaction and calls it again at once
        while ``lag_rows`` is above zero. If the transaction fails, the caller must discard
        the reader's pending changes: they are applied only at the end of this method.
        """
        head = self._head(cur)
        if self.high_water is None or head < self.high_water:
            # First poll, or the table was emptied or its sequence reset: start from the tail.
            start = max(0, head - self.startup_gap_scan)
            gaps = self._find_gaps(cur, start, head, snapshot, now)
            self.high_water, self.gaps = head, gaps
            return ReadResult([], 0, 0, self.open_gap_ids)

        after = self.high_water
        if head == after and not self.gaps:
            return ReadResult([], 0, 0, 0)  # the common idle poll: one index probe, no scan
        upto = min(head, after + self.batch_size)
        checked = self.gaps[:MAX_GAP_RANGES_PER_POLL]
        rows, in_range = self._aggregate(cur, after, upto, checked)
        found_in_gaps = sum(int(row[1]) for row in rows) - in_range
        new_gaps: list[Gap] = []
        if in_range < upto - after:
            new_gaps = self._find_gaps(cur, after, upto, snapshot, now)
        refreshed = self._refresh_gaps(cur, checked, found_in_gaps)
        # Only a gap re-read under this snapshot may be given up; unread ones go first next time.
        still_open = self._age(refreshed, snapshot, now)
        self.high_water = upto
        self.gaps = self.gaps[len(checked) :] + still_open + new_gaps
        return ReadResult(
            rows=rows,
            new_rows=in_range + found_in_gaps,
            lag_rows=head - upto,
            open_gaps=self.open_gap_ids,
        )

    def _head(self, cur: psycopg.Cursor[Any]) -> int:
        query = sql.SQL("SELECT max({id}) FROM {table}").format(
            id=self.source.id_column, table=self.source.table
        )
        row = cur.execute(query).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _aggregate(
        self, cur: psycopg.Cursor[Any], after: int, upto: int, gaps: Sequence[Gap]
    ) -> tuple[list[tuple[Any, ...]], int]:
        """Aggregates of rows in ``(after, upto]`` and in ``gaps``, grouped by the key.

        Each returned row is ``(key, count, *select)``; the second value returned is how many
        rows came from the new range (the rest were found in gaps).
        """
        src = self.source
        where: list[sql.Composable] = [
            sql.SQL("({id} > %(after)s AND {id} <= %(upto)s)").format(id=src.id_column)
        ]
        params = dict(src.params, after=after, upto=upto)
        for index, gap in enumerate(gaps):
            where.append(
                sql.SQL("({id} BETWEEN {low} AND {high})").format(
                    id=src.id_column,
                    low=sql.Placeholder(f"gap_low_{index}"),
                    high=sql.Placeholder(f"gap_high_{index}"),
                )
            )
            params[f"gap_low_{index}"] = gap.low
            params[f"gap_high_{index}"] = gap.high
        # Gap ids all lie below ``after``, so without gaps every row read is in the range.
        counted = (
            sql.SQL("count(CASE WHEN {id} > %(after)s THEN 1 END)").format(id=src.id_column)
            if gaps
            else sql.SQL("count(*)")
        )
        query = src.formatted(
            "queries/aggregate_new_rows.sql", where=sql.SQL(" OR ").join(where), in_range=counted
        )
        raw = cur.execute(query, params).fetchall()
        in_range = sum(int(row[2]) for row in raw)
        rows = (
            [(row[0], row[1], *row[3:]) for row in raw]
            if src.select
            else [(row[0], row[1]) for row in raw]
        )
        return rows, in_range

    def _find_gaps(
        self, cur: psycopg.Cursor[Any], after: int, upto: int, snapshot: Snapshot, now: float
    ) -> list[Gap]:
        """The ranges of ids in ``(after, upto]`` that no visible row holds."""
        if upto <= after:
            return []
        query = sqlfiles.template("queries/find_gaps.sql").format(
            id=self.source.id_column, table=self.source.table
        )
        found = cur.execute(query, {"after": after, "upto": upto}).fetchall()
        return [Gap(int(low), int(high), now) for low, high in found]

    def _refresh_gaps(self, cur: psycopg.Cursor[Any], gaps: Sequence[Gap], found: int) -> list[Gap]:
        """Split ``gaps`` around the ids that have now appeared in them."""
        if not gaps or found == 0:
            return list(gaps)
        conditions = sql.SQL(" OR ").join(
            sql.SQL("({id} BETWEEN %s AND %s)").format(id=self.source.id_column) for _ in gaps
        )
        query = sql.SQL("SELECT {id} FROM {table} WHERE {conditions} ORDER BY 1").format(
            id=self.source.id_column, table=self.source.table, conditions=conditions
        )
        params = [bound for gap in gaps for bound in (gap.low, gap.high)]
        present = [int(row[0]) for row in cur.execute(query, params)]
        return list(_split(gaps, present))

    def _age(self, gaps: Iterable[Gap], snapshot: Snapshot, now: float) -> list[Gap]:
        """Mark gaps old enough, and drop those whose transactions have all ended."""
        kept: list[Gap] = []
        for gap in gaps:
            if gap.mark_xmax is None:
                if now - gap.seen_at >= self.gap_grace:
                    gap = dataclasses.replace(gap, mark_xmax=snapshot.xmax)
            elif snapshot.xmin >= gap.mark_xmax:
                continue  # every transaction that could hold these ids has ended
            kept.append(gap)
        return kept


def _split(gaps: Iterable[Gap], present: Sequence[int]) -> Iterable[Gap]:
    """Remove the ``present`` ids (sorted) from ``gaps``, keeping each part's history."""
    for gap in gaps:
        start = bisect.bisect_left(present, gap.low)
        stop = bisect.bisect_right(present, gap.high)
        low = gap.low
        for taken in present[start:stop]:
            if taken > low:
                yield dataclasses.replace(gap, low=low, high=taken - 1)
            low = taken + 1
        if low <= gap.high:
            yield dataclasses.replace(gap, low=low, high=gap.high)
