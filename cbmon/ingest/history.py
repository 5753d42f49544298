"""Which rows the reader has counted, and whether the table still holds them.

A table's history can be replaced under the reader: a ``TRUNCATE`` (with or without
``RESTART IDENTITY``), a drop and re-create, a ``DELETE`` with a sequence reset, or a failover
to a standby that lacked the last commits, whose sequence then hands out ids again. Ids alone
cannot tell: id 1041 may be the row counted an hour ago or a new one. So the reader remembers,
for the newest ``capacity`` ids it has read, a fingerprint of each row (a hash of its
``created_at``, which a new row holding an old id does not share), and the table's identity
(its oid and storage). The newest remembered row is the *witness*: each poll checks it in the
same statement that reads the newest id. When the witness is gone or changed, or the table's
identity changed, :class:`Ledger` tells which rows are still the ones counted, so the new
history is read from where it begins: every row of it counted once, none twice.
"""

from __future__ import annotations

import bisect
import dataclasses
from array import array
from collections.abc import Iterable, Mapping


@dataclasses.dataclass(frozen=True)
class Identity:
    """The table as the catalogs name it: a re-created table has a new ``relation`` (oid); a
    truncated or rewritten one new ``storage`` (the sum of its and its partitions' files)."""

    relation: int
    storage: int


class Ledger:
    """Fingerprints of the newest rows read, by id, up to ``capacity`` of them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: array[int] = array("q")
        self._prints: array[int] = array("i")

    def __len__(self) -> int:
        return len(self._ids)

    def copy(self) -> Ledger:
        other = Ledger(self.capacity)
        other._ids, other._prints = array("q", self._ids), array("i", self._prints)
        return other

    def clear(self) -> None:
        self._ids, self._prints = array("q"), array("i")

    @property
    def witness(self) -> tuple[int, int] | None:
        """The newest remembered row: ``(id, fingerprint)``."""
        if not self._ids:
            return None
        return self._ids[-1], self._prints[-1]

    @property
    def lowest(self) -> int | None:
        return self._ids[0] if self._ids else None

    def add(self, rows: Iterable[tuple[int, int]]) -> None:
        """Remember rows just read (any order); the oldest beyond ``capacity`` are forgotten."""
        for row_id, fingerprint in sorted(rows):
            if not self._ids or row_id > self._ids[-1]:
                self._ids.append(row_id)
                self._prints.append(fingerprint)
                continue
            at = bisect.bisect_left(self._ids, row_id)
            if at < len(self._ids) and self._ids[at] == row_id:
                self._prints[at] = fingerprint
            else:
                self._ids.insert(at, row_id)
                self._prints.insert(at, fingerprint)
        extra = len(self._ids) - self.capacity
        if extra > 0:
            del self._ids[:extra]
            del self._prints[:extra]

    def compare(self, current: Mapping[int, int]) -> tuple[list[int], int, bool]:
        """Against the table's rows now (``id -> fingerprint`` over the remembered range):
        the remembered ids still holding the same row, how many hold another row now, and
        whether the lowest remembered row is still the same (else the change may reach below
        what is remembered)."""
        kept: list[int] = []
        changed = 0
        for row_id, fingerprint in zip(self._ids, self._prints, strict=True):
            now = current.get(row_id)
            if now == fingerprint:
                kept.append(row_id)
            elif now is not None:
                changed += 1
        lowest_kept = bool(kept) and kept[0] == self._ids[0]
        return kept, changed, lowest_kept

    def keep_only(self, ids: Iterable[int]) -> None:
        wanted = set(ids)
        pairs = [(i, p) for i, p in zip(self._ids, self._prints, strict=True) if i in wanted]
        self._ids = array("q", [i for i, _ in pairs])
        self._prints = array("i", [p for _, p in pairs])
