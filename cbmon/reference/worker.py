"""The reference callback worker: delivers ``callback_queue`` rows to HTTP receivers.

What the source article's Python worker means to do, made safe to run as several copies:

* wakes on ``LISTEN callback_queue`` (the mechanism's queue trigger notifies it), and polls
  every ``poll_interval`` anyway, so a lost notification or a database without the trigger
  only delays work; where the server has no LISTEN (openGauss, GaussDB: SQLSTATE 0A000) it
  says so once and only polls;
* claims due rows with ``FOR UPDATE SKIP LOCKED`` and leases them (``locked_until`` past the
  longest the batch can take), so each claim is delivered by one worker and no transaction
  stays open during HTTP calls; a lease that runs out (its worker died mid-delivery) lets
  another worker claim the row again, which may deliver it twice (cbmon counts duplicates);
* POSTs a Standard Webhooks signed body with a timeout; ``webhook-id`` is ``msg_<queue id>``,
  the same on every retry, so receivers can drop duplicates;
* records every attempt in ``callback_logs`` (with the receiver's origin as ``target``), every
  failure in ``callback_errors``, and either settles the row (``outcome`` delivered, or dead
  when its retries ran out, then notified on ``callback_failed``) or schedules the retry.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row, dict_row

from cbmon.db import sqlfiles
from cbmon.db.connect import connect, first_line
from cbmon.db.driver import Driver
from cbmon.delivery import signing
from cbmon.delivery.post import post_signed
from cbmon.delivery.retry import WORKER, RetryPolicy
from cbmon.errors import ConfigError, DatabaseError

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # the article's rule; a router policy may ask for fewer, never more
CHANNEL = "callback_queue"
FAILED_CHANNEL = "callback_failed"  # told when a row's retries are exhausted

COMPLETED = "COMPLETED"
FAILED = "FAILED"
TIMEOUT = "TIMEOUT"

_WAIT_SLICE = 0.2  # seconds between checks of the stop event while idle


def policy_from_json(value: Any, default: RetryPolicy) -> RetryPolicy:
    """The retry policy a router row asks for (``callback_router.retry_policy``: keys
    ``max_retries``, ``backoff`` exponential or fixed, ``backoff_seconds``,
    ``max_backoff_seconds``); keys it lacks or gets wrong keep ``default``'s. A receiver's
    ``Retry-After`` is honoured up to the row's cap, and never beyond the policy's own."""
    if not isinstance(value, dict):
        return default
    try:
        retries = int(value.get("max_retries", default.max_retries))
        fixed = str(value.get("backoff", "fixed" if default.factor == 1 else "")) == "fixed"
        base = float(value.get("backoff_seconds", default.initial))
        cap = max(0.0, float(value.get("max_backoff_seconds", default.cap)))
    except (TypeError, ValueError):
        log.warning("ignoring malformed retry_policy %r", value)
        return default
    return dataclasses.replace(
        default,
        max_retries=max(0, min(MAX_RETRIES, retries)),
        initial=max(0.0, base),
        factor=1.0 if fixed else 2.0,
        cap=cap,
        retry_after_cap=min(default.retry_after_cap, cap),
    )


@dataclass(frozen=True)
class WorkerOptions:
    default_url: str | None = None  # for event types whose router row names no target_url
    secret: str | None = None  # whsec_...; None sends unsigned (webhook-id still set)
    timeout: float = 5.0  # seconds for the whole exchange with the receiver
    poll_interval: float = 5.0  # longest sleep without a notification
    batch_size: int = 10
    retry: RetryPolicy = WORKER  # for event types without a router row
    channel: str = CHANNEL
    reconnect_delay: float = 2.0
    driver: Driver = "psycopg"  # or "gaussdb" (cbmon.db.driver)

    def check(self) -> None:
        if self.timeout <= 0 or self.poll_interval <= 0:
            raise ConfigError("worker timeout and poll interval must be positive")
        if self.batch_size < 1:
            raise ConfigError("worker batch size must be at least 1")
        if self.secret is not None:
            signing.check_secret(self.secret)

    @property
    def lease_seconds(self) -> float:
        """How long a claim hides a row from other workers: longer than the batch can take."""
        return self.batch_size * (self.timeout * 2 + 1) + 30


@dataclass(frozen=True)
class Claim:
    queue_id: int
    event_type: str
    payload: Any
    attempt: int  # 1-based, already counted in callback_queue.attempts
    created_at: datetime


@dataclass(frozen=True)
class Route:
    target_url: str | None
    policy: RetryPolicy


@dataclass(frozen=True)
class Outcome:
    status: str
    execution_ms: float | None  # None when no response came back
    http_status: int | None
    error: str | None
    retry_after: float | None = None
    target: str | None = None  # the receiver, as origin(): no path, no credentials

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED


@dataclass
class WorkerStats:
    """Counts since the worker started; written by the worker's thread only."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    exhausted: int = 0
    lost_leases: int = 0


def message_id(queue_id: int) -> str:
    """The webhook-id of a queue row: the receiver's idempotency key across retries."""
    return f"msg_{queue_id}"


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a receiver's URL: what per-target figures name, never a
    path, query or credential (which often carry a token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


def build_body(claim: Claim) -> str:
    """The JSON posted for a claim, in Standard Webhooks' {type, timestamp, data} shape.

    Built only from the row, so every retry sends the same bytes.
    """
    envelope = {
        "type": claim.event_type,
        "timestamp": claim.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": claim.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True)


class _Statements:
    """The worker's SQL (``cbmon/sql/worker/``) for one schema; names are quoted identifiers,
    values bound."""

    def __init__(self, schema: str) -> None:
        names = {
            "schema": sql.Identifier(schema),
            "queue": sql.Identifier(schema, "callback_queue"),
        }

        def load(name: str) -> sql.Composed:
            return sqlfiles.template(f"worker/{name}.sql").format(**names)

        self.schema = schema
        self.router_exists = load("router_exists")
        self.claim = load("claim")
        self.routes = load("routes")
        self.log = load("log")
        self.error = load("error")
        self.finish = load("finish")
        self.retry = load("retry")
        self.release = load("release")
        self.probe = load("probe")
        self.next_due = load("next_due")


@dataclass
class _Conns:
    work: psycopg.Connection[Any] | None = None
    listen: psycopg.Connection[Any] | None = None
    has_router: bool | None = None


_ASYNC_REFUSED = (psycopg.errors.FeatureNotSupported, psycopg.errors.InsufficientPrivilege)


class Worker:
    """Delivers queued callbacks until ``stop`` is set.

    Run it in a thread (``threading.Thread(target=worker.run)``) or call ``process_once()``
    from a loop of your own. Several workers, in threads or processes, share a queue safely.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        options: WorkerOptions | None = None,
        stop: threading.Event | None = None,
        name: str = "cbmon-worker",
    ) -> None:
        self.options = options or WorkerOptions()
        self.options.check()
        self.dsn = dsn
        self.schema = schema
        self.name = name
        self.stop = stop or threading.Event()
        self.ready = threading.Event()  # set once LISTEN is in place and run() is looping
        self.stats = WorkerStats()
        self._sql = _Statements(schema)
        self._conns = _Conns()
        # False once the server refused LISTEN (openGauss, GaussDB: SQLSTATE 0A000): from then
        # on the worker polls every poll_interval, which bounds the delivery delay.
        self.listening = True
        self._notifying = True  # False once the server refused pg_notify

    # -- connections -----------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(
            self.dsn,
            statement_timeout=30,
            application_name=self.name,
            read_only=False,
            using=self.options.driver,
        )

    def _work(self) -> psycopg.Connection[Any]:
        if self._conns.work is None or self._conns.work.closed:
            self._conns.work = self._connect()
            self._conns.has_router = None
        return self._conns.work

    def _listen(self) -> psycopg.Connection[Any] | None:
        """The connection listening on the channel; None where the server has no LISTEN."""
        if not self.listening:
            return None
        if self._conns.listen is None or self._conns.listen.closed:
            conn = self._connect()
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.options.channel)))
            except psycopg.errors.FeatureNotSupported as exc:
                conn.close()
                self.listening = False
                log.info(
                    "%s: the server does not support LISTEN (%s); polling every %gs instead",
                    self.name,
                    first_line(exc),
                    self.options.poll_interval,
                )
                return None
            self._conns.listen = conn
        return self._conns.listen

    def close(self) -> None:
        for conn in (self._conns.work, self._conns.listen):
            if conn is not None:
                conn.close()
        self._conns = _Conns()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_tables(self) -> None:
        """Fail with one clear line when the queue or log tables are missing or unreadable."""
        try:
            self._work().execute(self._sql.probe)
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise
            raise DatabaseError(
                f"worker cannot use the callback tables in schema {self.schema!r}: "
                f"{first_line(exc)}"
            ) from None

    # -- one pass --------------------------------------------------------------------------

    def process_once(self) -> int:
        """Claim one batch of due rows and deliver it; the number of rows claimed."""
        if self.stop.is_set():
            return 0
        conn = self._work()
        claims = self._claim(conn)
        routes = self._routes(conn, {c.event_type for c in claims})
        for index, claim in enumerate(claims):
            if self.stop.is_set():
                self._release(conn, claims[index:])
                break
            route = routes.get(claim.event_type, Route(None, self.options.retry))
            outcome = self.deliver(claim, route)
            self._record(conn, claim, route, outcome)
        return len(claims)

    def _claim(self, conn: psycopg.Connection[Any]) -> list[Claim]:
        with conn.cursor(row_factory=class_row(Claim)) as cur:
            rows = cur.execute(
                self._sql.claim,
                {"limit": self.options.batch_size, "lease": self.options.lease_seconds},
            ).fetchall()
        claims = sorted(rows, key=lambda c: c.queue_id)
        self.stats.claimed += len(claims)
        return claims

    def _routes(self, conn: psycopg.Connection[Any], event_types: set[str]) -> dict[str, Route]:
        if not event_types:
            return {}
        if self._conns.has_router is None:
            # the worker also serves the foundation tables alone, without the mechanism
            self._conns.has_router = (
                conn.execute(self._sql.router_exists, {"schema": self._sql.schema}).fetchone()
                is not None
            )
        if not self._conns.has_router:
            return {}
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(self._sql.routes, (sorted(event_types),)).fetchall()
        return {
            str(row["event_type"]): Route(
                row["target_url"], policy_from_json(row["retry_policy"], self.options.retry)
            )
            for row in rows
        }

    def deliver(self, claim: Claim, route: Route) -> Outcome:
        """POST one claim to its receiver; never raises for HTTP trouble."""
        url = route.target_url or self.options.default_url
        if not url:
            return Outcome(FAILED, None, None, f"no receiver URL for {claim.event_type}")
        return dataclasses.replace(self._post(claim, url), target=origin(url))

    def _post(self, claim: Claim, url: str) -> Outcome:
        attempt = post_signed(
            url,
            build_body(claim).encode("utf-8"),
            msg_id=message_id(claim.queue_id),
            secret=self.options.secret,
            timeout=self.options.timeout,
            user_agent=self.name,
        )
        elapsed_ms = attempt.elapsed * 1000.0 if attempt.status is not None else None
        if attempt.delivered:
            return Outcome(COMPLETED, elapsed_ms, attempt.status, None)
        if attempt.timed_out:
            return Outcome(TIMEOUT, None, None, f"no response within {self.options.timeout:g} s")
        if attempt.status is None:
            return Outcome(FAILED, None, None, f"request failed: {attempt.error}")
        return Outcome(FAILED, elapsed_ms, attempt.status, attempt.error, attempt.retry_after)

    def _record(
        self, conn: psycopg.Connection[Any], claim: Claim, route: Route, outcome: Outcome
    ) -> None:
        done = outcome.ok or claim.attempt > route.policy.max_retries
        key = {"id": claim.queue_id, "attempt": claim.attempt, "error": outcome.error}
        with conn.transaction():
            conn.execute(
                self._sql.log,
                (
                    claim.event_type,
                    outcome.status,
                    outcome.execution_ms,
                    claim.queue_id,
                    claim.attempt,
                    outcome.http_status,
                    outcome.target,
                ),
            )
            if not outcome.ok:
                conn.execute(
                    self._sql.error,
                    (claim.event_type, outcome.error, claim.queue_id, claim.attempt),
                )
            if done:
                # Out of retries, a failure is a dead letter, kept with its outcome; still
                # notified below, as the article's flow asks.
                result = "delivered" if outcome.ok else "dead"
                settled = conn.execute(self._sql.finish, {**key, "outcome": result}).rowcount
            else:
                delay = route.policy.delay(claim.attempt, outcome.retry_after)
                settled = conn.execute(self._sql.retry, {**key, "delay": delay}).rowcount
            if done and not outcome.ok and settled:
                # the article's "retries exhausted: send an alert notification"
                note = {
                    "queue_id": claim.queue_id,
                    "event_type": claim.event_type,
                    "attempts": claim.attempt,
                    "error": outcome.error,
                }
                self._notify_failed(conn, note)
        self._count(claim, outcome, done, settled)

    def _notify_failed(self, conn: psycopg.Connection[Any], note: dict[str, Any]) -> None:
        """Tell listeners a row gave up, where the server allows NOTIFY (in a savepoint, so a
        refusal leaves the attempt's record intact)."""
        if not self._notifying:
            return
        try:
            with conn.transaction():
                conn.execute("SELECT pg_notify(%s, %s)", (FAILED_CHANNEL, json.dumps(note)))
        except _ASYNC_REFUSED as exc:
            self._notifying = False
            log.info(
                "%s: the server refuses pg_notify (%s); exhausted callbacks are logged only",
                self.name,
                first_line(exc),
            )

    def _count(self, claim: Claim, outcome: Outcome, done: bool, settled: int) -> None:
        if outcome.ok:
            self.stats.completed += 1
        else:
            self.stats.failed += 1
            if done and settled:
                self.stats.exhausted += 1
                log.warning(
                    "callback %d (%s) gave up after %d attempts: %s",
                    claim.queue_id,
                    claim.event_type,
                    claim.attempt,
                    outcome.error,
                )
        if not settled:
            # the lease ran out and another worker took the row over; the attempt is logged
            self.stats.lost_leases += 1
            log.warning("lost the lease on callback %d while delivering it", claim.queue_id)

    def _release(self, conn: psycopg.Connection[Any], claims: list[Claim]) -> None:
        """Hand back claims not yet attempted, so another worker need not wait for the lease."""
        with conn.transaction():
            for claim in claims:
                conn.execute(self._sql.release, {"id": claim.queue_id, "attempt": claim.attempt})

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Deliver until ``stop`` is set. Connection trouble after start-up is retried."""
        try:
            self._listen()  # LISTEN before the first pass, so no insert falls between the two
            self.check_tables()
            self.ready.set()
            while not self.stop.is_set():
                try:
                    self._listen()  # back in place first after a reconnect
                    if self.process_once():
                        continue
                    self._wait(self._idle_seconds())
                except (psycopg.OperationalError, DatabaseError) as exc:
                    log.warning(
                        "%s: database trouble, reconnecting: %s", self.name, first_line(exc)
                    )
                    self._drop_connections()
                    self.stop.wait(self.options.reconnect_delay)
        finally:
            self.close()

    def _drop_connections(self) -> None:
        for conn in (self._conns.work, self._conns.listen):
            if conn is not None:
                conn.close()
        self._conns = _Conns()

    def _idle_seconds(self) -> float:
        """Until the next poll, or sooner when a retry falls due before it."""
        row = self._work().execute(self._sql.next_due).fetchone()
        wait = self.options.poll_interval
        if row is not None and row[0] is not None:
            wait = min(wait, max(0.0, float(row[0])))
        return wait

    def _wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, returning early on a notification or on stop."""
        deadline = time.monotonic() + seconds
        listen = self._listen()
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if listen is None:
                self.stop.wait(min(remaining, _WAIT_SLICE))
                continue
            # notifies() hands over everything already received, so the backlog of
            # notifications collected while busy is drained in one go
            for _ in listen.notifies(timeout=min(remaining, _WAIT_SLICE), stop_after=1):
                return
