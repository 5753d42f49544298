"""Event type labels: capped in number and in length, and what is folded or cut is counted."""

from __future__ import annotations

from cbmon.ingest.labels import DistinctCounter, EventTypeLabels, shorten


def test_folded_event_types_are_counted_exactly_past_any_size() -> None:
    labels = EventTypeLabels(cap=3)
    for name in ["a", "b", "c"]:
        assert labels.label(name) == name
    # 30,000 distinct names folded (the digests merged seven times over), each seen again in
    # later polls: counted once each.
    for _ in range(2):
        for number in range(30_000):
            assert labels.label(f"type-{number}") == "other"
    assert labels.folded_total == 30_000
    assert len(labels) == 3


def test_distinct_counter_counts_each_value_once() -> None:
    counter = DistinctCounter()
    values = [f"v{n % 10_007}" for n in range(50_000)]
    added = [counter.add(v) for v in values]
    assert sum(added) == len(counter) == 10_007
    assert not counter.add("v5")


def test_long_event_types_are_shortened_and_stay_distinct() -> None:
    labels = EventTypeLabels(cap=10, max_length=32)
    first, second = "x" * 10_000, "x" * 9_999 + "y"
    a, b = labels.label(first), labels.label(second)
    assert len(a) == len(b) == 32
    assert a != b
    assert a.startswith("x" * 23 + "~")
    assert labels.label(first) == a  # the same name maps to the same label every poll
    assert labels.truncated_total == 2
    assert labels.label("short") == "short"
    assert labels.truncated_total == 2


def test_shorten_leaves_short_values_alone() -> None:
    assert shorten("order_created", 16) == "order_created"
    assert shorten("é" * 20, 16) == "é" * 7 + "~" + shorten("é" * 20, 16)[-8:]


def test_empty_and_missing_event_types_are_unknown() -> None:
    labels = EventTypeLabels(cap=5)
    assert labels.label(None) == labels.label("") == "unknown"
