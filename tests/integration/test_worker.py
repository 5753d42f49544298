"""The reference callback worker against a real PostgreSQL and real HTTP receivers."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from psycopg import sql
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from cbmon.delivery import signing
from cbmon.delivery.retry import RetryPolicy
from cbmon.errors import ConfigError, DatabaseError
from cbmon.reference import mechanism
from cbmon.reference.worker import Claim, Worker, WorkerOptions
from tests.conftest import PgSchema
from tests.support.delivering import waiting
from tests.support.processes import wait_for

# -- receivers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


Behaviour = Callable[[int], Reply]  # the 0-based number of the request -> what to answer


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST and answers per ``behaviour``."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    number = len(receiver.hits)
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.hits.append(Hit(headers, body))
                reply = behaviour(number)
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def ids(self) -> list[str]:
        with self._lock:
            return [h.headers["webhook-id"] for h in self.hits]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[[Behaviour], Receiver]]:
    started: list[Receiver] = []

    def start(behaviour: Behaviour = lambda n: Reply()) -> Receiver:
        r = Receiver(behaviour)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


# -- database --------------------------------------------------------------------------------


@pytest.fixture
def mech(pg: PgSchema) -> Iterator[mechanism.Installed]:
    """The mechanism in the test's schema, with an executor role unique to this run."""
    role = f"cbmon_exec_{secrets.token_hex(4)}"
    try:
        yield mechanism.apply(pg.dsn, schema=pg.name, executor_role=role)
    finally:
        ident = sql.Identifier(role)
        if pg.conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            pg.conn.execute(sql.SQL("DROP ROLE {}").format(ident))


def _route(pg: PgSchema, event_type: str, url: str | None, **policy: Any) -> None:
    merged = {"max_retries": 3, "backoff": "exponential", "backoff_seconds": 0.05, **policy}
    pg.conn.execute(
        "INSERT INTO callback_router (event_type, retry_policy, target_url) VALUES (%s, %s, %s)"
        " ON CONFLICT (event_type) DO UPDATE"
        " SET retry_policy = excluded.retry_policy, target_url = excluded.target_url",
        (event_type, json.dumps(merged), url),
    )


def _enqueue(pg: PgSchema, event_type: str, count: int = 1) -> list[int]:
    rows = pg.conn.execute(
        "INSERT INTO callback_queue (event_type, payload)"
        " SELECT %s, jsonb_build_object('n', g) FROM generate_series(1, %s) g RETURNING id",
        (event_type, count),
    ).fetchall()
    return sorted(int(r[0]) for r in rows)


def _run(workers: list[Worker], until: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run the workers in threads until ``until()`` holds, then stop them and wait."""
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        wait_for(until, timeout)
    finally:
        for w in workers:
            w.stop.set()
        for t in threads:
            t.join(10)
    assert not any(t.is_alive() for t in threads), "a worker did not stop"


def _options(url: str | None = None, **kw: Any) -> WorkerOptions:
    kw.setdefault("poll_interval", 0.5)
    kw.setdefault("retry", RetryPolicy(initial=0.05, cap=300.0))
    return WorkerOptions(default_url=url, **kw)


# -- behaviour -------------------------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_workers_deliver_each_row_exactly_once(
    pg: PgSchema, mech: mechanism.Installed, receiver: Callable[[Behaviour], Receiver]
) -> None:
    target = receiver(lambda n: Reply(delay=0.001))
    ids = _enqueue(pg, "bulk", 300)
    stop = threading.Event()
    workers = [
        Worker(pg.dsn, schema=pg.name, options=_options(target.url, batch_size=5), stop=stop)
        for _ in range(3)
    ]
    _run(workers, lambda: waiting(pg) == 0)

    assert sorted(target.ids()) == sorted(f"msg_{i}" for i in ids)  # each once, none twice
    logs = pg.conn.execute(
        "SELECT queue_id, attempt, status FROM callback_logs ORDER BY queue_id"
    ).fetchall()
    assert logs == [(i, 1, "COMPLETED") for i in ids]
    assert pg.conn.execute(
        "SELECT count(*) FROM callback_queue WHERE attempts = 1 AND processed_at IS NOT NULL"
    ).fetchone() == (300,)
    assert sum(w.stats.completed for w in workers) == 300
    assert sum(1 for w in workers if w.stats.claimed) >= 2, "the work was not shared"


# The delay each retry was given: the log row of an attempt and the retry it schedules are
# written in one transaction, so both carry the same now().
RETRY_DELAY = (
    "SELECT extract(epoch FROM q.next_attempt_at - l.created_at)::float8"
    " FROM callback_queue q JOIN callback_logs l ON l.queue_id = q.id AND l.attempt = q.attempts"
    " WHERE q.processed_at IS NULL"
)


@pytest.mark.parametrize(("asked", "attempts"), [(10, 4), (3, 4), (1, 2), (0, 1)])
@pytest.mark.slow
def test_retries_at_most_three_times_then_gives_up(
    pg: PgSchema,
    mech: mechanism.Installed,
    receiver: Callable[[Behaviour], Receiver],
    asked: int,
    attempts: int,
) -> None:
    target = receiver(lambda n: Reply(status=500))
    _route(pg, "flaky", target.url, max_retries=asked, backoff_seconds=0.05)
    [queue_id] = _enqueue(pg, "flaky")
    alerts = pg.connect()
    alerts.execute("LISTEN callback_failed")
    delays: list[float] = []

    def settled() -> bool:
        if worker.process_once():
            delays.extend(float(row[0]) for row in pg.conn.execute(RETRY_DELAY))
        return waiting(pg) == 0

    with Worker(pg.dsn, schema=pg.name, options=_options()) as worker:
        wait_for(settled, timeout=20, every=0.01)

    assert target.ids() == [f"msg_{queue_id}"] * attempts  # one id across every retry
    assert len(delays) == attempts - 1
    for n, delay in enumerate(delays, start=1):  # exponential backoff, jitter at most halves it
        assert 0.5 * 0.05 * 2 ** (n - 1) - 1e-6 <= delay <= 0.05 * 2 ** (n - 1) + 1e-6
    logs = pg.conn.execute(
        "SELECT event_type, queue_id, attempt, status, http_status, execution_time > 0"
        " FROM callback_logs ORDER BY attempt"
    ).fetchall()
    assert logs == [("flaky", queue_id, a, "FAILED", 500, True) for a in range(1, attempts + 1)]
    errors = pg.conn.execute(
        "SELECT event_type, queue_id, attempt, error_message FROM callback_errors ORDER BY attempt"
    ).fetchall()
    assert errors == [("flaky", queue_id, a, "HTTP 500") for a in range(1, attempts + 1)]
    row = pg.conn.execute(
        "SELECT attempts, processed_at IS NOT NULL, last_error FROM callback_queue"
    ).fetchone()
    assert row == (attempts, True, "HTTP 500")
    notes = [json.loads(n.payload) for n in alerts.notifies(timeout=1, stop_after=1)]
    alerts.close()
    assert {"queue_id": queue_id, "attempts": attempts}.items() <= notes[0].items()
    # settled rows are never sent again
    assert Worker(pg.dsn, schema=pg.name, options=_options(target.url)).process_once() == 0
    assert len(target.hits) == attempts


@pytest.mark.slow
def test_timeout_is_logged_without_time_then_retried(
    pg: PgSchema, mech: mechanism.Installed, receiver: Callable[[Behaviour], Receiver]
) -> None:
    target = receiver(lambda n: Reply(delay=1.0 if n == 0 else 0.0))
    _route(pg, "slow", target.url)
    [queue_id] = _enqueue(pg, "slow")
    worker = Worker(pg.dsn, schema=pg.name, options=_options(timeout=0.3))
    _run([worker], lambda: waiting(pg) == 0)
    logs = pg.conn.execute(
        "SELECT attempt, status, http_status, execution_time IS NULL FROM callback_logs"
        " ORDER BY attempt"
    ).fetchall()
    assert logs == [(1, "TIMEOUT", None, True), (2, "COMPLETED", 200, False)]
    errors = pg.conn.execute("SELECT queue_id, attempt, error_message FROM callback_errors")
    assert errors.fetchall() == [(queue_id, 1, "no response within 0.3 s")]


def test_signed_delivery_verifies_and_logs_success(
    pg: PgSchema, mech: mechanism.Installed, receiver: Callable[[Behaviour], Receiver]
) -> None:
    secret = signing.new_secret()
    target = receiver(lambda n: Reply(status=204))
    [queue_id] = _enqueue(pg, "signed")
    worker = Worker(pg.dsn, schema=pg.name, options=_options(target.url, secret=secret))
    assert worker.process_once() == 1
    worker.close()

    [hit] = target.hits
    assert hit.headers["webhook-id"] == f"msg_{queue_id}"
    assert hit.headers["content-type"] == "application/json"
    envelope = Webhook(secret).verify(hit.body, hit.headers)  # the package's own verifier
    assert envelope["type"] == "signed"
    assert envelope["data"] == {"n": 1}
    assert signing.verify(secret, hit.body, hit.headers) == envelope
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(hit.body, hit.headers)

    log = pg.conn.execute(
        "SELECT event_type, status, http_status, queue_id, attempt, execution_time"
        " FROM callback_logs"
    ).fetchall()
    assert len(log) == 1
    assert log[0][:5] == ("signed", "COMPLETED", 204, queue_id, 1)
    assert 0 < log[0][5] < 5000
    assert pg.conn.execute("SELECT count(*) FROM callback_errors").fetchone() == (0,)
    assert pg.conn.execute(
        "SELECT total_calls, errors FROM callback_metrics WHERE event_type = 'signed'"
    ).fetchone() == (1, 0)


def _last_statement(pg: PgSchema, application_name: str) -> str:
    """What the worker's work connection ran last (pg_stat_activity keeps it while idle)."""
    row = pg.conn.execute(
        "SELECT query FROM pg_stat_activity"
        " WHERE application_name = %s AND query NOT LIKE 'LISTEN%%'",
        (application_name,),
    ).fetchone()
    return str(row[0]) if row else ""


def test_notification_wakes_an_idle_worker(
    pg: PgSchema, mech: mechanism.Installed, receiver: Callable[[Behaviour], Receiver]
) -> None:
    target = receiver(lambda n: Reply())
    _route(pg, "order_created", target.url)
    name = f"cbmon-worker-{secrets.token_hex(4)}"
    # Without the notification it would next look at the queue in an hour.
    worker = Worker(pg.dsn, schema=pg.name, options=_options(poll_interval=3600.0), name=name)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.ready.wait(5)
        # Idle: it has found nothing to do and asked when a retry is next due; it sleeps next.
        wait_for(lambda: "next_attempt_at > now()" in _last_statement(pg, name))
        pg.conn.execute("INSERT INTO orders (customer, amount) VALUES ('acme', 1)")
        wait_for(lambda: target.hits, timeout=10)
    finally:
        worker.stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert worker.stats.completed == 1


@pytest.mark.slow
def test_polling_serves_the_foundation_tables_alone(
    pg: PgSchema, receiver: Callable[[Behaviour], Receiver]
) -> None:
    # no mechanism: no router table, no notification trigger; polling must still deliver
    target = receiver(lambda n: Reply())
    [queue_id] = _enqueue(pg, "plain")
    worker = Worker(pg.dsn, schema=pg.name, options=_options(target.url, poll_interval=0.3))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.ready.wait(5)
        wait_for(lambda: target.hits)  # the first pass: the row queued before it started
        [second] = _enqueue(pg, "plain")  # found by a later poll, as nothing notifies
        wait_for(lambda: len(target.hits) >= 2, timeout=5)
    finally:
        worker.stop.set()
        thread.join(5)
    assert sorted(target.ids()) == [f"msg_{queue_id}", f"msg_{second}"]


def test_unreachable_receivers_fail_without_a_response(
    pg: PgSchema, mech: mechanism.Installed
) -> None:
    closed = Receiver(lambda n: Reply())
    url = closed.url
    closed.close()  # nothing listens on this port now
    _route(pg, "refused", url, max_retries=0)
    _route(pg, "nowhere", None, max_retries=0)
    _enqueue(pg, "refused")
    _enqueue(pg, "nowhere")
    with Worker(pg.dsn, schema=pg.name, options=_options()) as worker:
        assert worker.process_once() == 2
    rows = pg.conn.execute(
        "SELECT l.event_type, l.status, l.http_status, l.execution_time, e.error_message"
        " FROM callback_logs l JOIN callback_errors e USING (queue_id, attempt)"
        " ORDER BY l.event_type"
    ).fetchall()
    assert rows == [
        ("nowhere", "FAILED", None, None, "no receiver URL for nowhere"),
        ("refused", "FAILED", None, None, "request failed: connection refused"),
    ]
    assert waiting(pg) == 0


def test_retry_after_is_honoured(
    pg: PgSchema, mech: mechanism.Installed, receiver: Callable[[Behaviour], Receiver]
) -> None:
    target = receiver(lambda n: Reply(status=429, headers={"Retry-After": "30"}))
    _route(pg, "busy", target.url)
    _enqueue(pg, "busy")
    with Worker(pg.dsn, schema=pg.name, options=_options()) as worker:
        assert worker.process_once() == 1
        assert worker.process_once() == 0  # not due again for 30 s
    assert [float(row[0]) for row in pg.conn.execute(RETRY_DELAY)] == [30.0]
    assert pg.conn.execute("SELECT attempts FROM callback_queue").fetchone() == (1,)


def test_stop_hands_back_claims_not_attempted(
    pg: PgSchema, mech: mechanism.Installed, receiver: Callable[[Behaviour], Receiver]
) -> None:
    stop = threading.Event()
    target = receiver(lambda n: Reply())
    _enqueue(pg, "batch", 5)
    worker = Worker(pg.dsn, schema=pg.name, options=_options(target.url), stop=stop)
    original = worker.deliver

    def deliver_then_stop(claim: Claim, route: Any) -> Any:
        stop.set()  # as if Ctrl-C arrived during the first delivery
        return original(claim, route)

    worker.deliver = deliver_then_stop  # type: ignore[method-assign]
    assert worker.process_once() == 5
    worker.close()
    assert len(target.hits) == 1
    waiting = pg.conn.execute(
        "SELECT attempts, next_attempt_at FROM callback_queue WHERE processed_at IS NULL"
    ).fetchall()
    assert waiting == [(0, None)] * 4


def test_bad_secret_is_a_config_error(pg: PgSchema) -> None:
    with pytest.raises(ConfigError, match="whsec_"):
        Worker(pg.dsn, schema=pg.name, options=WorkerOptions(secret="whsec_"))


def test_missing_tables_fail_with_one_line(pg_dsn: str) -> None:
    worker = Worker(pg_dsn, schema="cbmon_no_such_schema", options=WorkerOptions())
    with pytest.raises(DatabaseError, match="cannot use the callback tables in schema"):
        worker.run()


def test_worker_reconnects_after_losing_the_database(
    pg: PgSchema, mech: mechanism.Installed, receiver: Callable[[Behaviour], Receiver]
) -> None:
    target = receiver(lambda n: Reply())
    name = f"cbmon-worker-{secrets.token_hex(4)}"
    options = _options(target.url, poll_interval=0.3, reconnect_delay=0.1)
    worker = Worker(pg.dsn, schema=pg.name, options=options, name=name)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.ready.wait(5)
        killed = pg.conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            (name,),
        ).fetchone()
        assert killed == (2,)  # its work and its LISTEN connections
        [queue_id] = _enqueue(pg, "after")
        wait_for(lambda: target.hits, timeout=5)
    finally:
        worker.stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert target.ids() == [f"msg_{queue_id}"]
