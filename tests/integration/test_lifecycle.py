"""Callbacks, not only attempts: outcomes, tries, dead letters, duplicates, queue wait and end
to end, per target, and the queue by state, each compared with an independent SQL count over
the same rows, under out-of-order commits, and with the reference worker delivering to real
receivers on 127.0.0.1."""

from __future__ import annotations

import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cbmon.domain import QUEUE_STATES, WAIT_BUCKETS
from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from cbmon.web.collector import CallbackCollector
from tests.conftest import PgSchema
from tests.support.counting import max_id, poll_into, poll_until_no_gaps
from tests.support.delivering import deliver
from tests.support.receiver import Reply, receiver

LOG = (
    "INSERT INTO callback_logs (event_type, status, execution_time, queue_id, attempt, "
    "http_status, target, created_at) VALUES (%s, %s, 40, %s, %s, %s, %s, coalesce(%s, now()))"
)


def sample(store: Store, name: str, **labels: str) -> float:
    registry = CollectorRegistry()
    registry.register(CallbackCollector(store))
    return registry.get_sample_value(name, labels) or 0.0


def enqueue(pg: PgSchema, count: int, event_type: str = "pay", age: str = "0s") -> list[int]:
    rows = pg.conn.execute(
        "INSERT INTO callback_queue (event_type, created_at) "
        "SELECT %s, now() - %s::interval FROM generate_series(1, %s) RETURNING id",
        (event_type, age, count),
    ).fetchall()
    return [int(row[0]) for row in rows]


def truth(pg: PgSchema, start: int, event_type: str) -> dict[str, int]:
    """Outcomes by their definition, over the rows above ``start``."""
    row = pg.conn.execute(
        """
        SELECT count(DISTINCT queue_id) FILTER (WHERE status = 'COMPLETED'),
               count(*) FILTER (WHERE status = 'COMPLETED' AND queue_id IS NOT NULL),
               count(*) FILTER (WHERE status <> 'COMPLETED' AND attempt >= 4)
        FROM callback_logs WHERE id > %s AND event_type = %s
        """,
        (start, event_type),
    ).fetchone()
    assert row is not None
    delivered, successes, dead = (int(v) for v in row)
    return {"delivered": delivered, "duplicates": successes - delivered, "dead": dead}


def counted(state: Store, event_type: str) -> dict[str, int]:
    c = state.view().figures[event_type].callbacks
    return {"delivered": c.delivered, "duplicates": c.duplicates, "dead": c.dead}


def test_outcomes_equal_sql_whatever_order_the_attempts_commit_in(pg: PgSchema) -> None:
    """Callbacks tried by several writers at once: retries, dead letters, and duplicate
    deliveries whose transactions commit in shuffled order around polls."""
    rng = random.Random(21)
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        start = max_id(pg)
        ids = enqueue(pg, 40)
        writers = [pg.connect(autocommit=False) for _ in range(4)]
        try:
            steps: list[tuple[int, int, str]] = []  # (queue id, attempt, status)
            for queue_id in ids:
                fate = rng.choice(["first", "third", "dead", "duplicate", "open"])
                if fate == "first":
                    steps.append((queue_id, 1, "COMPLETED"))
                elif fate == "third":
                    steps += [(queue_id, 1, "FAILED"), (queue_id, 2, "FAILED")]
                    steps.append((queue_id, 3, "COMPLETED"))
                elif fate == "dead":
                    steps += [(queue_id, n, "FAILED") for n in (1, 2, 3, 4)]
                elif fate == "duplicate":  # a lease ran out: two workers delivered it
                    steps += [(queue_id, 1, "COMPLETED"), (queue_id, 2, "COMPLETED")]
                else:
                    steps.append((queue_id, 1, "FAILED"))
            rng.shuffle(steps)
            for number, (queue_id, attempt, status) in enumerate(steps):
                writer = writers[number % len(writers)]
                code = 200 if status == "COMPLETED" else 500
                writer.execute(LOG, ("pay", status, queue_id, attempt, code, "http://r.test", None))
                if rng.random() < 0.5:
                    rng.choice(writers).commit()
                if rng.random() < 0.3:
                    poll_into(poller, state, conn)
            for writer in writers:
                writer.commit()
        finally:
            for writer in writers:
                writer.close()
        poll_until_no_gaps(poller, state, conn)
    assert counted(state, "pay") == truth(pg, start, "pay")
    c = state.view().figures["pay"].callbacks
    finished = sample(state, "cbmon_callback_tries_bucket", event_type="pay", le="+Inf")
    assert finished == c.finished == c.delivered + c.dead
    assert sample(state, "cbmon_callbacks_delivered_total", event_type="pay") == c.delivered


def test_the_reference_worker_a_third_try_delivers_and_retries_run_out(pg: PgSchema) -> None:
    """A receiver failing twice then answering: one delivered callback with three tries. A
    receiver that always fails: one dead letter, the queue row dead."""
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn, receiver() as flaky, receiver() as broken:
        poll_into(poller, state, conn)
        flaky.replies = [Reply(500), Reply(503)]  # then 200
        enqueue(pg, 1, "pay")
        deliver(pg, flaky.url)
        broken.default = Reply(500)
        enqueue(pg, 1, "ship")
        deliver(pg, broken.url)
        poll_into(poller, state, conn)
    pay = state.view().figures["pay"].callbacks
    assert (pay.delivered, pay.dead, pay.duplicates) == (1, 0, 0)
    assert pay.tries == (0, 0, 1, 1)  # three tries: at or below 3, not 2
    assert pay.tries_sum == 3
    ship = state.view().figures["ship"].callbacks
    assert (ship.delivered, ship.dead) == (0, 1)
    assert ship.tries == (0, 0, 0, 1)  # the fourth attempt was its last
    assert len(broken.requests) == 4
    outcomes = dict(pg.conn.execute("SELECT event_type, outcome FROM callback_queue").fetchall())
    assert outcomes == {"pay": "delivered", "ship": "dead"}
    assert state.view().queue_states == {
        "due": 0, "retry_scheduled": 0, "in_flight": 0, "stuck": 0, "dead": 1,
    }  # fmt: skip
    assert sample(state, "cbmon_callbacks_dead_total", event_type="ship") == 1


def test_queue_wait_and_end_to_end_equal_sql_bucket_by_bucket(pg: PgSchema) -> None:
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        rng = random.Random(5)
        for queue_id in enqueue(pg, 30, age="2 minutes"):
            first = f"{rng.uniform(0.01, 70):.3f} seconds"  # after being queued
            delivered = f"{rng.uniform(70, 115):.3f} seconds"
            for attempt, status, after in ((1, "FAILED", first), (2, "COMPLETED", delivered)):
                pg.conn.execute(
                    LOG.replace(
                        "coalesce(%s, now())",
                        "(SELECT created_at FROM callback_queue WHERE id = %s) + %s::interval",
                    ),
                    ("pay", status, queue_id, attempt, None, None, queue_id, after),
                )
        poll_into(poller, state, conn)
    c = state.view().figures["pay"].callbacks
    since = (
        "SELECT extract(epoch FROM l.created_at - q.created_at) FROM callback_logs l "
        "JOIN callback_queue q ON q.id = l.queue_id WHERE l.attempt = %s"
    )
    waits = [float(r[0]) for r in pg.conn.execute(since, (1,)).fetchall()]
    ends = [float(r[0]) for r in pg.conn.execute(since, (2,)).fetchall()]
    assert c.waits == tuple(sum(1 for w in waits if w <= b) for b in WAIT_BUCKETS)
    assert c.ends == tuple(sum(1 for e in ends if e <= b) for b in WAIT_BUCKETS)
    assert c.wait_sum == pytest.approx(sum(waits))
    assert c.end_sum == pytest.approx(sum(ends))
    assert (c.waited, c.ended) == (30, 30)
    assert sample(
        state, "cbmon_callback_end_to_end_seconds_bucket", event_type="pay", le="60.0"
    ) == sum(1 for e in ends if e <= 60)


def test_per_target_attempts_and_failures_by_class(pg: PgSchema) -> None:
    poller, state = Poller(pg.config()), Store(500)
    rows: list[tuple[Any, ...]] = [
        ("pay", "COMPLETED", 1, 1, 200, "https://a.test", None),
        ("pay", "FAILED", 2, 1, 404, "https://a.test", None),
        ("pay", "FAILED", 3, 1, 503, "https://b.test", None),
        ("pay", "TIMEOUT", 4, 1, None, "https://b.test", None),
        ("pay", "FAILED", 5, 1, None, "https://b.test", None),
    ]
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        for row in rows:
            pg.conn.execute(LOG, row)
        poll_into(poller, state, conn)
    targets = state.view().targets
    assert targets["https://a.test"].attempts == 2
    assert targets["https://a.test"].failures == (1, 0, 0, 0)
    assert targets["https://b.test"].failures == (0, 1, 1, 1)
    timeouts = {"target": "https://b.test", "class": "timeout"}
    assert sample(state, "cbmon_target_failures_total", **timeouts) == 1


def test_the_queue_by_state_equals_sql(pg: PgSchema) -> None:
    pg.conn.execute(
        """
        INSERT INTO callback_queue (event_type, locked_until, next_attempt_at, processed_at,
                                    outcome)
        SELECT 'pay', l, n, p, o FROM (VALUES
            (NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::text),
            (NULL, now() - interval '1 minute', NULL, NULL),
            (NULL, now() + interval '1 hour', NULL, NULL),
            (now() + interval '1 minute', NULL, NULL, NULL),
            (now() - interval '1 minute', NULL, NULL, NULL),
            (NULL, NULL, now(), 'dead'),
            (NULL, NULL, now(), 'delivered')
        ) AS v (l, n, p, o)
        """
    )
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
    states = state.view().queue_states
    assert states == {"due": 2, "retry_scheduled": 1, "in_flight": 1, "stuck": 1, "dead": 1}
    assert sum(states[s] for s in QUEUE_STATES if s != "dead") == state.view().backlog
    assert sample(state, "cbmon_queue_items", state="stuck") == 1


def test_without_the_lifecycle_columns_it_is_off_and_says_why(pg: PgSchema) -> None:
    pg.conn.execute("DROP INDEX callback_logs_queue_id_idx")
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
    found = state.view().features
    assert found is not None
    assert not found.outcomes
    assert any("CREATE INDEX ON" in note for note in found.notes)
    assert sample(state, "cbmon_lifecycle_enabled", feature="outcomes") == 0
