"""Event types as label values: at most ``max_event_types`` of them, none longer than
``max_event_type_length``; what is folded or cut is counted, exactly.

Pure logic on strings, no I/O. Not thread-safe: the store calls it under its lock.
"""

from __future__ import annotations

import array
import bisect
import hashlib
import itertools

UNKNOWN_EVENT_TYPE = "unknown"
OTHER_EVENT_TYPE = "other"


class DistinctCounter:
    """Counts distinct strings in 8 bytes each: their 64-bit BLAKE2b digests, kept sorted.

    Exact unless two different strings share a digest (about 1 in 10^8 for a million strings),
    and memory stays at 8 bytes per string however long the strings are.
    """

    _MERGE_EVERY = 4096

    def __init__(self) -> None:
        self._sorted = array.array("Q")
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def add(self, value: str) -> bool:
        """Remember ``value``; True when it was not seen before."""
        digest = int.from_bytes(_digest(value, 8), "big")
        if digest in self._recent:
            return False
        index = bisect.bisect_left(self._sorted, digest)
        if index < len(self._sorted) and self._sorted[index] == digest:
            return False
        self._recent.add(digest)
        if len(self._recent) >= self._MERGE_EVERY:
            self._sorted = array.array("Q", sorted(itertools.chain(self._sorted, self._recent)))
            self._recent.clear()
        return True


def _digest(value: str, size: int) -> bytes:
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=size).digest()


def shorten(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, ending in ``~`` and 8 hex digits of its digest so
    that two long values sharing a beginning stay two labels."""
    if len(value) <= limit:
        return value
    return f"{value[: limit - 9]}~{_digest(value, 4).hex()}"


class EventTypeLabels:
    """Maps raw event types to label values: at most ``cap`` of them (the rest fold to other),
    none longer than ``max_length`` characters (longer ones are shortened)."""

    def __init__(self, cap: int, max_length: int = 128) -> None:
        self.cap = cap
        self.max_length = max_length
        self._known: set[str] = set()
        self._folded = DistinctCounter()
        self.truncated_total = 0

    def __len__(self) -> int:
        return len(self._known)

    @property
    def folded_total(self) -> int:
        return len(self._folded)

    def label(self, raw: str | None) -> str:
        value = shorten(raw, self.max_length) if raw else UNKNOWN_EVENT_TYPE
        if value in self._known:
            return value
        if len(self._known) < self.cap:
            self._known.add(value)
            if value != raw and raw:
                self.truncated_total += 1
            return value
        self._folded.add(raw or UNKNOWN_EVENT_TYPE)
        return OTHER_EVENT_TYPE
