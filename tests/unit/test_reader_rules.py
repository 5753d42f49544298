"""The reader's give-up rule and its memory of rows read, on plain values."""

from __future__ import annotations

from cbmon.db.topology import History, parse_lsn
from cbmon.ingest.history import Ledger
from cbmon.ingest.reader import Fence, Gap, Listing, _due, _settle, _unchanged


def spans(gaps: list[Gap]) -> list[tuple[int, int, frozenset[str] | None]]:
    return [(gap.low, gap.high, gap.fence) for gap in gaps]


def test_on_a_primary_a_gap_is_fenced_then_dropped_once_its_fence_has_ended() -> None:
    gap = Gap(10, 10)
    first = Listing(1, frozenset({"3/7", "4/2"}))
    kept, expired = _settle([gap], Fence.on_primary(first))
    assert kept == [Gap(10, 10, fence=first.running, fenced_at=1, read_at=1)]
    assert expired == 0
    still = Listing(2, frozenset({"4/2", "5/1"}))  # one of the fence still runs
    narrowed, _ = _settle(kept, Fence.on_primary(still))
    # 3/7 had ended before this snapshot: it cannot hold the id. 5/1 began after the fence.
    assert narrowed == [Gap(10, 10, fence=frozenset({"4/2"}), fenced_at=1, read_at=2)]
    ended = Listing(3, frozenset({"5/1"}))
    assert _settle(narrowed, Fence.on_primary(ended)) == ([], 0)
    assert _settle(kept, Fence.on_primary(ended)) == ([], 0)


def test_a_gap_whose_fence_all_runs_is_not_read_again() -> None:
    first = Listing(1, frozenset({"3/7", "4/2"}))
    (gap,) = _settle([Gap(10, 10)], Fence.on_primary(first))[0]
    assert not _unchanged(gap, Fence.on_primary(first))  # the listing before its last read
    later = Listing(2, frozenset({"3/7", "4/2", "9/9"}))
    assert _unchanged(gap, Fence.on_primary(later))
    assert _due([gap], Fence.on_primary(later), 100) == ([], [gap], 0)
    one_ended = Listing(3, frozenset({"4/2"}))
    assert not _unchanged(gap, Fence.on_primary(one_ended))
    assert _due([gap], Fence.on_primary(one_ended), 100) == ([gap], [], 0)
    # Not yet fenced, without a fence to tell (a standby read alone), or an empty fence
    # (dropped when read): always read.
    assert not _unchanged(Gap(10, 10), Fence.on_primary(later))
    assert not _unchanged(gap, Fence(expire_before=0.0))
    assert not _unchanged(Gap(1, 1, fence=frozenset(), read_at=1), Fence.on_primary(later))


def test_a_poll_reads_at_most_its_budget_of_gap_ids_and_the_rest_waits() -> None:
    gaps = [Gap(1, 10), Gap(20, 20), Gap(30, 39)]
    due, waiting, left = _due(gaps, None, 15)
    assert spans(due) == [(1, 10, None), (20, 20, None), (30, 33, None)]
    assert spans(waiting) == [(34, 39, None)]
    assert left == 0  # not fenced yet: nothing tells that it changed
    due, waiting, _ = _due(waiting + due, None, 15)  # next poll: what waited comes first
    assert spans(due)[0] == (34, 39, None)
    assert sum(gap.size for gap in due) == 15
    ended = Listing(5, frozenset())
    fenced = [Gap(1, 10, fence=frozenset({"1/1"}), fenced_at=1, read_at=1), Gap(20, 29)]
    due, waiting, left = _due(fenced, Fence.on_primary(ended), 4)
    assert spans(due) == [(1, 4, frozenset({"1/1"}))]
    assert left == 6  # the rest of the gap whose writer ended: the caller polls again at once


def test_an_empty_listing_drops_a_new_gap_at_once() -> None:
    # Nothing runs: the transaction holding the id had ended before the listing, and the
    # snapshot after it still cannot see the id: it rolled back.
    assert _settle([Gap(4, 6)], Fence.on_primary(Listing(1, frozenset()))) == ([], 0)


def test_on_a_standby_only_a_listing_the_standby_replayed_past_settles() -> None:
    gap = Gap(10, 12)
    fenced, _ = _settle([gap], Fence(current=Listing(1, frozenset({"3/7"}))))
    assert fenced[0].fence == frozenset({"3/7"})
    # The writer ended on the primary (listing 2 lacks it), but the standby has not replayed
    # past that listing: nothing settles it yet.
    waiting = Fence(current=Listing(2, frozenset()), settled=None)
    assert spans(_settle(fenced, waiting)[0]) == spans(fenced)
    assert not _unchanged(fenced[0], waiting)  # its writer ended: read it until replayed
    # Still running on the primary: nothing of it can be visible on the standby either.
    assert _unchanged(fenced[0], Fence(current=Listing(2, frozenset({"3/7"})), settled=None))
    # A listing older than the fence cannot settle it, whatever it lacks.
    older = Fence(current=Listing(3, frozenset()), settled=Listing(0, frozenset()))
    assert spans(_settle(fenced, older)[0]) == spans(fenced)
    replayed = Fence(current=Listing(3, frozenset()), settled=Listing(2, frozenset()))
    assert _settle(fenced, replayed) == ([], 0)


def test_a_gap_found_after_the_listing_is_fenced_by_a_later_one() -> None:
    found = Gap(20, 20, found_at=5.0)
    kept, _ = _settle([found], Fence(current=None, settled=Listing(7, frozenset())))
    assert kept == [found]  # no listing to fence it with: held, not dropped


def test_without_a_primary_gaps_are_held_then_expire_and_are_counted() -> None:
    gaps = [Gap(1, 3, found_at=100.0), Gap(9, 9, found_at=200.0)]
    kept, expired = _settle(gaps, Fence(expire_before=150.0))
    assert kept == [gaps[1]]
    assert expired == 3


def test_without_a_fence_nothing_changes() -> None:
    gaps = [Gap(1, 3)]
    assert _settle(gaps, None) == (gaps, 0)


def test_the_ledger_keeps_the_newest_rows_in_id_order() -> None:
    ledger = Ledger(capacity=4)
    ledger.add([(5, 50), (3, 30), (7, 70)])
    ledger.add([(4, 40), (9, 90)])  # a gap filled below, new rows above
    assert ledger.lowest == 4
    assert ledger.witness == (9, 90)
    assert len(ledger) == 4
    ledger.add([(7, 71)])  # the same id read again holds its newest fingerprint
    kept, changed, lowest_kept = ledger.compare({4: 40, 5: 50, 7: 71, 9: 99})
    assert kept == [4, 5, 7]
    assert changed == 1
    assert lowest_kept


def test_the_ledger_tells_when_the_change_reaches_below_what_it_remembers() -> None:
    ledger = Ledger(capacity=10)
    ledger.add([(1, 1), (2, 2), (3, 3)])
    kept, changed, lowest_kept = ledger.compare({2: 2, 3: 3})
    assert (kept, changed, lowest_kept) == ([2, 3], 0, False)
    copy = ledger.copy()
    ledger.keep_only([3])
    assert len(ledger) == 1
    assert len(copy) == 3


def test_wal_positions_compare_as_numbers() -> None:
    assert parse_lsn("0/16B3748") == 0x16B3748
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")


def test_histories_differ_only_when_both_say_who_they_are() -> None:
    before = History(False, "app", "7716", 1)
    assert before.differs(History(False, "app", "7716", 2))
    assert not before.differs(History(False, "app", None, None))
    assert not before.differs(History(True, "app", "7716", 1))
