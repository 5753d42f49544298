"""The reader is exact under every commit order: writers' steps interleaved with polls.

Each writer takes an id from the sequence, writes its row later (the moment it gets a
transaction id), then commits or rolls back; polls run between the steps. The private cluster
is quiet: nothing else commits, so no other traffic moves a snapshot along, which is where a
give-up rule based on transaction-id arithmetic lost rows. After each schedule the totals must
equal an independent SQL query over the same rows.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest

from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from tests.conftest import PgSchema
from tests.support.counting import assert_matches, max_id, poll_into, poll_until_no_gaps, truth

STEPS = ("take", "write", "end")
NEXTVAL = "SELECT nextval(pg_get_serial_sequence('callback_logs', 'id'))"
WRITE = "INSERT INTO callback_logs (id, event_type, status, execution_time) VALUES (%s, %s, %s, %s)"


def orders(writers: int, takes_in_order: bool) -> Iterator[tuple[int, ...]]:
    """Every sequence in which each writer appears len(STEPS) times (its steps in order).

    With ``takes_in_order`` writer 0 takes its id first, then 1, then 2: the writers are
    alike, and every outcome is tried for each, so the other take orders add nothing.
    """
    counts = [len(STEPS)] * writers

    def extend(prefix: list[int]) -> Iterator[tuple[int, ...]]:
        if not any(counts):
            yield tuple(prefix)
            return
        for writer in range(writers):
            if counts[writer] == 0:
                continue
            step = len(STEPS) - counts[writer]
            taken = sum(1 for w in range(writers) if counts[w] < len(STEPS))
            if takes_in_order and step == 0 and writer != taken:
                continue
            counts[writer] -= 1
            yield from extend([*prefix, writer])
            counts[writer] += 1

    yield from extend([])


class Writer:
    """One writer's transaction: take an id, write the row, end."""

    def __init__(self, conn: psycopg.Connection[Any], name: str) -> None:
        self.conn = conn
        self.name = name
        self.id: int | None = None

    def step(self, step: str, commit: bool) -> None:
        if step == "take":
            row = self.conn.execute(NEXTVAL).fetchone()
            assert row is not None
            self.id = int(row[0])
        elif step == "write":
            assert self.id is not None
            status = "COMPLETED" if self.id % 3 else "FAILED"
            self.conn.execute(WRITE, (self.id, self.name, status, self.id % 997 + 0.25))
        elif commit:
            self.conn.commit()
        else:
            self.conn.rollback()


def run_schedule(
    pg: PgSchema,
    poller: Poller,
    state: Store,
    conn: psycopg.Connection[Any],
    writers: Sequence[Writer],
    order: Sequence[int],
    outcome: Sequence[bool],
    polls_after: Sequence[int],
) -> None:
    done = [0] * len(writers)
    for position, index in enumerate(order):
        writers[index].step(STEPS[done[index]], outcome[index])
        done[index] += 1
        for _ in range(polls_after[position]):
            poll_into(poller, state, conn)
    poll_until_no_gaps(poller, state, conn)
    assert poller.logs.open_gap_ids == 0


def check_schedules(pg: PgSchema, count: int, schedules: Iterator[tuple[Any, ...]]) -> int:
    poller, state = Poller(pg.config()), Store(500)
    ran = 0
    with ExitStack() as stack:
        conn = stack.enter_context(pg.connect())
        writers = [
            Writer(stack.enter_context(pg.connect(autocommit=False)), f"w{i}") for i in range(count)
        ]
        poll_into(poller, state, conn)
        start = max_id(pg)
        for order, outcome, polls_after in schedules:
            run_schedule(pg, poller, state, conn, writers, order, outcome, polls_after)
            ran += 1
            if ran % 40 == 0:  # an independent count now and then, and always at the end
                poll_into(poller, state, conn)  # a schedule may end with a commit unpolled
                assert_matches(state, truth(pg, start))
        poll_into(poller, state, conn)
        assert_matches(state, truth(pg, start))
    return ran


def test_the_quiet_server_defect(quiet_pg: PgSchema) -> None:
    """A takes id N, B takes N+1 and commits, A writes N and stays open for many polls."""
    poller, state = Poller(quiet_pg.config()), Store(500)
    with (
        quiet_pg.connect() as conn,
        quiet_pg.connect(autocommit=False) as a_conn,
        quiet_pg.connect(autocommit=False) as b_conn,
    ):
        a, b = Writer(a_conn, "slow"), Writer(b_conn, "fast")
        poll_into(poller, state, conn)
        start = max_id(quiet_pg)
        # nextval gives its transaction an xid when it logs the sequence, once per 32 values;
        # one call now makes the next ones quiet, as most calls are.
        quiet_pg.conn.execute(NEXTVAL)
        a.step("take", True)
        b.step("take", True)
        b.step("write", True)
        b.step("end", True)
        a.step("write", True)
        for _ in range(6):  # a slow HTTP call inside A's transaction
            poll_into(poller, state, conn)
            assert any(gap.low <= (a.id or 0) <= gap.high for gap in poller.logs.gaps)
        a.step("end", True)
        poll_until_no_gaps(poller, state, conn)
    assert state.view().figures["slow"].attempts == 1
    assert_matches(state, truth(quiet_pg, start))


@pytest.mark.parametrize("polls", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_two_writers_every_order_every_outcome(quiet_pg: PgSchema, polls: int) -> None:
    """Every interleaving of two writers' steps, both outcomes each, ``polls`` polls between
    steps; with one, a seeded sample of sparser polling too."""
    events = 2 * len(STEPS)
    outcomes = list(itertools.product([True, False], repeat=2))
    every = [
        (order, outcome, (polls,) * events)
        for order in orders(2, takes_in_order=False)
        for outcome in outcomes
    ]
    rng = random.Random(9)
    sparse = [
        (order, rng.choice(outcomes), tuple(rng.choice([0, 0, 1, 2]) for _ in range(events)))
        for order in orders(2, takes_in_order=False)
        for _ in range(3)
    ]
    if polls != 1:
        sparse = []
    assert len(every) == 20 * 4
    assert check_schedules(quiet_pg, 2, iter(every + sparse)) == len(every) + len(sparse)


@pytest.mark.slow
def test_three_writers_every_order_every_outcome(quiet_pg: PgSchema) -> None:
    events = 3 * len(STEPS)
    schedules = [
        (order, outcome, (1,) * events)
        for order in orders(3, takes_in_order=True)
        for outcome in itertools.product([True, False], repeat=3)
    ]
    assert len(schedules) == 280 * 8
    assert check_schedules(quiet_pg, 3, iter(schedules)) == len(schedules)


@pytest.mark.slow
def test_three_writers_sampled(quiet_pg: PgSchema) -> None:
    """The fast layer's share of the three-writer schedules: a seeded sample of them (the
    slow layer runs every one)."""
    events = 3 * len(STEPS)
    rng = random.Random(3)
    every = list(orders(3, takes_in_order=True))
    schedules = [
        (
            rng.choice(every),
            tuple(rng.choice([True, False]) for _ in range(3)),
            tuple(rng.choice([0, 1, 1, 2]) for _ in range(events)),
        )
        for _ in range(60)
    ]
    assert check_schedules(quiet_pg, 3, iter(schedules)) == len(schedules)


def test_orders_are_all_the_interleavings() -> None:
    two = list(orders(2, takes_in_order=False))
    assert len(two) == len(set(two)) == 20  # 6! / (3! 3!)
    three = list(orders(3, takes_in_order=True))
    assert len(three) == len(set(three)) == 280  # 9! / (3!)^3 / 3!
    for order in three:
        first_takes = [order.index(w) for w in range(3)]
        assert first_takes == sorted(first_takes)
