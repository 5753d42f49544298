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
docs/design.md gives the argument in full.

Each poll reads in one REPEATABLE READ, READ ONLY transaction, so every query of a poll sees the
same snapshot, and the reader's state changes only after the poll has read everything.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from cbmon.db import sqlfiles

# At most this many gap ranges are read per poll; the rest wait for the next one.
MAX_GAP_RANGES_PER_POLL = 500
# A batch never shrinks below this many ids.
MIN_BATCH = 1000
# New gaps are looked for in the top this-many ids of a range first, then in eightfold wider
# steps below.
GAP_SEARCH_SPAN = 4096


@dataclasses.dataclass(frozen=True)
class Gap:
    """Ids ``low..high`` not visible when first seen, below ids that were."""

    low: int
    high: int
    # The transactions running at the first poll start after the gap was found; None until then.
    fence: frozenset[str] | None = None

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

    def formatted(self, template: str, **extra: sql.Composable) -> sql.Composed:
        """``cbmon/sql/<template>`` with this source's key, aggregates and table filled in."""
        aggregates = [
            sql.SQL("{} AS {}").format(expression, sql.Identifier(name))
            for name, expression in self.select.items()
        ]
        return sqlfiles.template(template).format(
            key=self.group_by,
            id=self.id_column,
            aggregates=sql.SQL(", ").join(aggregates) if aggregates else sql.SQL("0 AS nothing"),
            table=self.table,
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


class TailReader:
    """Incremental, gap-aware reader of one table. Not thread-safe: one poller owns it."""

    def __init__(
        self, source: Source, *, batch_size: int = 1_000_000, startup_gap_scan: int = 10_000
    ) -> None:
        self.source = source
        self.batch_size = batch_size
        self.startup_gap_scan = startup_gap_scan
        self.high_water: int | None = None  # highest id read; None before the first poll
        self.gaps: list[Gap] = []

    @property
    def open_gap_ids(self) -> int:
        return sum(gap.size for gap in self.gaps)

    def shrink_batch(self) -> None:
        """A batch outran the statement timeout: read half as many ids at a time from now on,
        so a backlog on a slow server drains in smaller steps instead of failing forever."""
        self.batch_size = max(MIN_BATCH, self.batch_size // 2)

    def read(self, cur: psycopg.Cursor[Any], running: frozenset[str] | None) -> ReadResult:
        """Read what is new under the current transaction's snapshot and advance the state.

        ``running`` lists the transactions that were running just before this transaction
        began (see :func:`running_transactions`); it is needed only while gaps are open.
        The caller runs this inside a REPEATABLE READ transaction and calls it again at once
        while ``lag_rows`` is above zero. If the transaction fails, the caller must discard
        the reader's pending changes: they are applied only at the end of this method.
        """
        head = self._head(cur)
        if self.high_water is None or head < self.high_water:
            # First poll, or the table was emptied or its sequence reset: start from the tail.
            start = max(0, head - self.startup_gap_scan)
            self.high_water, self.gaps = head, self._find_gaps(cur, start, head)
            return ReadResult([], 0, 0, self.open_gap_ids)

        after = self.high_water
        if head == after and not self.gaps:
            return ReadResult([], 0, 0, 0)  # the common idle poll: one index probe, no scan
        upto = min(head, after + self.batch_size)
        rows, in_range = self._aggregate_range(cur, after, upto)
        checked = self.gaps[:MAX_GAP_RANGES_PER_POLL]
        gap_rows, present = self._read_gaps(cur, checked)
        new_gaps = self._find_gaps(cur, after, upto, missing=upto - after - in_range)
        still_open = _settle(_split(checked, present), running)
        self.high_water = upto
        self.gaps = self.gaps[len(checked) :] + still_open + new_gaps
        return ReadResult(
            rows=_merge_rows(rows, gap_rows),
            new_rows=in_range + sum(high - low + 1 for low, high in present),
            lag_rows=head - upto,
            open_gaps=self.open_gap_ids,
        )

    def _head(self, cur: psycopg.Cursor[Any]) -> int:
        query = sql.SQL("SELECT max({id}) FROM {table}").format(
            id=self.source.id_column, table=self.source.table
        )
        row = cur.execute(query).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _aggregate_range(
        self, cur: psycopg.Cursor[Any], after: int, upto: int
    ) -> tuple[list[Row], int]:
        """Aggregates of the rows in ``(after, upto]``, and how many rows there were."""
        where = sql.SQL("{id} > %(after)s AND {id} <= %(upto)s").format(id=self.source.id_column)
        rows = self._aggregate(cur, where, {"after": after, "upto": upto})
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
        query = self.source.formatted("queries/aggregate_new_rows.sql", where=where)
        with cur.connection.cursor(row_factory=dict_row) as named:
            return named.execute(query, {**self.source.params, **params}).fetchall()

    def _find_gaps(
        self, cur: psycopg.Cursor[Any], after: int, upto: int, missing: int | None = None
    ) -> list[Gap]:
        """The ranges of ids in ``(after, upto]`` that no visible row holds.

        With ``missing``, the number of such ids (known from the count of the range), the
        search starts at the top, where transactions still open have their ids, and widens
        downwards eightfold only until that many are found: it reads a few thousand ids of the
        index, not the whole range, unless a gap lies deep in it.
        """
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
        return [Gap(low, high) for low, high in _joined(sorted(found))]


def running_transactions(cur: psycopg.Cursor[Any]) -> frozenset[str]:
    """The transactions running now in this database, other than our own.

    Run it outside the poll's transaction and before it begins: a transaction missing from
    the list had ended before the poll's snapshot was taken.
    """
    rows = cur.execute(sqlfiles.template("queries/running_transactions.sql")).fetchall()
    return frozenset(str(row[0]) for row in rows)


def _settle(gaps: Iterable[Gap], running: frozenset[str] | None) -> list[Gap]:
    """Fence gaps found by earlier polls, and give up those whose fence has ended.

    Called with gaps re-read under this poll's snapshot, which began after ``running`` was
    listed: an id still missing when none of its fence is running was rolled back.
    """
    if running is None:
        return list(gaps)
    kept = []
    for gap in gaps:
        fence = running if gap.fence is None else gap.fence
        if fence.isdisjoint(running):
            continue
        kept.append(gap if gap.fence is fence else dataclasses.replace(gap, fence=fence))
    return kept


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
    """Add two lists of rows key by key (NULL sums stay NULL)."""
    if not second:
        return first
    merged: dict[Any, Row] = {row["key"]: row for row in first}
    for row in second:
        old = merged.get(row["key"])
        if old is None:
            merged[row["key"]] = row
        else:
            merged[row["key"]] = {
                name: value if name == "key" else _add(old[name], value)
                for name, value in row.items()
            }
    return list(merged.values())


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None else a + b
