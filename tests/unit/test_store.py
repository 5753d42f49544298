"""The in-memory state: event types folded into labels, totals since start, history labelled
the same way."""

from __future__ import annotations

from cbmon.domain import Figures, Slot
from cbmon.ingest.store import Store
from tests.support.sidecar import DB_NOW, ManualClock, callbacks, feed, poll_result


def test_missing_and_empty_event_types_are_one_unknown_label() -> None:
    store = Store(max_event_types=10)
    labeled = store.label(poll_result({None: callbacks([0.1]), "": callbacks([0.2], failures=1)}))
    assert list(labeled.figures) == ["unknown"]
    assert labeled.figures["unknown"].attempts == 2
    assert labeled.figures["unknown"].failures == 1


def test_event_types_over_the_cap_add_up_under_other() -> None:
    store = Store(max_event_types=2)
    feed(store, poll_result({"a": callbacks([0.1]), "b": callbacks([0.1])}))
    labeled = feed(store, poll_result({"c": callbacks([0.1] * 2), "d": callbacks([0.1] * 3)}))
    assert labeled.figures == {"other": callbacks([0.1] * 5)}
    view = store.view()
    assert sorted(view.figures) == ["a", "b", "other"]
    assert (view.event_types, view.folded_total) == (2, 2)
    # Known event types keep their own label after the cap is reached.
    assert list(feed(store, poll_result({"a": callbacks()})).figures) == ["a"]


def test_long_event_types_are_shortened_to_the_same_label_every_poll() -> None:
    store = Store(max_event_types=10, max_event_type_length=16)
    name = "order." + "x" * 100
    first = feed(store, poll_result({name: callbacks([0.1])}))
    second = feed(store, poll_result({name: callbacks([0.2])}))
    (label,) = first.figures
    assert len(label) == 16
    assert label.startswith("order.")
    assert list(second.figures) == [label]
    assert store.view().figures[label].attempts == 2
    assert store.view().truncated_total == 1


def test_totals_add_up_across_polls_and_keep_quiet_event_types() -> None:
    store = Store(max_event_types=10)
    polls: list[dict[str | None, Figures]] = [
        {"a": callbacks([0.1, 0.6], failures=1), "b": Figures(errors=3)},
        {"a": callbacks([0.05], invalid=2)},
        {"c": callbacks([1.0])},
    ]
    for figures in polls:
        feed(store, poll_result(figures))
    totals = store.view().figures
    assert totals["a"] == callbacks([0.1, 0.6], failures=1) + callbacks([0.05], invalid=2)
    assert totals["b"] == Figures(errors=3)  # counters since start: no traffic, still there
    assert totals["c"] == callbacks([1.0])


def test_history_slots_are_labelled_like_polls_and_stay_out_of_the_totals() -> None:
    store = Store(max_event_types=2)
    history = (
        Slot(end=DB_NOW - 120, event_type=None, figures=callbacks([0.1])),
        Slot(end=DB_NOW - 60, event_type="pay", figures=callbacks([0.2])),
        Slot(end=DB_NOW - 60, event_type="refund", figures=callbacks([0.3])),
    )
    result = poll_result({"pay": callbacks([0.4])}, history=history)
    labeled = feed(store, result)
    assert labeled.history == (
        (DB_NOW - 120, {"unknown": callbacks([0.1])}),
        (DB_NOW - 60, {"pay": callbacks([0.2])}),
        (DB_NOW - 60, {"other": callbacks([0.3])}),  # the cap counts history's event types too
    )
    # History feeds the SLO window; the counters start at the tail.
    assert store.view().figures == {"pay": callbacks([0.4])}


def test_oldest_age_is_on_the_database_clock_and_never_negative() -> None:
    clock = ManualClock(1_000.0)
    store = Store(max_event_types=10, clock=clock)
    # The database's clock is an hour behind ours; its rows are dated on its clock.
    feed(store, poll_result(backlog=1, oldest_created=1_000.0 - 3600 - 5, db_now=1_000.0 - 3600))
    assert store.oldest_age_seconds() == 5
    clock.advance(2)
    assert store.oldest_age_seconds() == 7
    feed(
        store, poll_result(backlog=1, oldest_created=clock.now - 3600 + 30, db_now=clock.now - 3600)
    )
    assert store.oldest_age_seconds() == 0  # dated ahead of the database's clock
