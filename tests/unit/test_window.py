"""The SLO window: what slid out is forgotten, and memory stays bounded."""

from __future__ import annotations

from cbmon.domain import Figures
from cbmon.ingest.window import Window


def calls(attempts: int, failures: int = 0, errors: int = 0) -> Figures:
    return Figures(attempts=attempts, failures=failures, errors=errors)


def test_window_forgets_what_slid_out() -> None:
    window = Window(60)
    window.add(100.0, {"a": calls(10, 1, errors=2)})
    window.add(130.0, {"a": calls(10), "b": calls(0, errors=5)})
    overall, per_type = window.totals(150.0)
    assert (overall.attempts, overall.failures, overall.errors) == (20, 1, 7)
    overall, per_type = window.totals(165.0)
    assert (overall.attempts, overall.failures, overall.errors) == (10, 0, 5)
    assert (per_type["b"].attempts, per_type["b"].errors) == (0, 5)
    overall, per_type = window.totals(200.0)
    assert overall == Figures()
    assert per_type == {}  # an event type with nothing left in the window is gone


def test_backfilled_slots_may_arrive_in_any_order() -> None:
    window = Window(60)
    window.add(150.0, {"a": calls(1)})
    window.add(100.0, {"a": calls(2)})
    window.add(120.0, {"a": calls(4)})
    assert window.totals(159.0)[0].attempts == 7
    assert window.totals(170.0)[0].attempts == 5  # 100 slid out, 120 and 150 stay
    assert window.totals(181.0)[0].attempts == 1


def test_window_memory_is_bounded_whatever_the_poll_rate() -> None:
    window = Window(60)
    for tick in range(6000):  # ten polls a second for ten minutes
        window.add(tick / 10, {"a": calls(1)})
    overall, _ = window.totals(600.0)
    assert len(window) <= Window.SLICES + 1
    assert 595 <= overall.attempts <= 605  # the last minute, to within one step


def test_packed_slices_give_back_exactly_what_went_in() -> None:
    """Older slices are packed into flat arrays; what they subtract on expiry is exact."""
    window = Window(60)
    big = Figures(
        attempts=3_000_000_000, failures=7, observed=2_999_999_999, sum_seconds=0.1 + 0.2,
        buckets=(1, 2, 3, 4, 5, 6, 7, 8, 2_999_999_999), invalid=1, slow=2, errors=3,
    )  # fmt: skip
    window.add(100.0, {"a": big})
    window.add(50.0, {"b": calls(4)})  # an older backfill slot: the newest is packed now
    window.add(100.2, {"a": calls(1)})  # and taken again by a poll within its step
    overall, per_type = window.totals(105.0)
    assert per_type["a"] == big + calls(1)
    assert overall.attempts == big.attempts + 5
    overall, per_type = window.totals(111.0 + 60.0)  # everything slid out
    assert (overall, per_type) == (Figures(), {})


def test_counts_beyond_32_bits_stay_exact_in_older_slices() -> None:
    window = Window(60)
    huge = calls(2**40)
    window.add(10.0, {"a": huge})
    window.add(20.0, {"a": calls(1)})  # a new slice: the first would be packed, but cannot be
    assert window.totals(30.0)[0].attempts == 2**40 + 1
    assert window.totals(70.5)[0].attempts == 1
