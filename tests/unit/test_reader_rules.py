"""The reader's give-up rule and its memory of rows read, on plain values."""

from __future__ import annotations

from cbmon.db.topology import History, parse_lsn
from cbmon.ingest.history import Ledger
from cbmon.ingest.reader import Fence, Gap, Listing, _settle


def test_on_a_primary_a_gap_is_fenced_then_dropped_once_its_fence_has_ended() -> None:
    gap = Gap(10, 10)
    first = Listing(1, frozenset({"3/7", "4/2"}))
    kept, expired = _settle([gap], Fence.on_primary(first))
    assert kept == [Gap(10, 10, fence=first.running, fenced_at=1)]
    assert expired == 0
    still = Listing(2, frozenset({"4/2", "5/1"}))  # one of the fence still runs
    assert _settle(kept, Fence.on_primary(still))[0] == kept
    ended = Listing(3, frozenset({"5/1"}))
    assert _settle(kept, Fence.on_primary(ended)) == ([], 0)


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
    assert _settle(fenced, Fence(current=Listing(2, frozenset()), settled=None))[0] == fenced
    # A listing older than the fence cannot settle it, whatever it lacks.
    older = Fence(current=Listing(3, frozenset()), settled=Listing(0, frozenset()))
    assert _settle(fenced, older)[0] == fenced
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
