"""The demo's traffic: orders placed and shipped through the mechanism's tables.

Nothing is queued by hand. Inserting an order fires the router trigger, which queues an
``order_created`` callback; shipping one fires ``order_shipped``. The rates follow the
scenario; a surge is placed with set-based inserts, so thousands of orders a second cost a
few statements.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from cbmon.db.connect import connect, first_line
from cbmon.demo.faults import Faults
from cbmon.demo.scenario import Conditions
from cbmon.errors import DatabaseError

log = logging.getLogger(__name__)

TICK = 0.25  # seconds between batches
NAME = "cbmon demo traffic"
MAX_BATCH = 2000  # orders in one statement, so a long pause does not become one huge insert

PLACE = """
WITH placed AS (
    INSERT INTO {orders} (customer, amount)
    SELECT 'customer-' || (1 + floor(random() * 500))::int,
           round((5 + random() * 195)::numeric, 2)
    FROM generate_series(1, %(n)s)
    RETURNING id
)
INSERT INTO {items} (order_id, item_sku, item_weight)
SELECT id,
       'SKU-' || lpad((1 + floor(random() * 300))::int::text, 4, '0'),
       round((0.1 + random() * 4.9)::numeric, 3)
-- one to three items per order; generate_series in the select list, not LATERAL (openGauss)
FROM (SELECT id, generate_series(1, 1 + (id %% 3)::int) AS item FROM placed) AS items
"""

SHIP = """
UPDATE {orders} SET status = 'SHIPPED'
WHERE id IN (
    SELECT id FROM {orders} WHERE status = 'NEW' ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED
)
"""


class Traffic:
    """Places and ships orders until ``stop`` is set. Run :meth:`run` in a thread."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        conditions: Callable[[float], Conditions],
        stop: threading.Event,
        *,
        job: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``job``: the scheduler's job of the reference mechanism, where pg_cron runs it."""
        self.dsn = dsn
        self.conditions = conditions
        self.stop = stop
        self.placed = 0
        self.shipped = 0
        self.failure: str | None = None  # set when a statement failed for good; the run ends
        self._clock = clock
        s = sql.Identifier(schema)
        names = {
            "orders": sql.SQL("{}.orders").format(s),
            "items": sql.SQL("{}.order_items").format(s),
        }
        self.faults = Faults(dsn, schema, job)
        self._place = sql.SQL(PLACE).format(**names)
        self._ship = sql.SQL(SHIP).format(**names)

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        started = last = self._clock()
        owed_orders = owed_ships = 0.0
        try:
            while not self.stop.is_set():
                now = self._clock()
                conditions = self.conditions(now - started)
                owed_orders += conditions.orders_per_second * (now - last)
                owed_ships += conditions.ships_per_second * (now - last)
                last = now
                orders, ships = min(int(owed_orders), MAX_BATCH), min(int(owed_ships), MAX_BATCH)
                try:
                    if conn is None or conn.closed:
                        conn = connect(
                            self.dsn, statement_timeout=30, application_name=NAME, read_only=False
                        )
                    self.faults.switch(conn, conditions.phase.fault)
                    self._batch(conn, orders, ships)
                except psycopg.Error as exc:
                    if not isinstance(exc, psycopg.OperationalError):
                        self.failure = first_line(exc)  # a broken statement: retrying won't help
                        return
                    log.warning("demo traffic: %s; trying again", first_line(exc))
                    if conn is not None:
                        conn.close()
                    conn = None
                    self.stop.wait(1.0)
                    continue
                except DatabaseError as exc:  # cannot connect (the message is one line)
                    log.warning("demo traffic: %s; trying again", exc)
                    if conn is not None:
                        conn.close()
                    conn = None
                    self.stop.wait(1.0)
                    continue
                owed_orders -= orders
                owed_ships -= ships
                self.stop.wait(TICK)
        finally:
            if conn is not None:
                try:
                    self.faults.switch(conn, "")  # the demo leaves the mechanism repaired
                except psycopg.Error as exc:
                    log.warning("demo traffic: %s", first_line(exc))
                conn.close()
            self.faults.close()

    def _batch(self, conn: psycopg.Connection[Any], orders: int, ships: int) -> None:
        if orders:
            conn.execute(self._place, {"n": orders})
            self.placed += orders
        if ships:
            cursor = conn.execute(self._ship, {"n": ships})
            self.shipped += max(0, cursor.rowcount)
