"""The reference callback mechanism (sql/mechanism/) on a real PostgreSQL."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from cbmon.delivery import signing
from cbmon.reference import mechanism, schema
from tests.conftest import PgSchema

Roles = Callable[..., str]


@pytest.fixture
def roles(pg: PgSchema) -> Iterator[Roles]:
    """Makes roles with names unique to this run (roles are cluster-wide); drops them after."""
    made: list[str] = []

    def make(prefix: str = "cbmon_t", *, login: bool = True, create: bool = True) -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        made.append(name)
        if create:
            opt = sql.SQL("LOGIN" if login else "NOLOGIN")
            pg.conn.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(name), opt))
        return name

    yield make
    for name in reversed(made):
        ident = sql.Identifier(name)
        exists = pg.conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        if exists:
            pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            pg.conn.execute(sql.SQL("DROP ROLE {}").format(ident))


@pytest.fixture
def mech(pg: PgSchema, roles: Roles) -> mechanism.Installed:
    executor = roles("cbmon_exec", create=False)
    return mechanism.apply(pg.dsn, schema=pg.name, executor_role=executor)


class _Listener:
    """A session listening on ``channel``."""

    def __init__(self, pg: PgSchema, channel: str) -> None:
        self.pg = pg
        self.channel = channel
        self.conn = pg.connect()
        self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def received(self, sender_pid: int) -> list[str]:
        """Payloads ``sender_pid`` committed so far (other tests may use the channel too).

        Notifications arrive in commit order, so once a marker sent now has arrived, every
        one committed before it has: no guessed wait, before or after a commit.
        """
        marker = f"marker {secrets.token_hex(8)}"
        with self.pg.connect() as conn:
            conn.execute(sql.SQL("NOTIFY {}, {}").format(sql.Identifier(self.channel), marker))
        payloads: list[str] = []
        for note in self.conn.notifies(timeout=10):
            if note.payload == marker:
                return payloads
            if note.pid == sender_pid:
                payloads.append(note.payload)
        raise AssertionError(f"the marker sent on {self.channel} never arrived")

    def close(self) -> None:
        self.conn.close()


def _new_order(conn: psycopg.Connection[Any], amount: str = "10.00") -> int:
    row = conn.execute(
        "INSERT INTO orders (customer, amount) VALUES ('acme', %s) RETURNING id", (amount,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def _queued(conn: psycopg.Connection[Any]) -> list[tuple[str, Any]]:
    return [
        (str(r[0]), r[1])
        for r in conn.execute("SELECT event_type, payload FROM callback_queue ORDER BY id")
    ]


def test_apply_twice_keeps_router_changes(pg: PgSchema, mech: mechanism.Installed) -> None:
    pg.conn.execute(
        "UPDATE callback_router SET target_url = 'http://example.test/hook'"
        " WHERE event_type = 'order_created'"
    )
    again = mechanism.apply(pg.dsn, schema=pg.name, executor_role=mech.executor_role)
    assert again == mech
    row = pg.conn.execute(
        "SELECT target_url FROM callback_router WHERE event_type = 'order_created'"
    ).fetchone()
    assert row == ("http://example.test/hook",)


def test_audit_trigger_records_every_change(pg: PgSchema, mech: mechanism.Installed) -> None:
    order = _new_order(pg.conn)
    pg.conn.execute("UPDATE orders SET amount = 12 WHERE id = %s", (order,))
    pg.conn.execute("DELETE FROM orders WHERE id = %s", (order,))
    rows = pg.conn.execute(
        "SELECT operation, table_name, user_name, exec_time IS NOT NULL FROM audit_log ORDER BY id"
    ).fetchall()
    user = pg.conn.execute("SELECT current_user").fetchone()
    assert user is not None
    assert rows == [(op, "orders", user[0], True) for op in ("INSERT", "UPDATE", "DELETE")]


def test_order_created_notifies_on_commit(pg: PgSchema, mech: mechanism.Installed) -> None:
    listener = _Listener(pg, "order_created")
    sender = pg.connect(autocommit=False)
    try:
        order = _new_order(sender, "99.50")
        assert listener.received(sender.info.backend_pid) == []  # not before commit
        sender.commit()
        payloads = listener.received(sender.info.backend_pid)
    finally:
        sender.close()
        listener.close()
    assert [json.loads(p) for p in payloads] == [{"order_id": order, "amount": 99.5}]


def _ship(conn: psycopg.Connection[Any], order: int, status: str = "SHIPPED") -> None:
    conn.execute("UPDATE orders SET status = %s WHERE id = %s", (status, order))


def test_shipping_notifies_supply_chain(pg: PgSchema, mech: mechanism.Installed) -> None:
    order = _new_order(pg.conn)
    pg.conn.execute(
        "INSERT INTO order_items (order_id, item_sku, item_weight)"
        " VALUES (%s, 'B-2', 1.25), (%s, 'A-1', 2), (%s, 'B-2', 0.5)",
        (order, order, order),
    )
    listener = _Listener(pg, "supply_chain_channel")
    try:
        _ship(pg.conn, order, "PACKED")  # another status: nothing
        _ship(pg.conn, order)
        _ship(pg.conn, order)  # already shipped: not again
        payloads = listener.received(pg.conn.info.backend_pid)
    finally:
        listener.close()
    assert [json.loads(p) for p in payloads] == [
        {
            "order_id": order,
            "sku_list": ["A-1", "B-2"],
            "sku_count": 2,
            "sku_list_truncated": False,
            "total_weight": 3.75,
        }
    ]


def test_huge_order_stays_under_notify_limit(pg: PgSchema, mech: mechanism.Installed) -> None:
    order = _new_order(pg.conn)
    # 3000 SKUs of ~50 bytes: ~150 kB of list, far past NOTIFY's 8000-byte payload limit
    pg.conn.execute(
        "INSERT INTO order_items (order_id, item_sku, item_weight)"
        " SELECT %s, 'SKU-' || lpad(g::text, 5, '0') || '-' || repeat('x', 40), 0.5"
        " FROM generate_series(1, 3000) g",
        (order,),
    )
    listener = _Listener(pg, "supply_chain_channel")
    try:
        _ship(pg.conn, order)
        payloads = listener.received(pg.conn.info.backend_pid)
    finally:
        listener.close()
    assert len(payloads) == 1
    assert len(payloads[0].encode()) < 8000
    body = json.loads(payloads[0])
    assert body["sku_list_truncated"] is True
    assert body["sku_count"] == 3000
    assert body["total_weight"] == 1500
    assert 50 < len(body["sku_list"]) < 3000
    assert body["sku_list"][0].startswith("SKU-00001-")
    # the queued event has no such limit and carries every SKU
    queued = dict(_queued(pg.conn))["order_shipped"]
    assert len(queued["sku_list"]) == 3000
    assert queued["sku_list_truncated"] is False


def test_router_decides_what_is_queued(pg: PgSchema, mech: mechanism.Installed) -> None:
    order = _new_order(pg.conn, "5.00")
    _ship(pg.conn, order)
    assert _queued(pg.conn) == [
        ("order_created", {"order_id": order, "amount": 5, "customer": "acme"}),
        (
            "order_shipped",
            {
                "order_id": order,
                "sku_list": [],
                "sku_count": 0,
                "sku_list_truncated": False,
                "total_weight": 0,
            },
        ),
    ]
    pg.conn.execute("DELETE FROM callback_queue")
    # a handler of the user's own; NULL from a handler means "do not queue"
    pg.conn.execute(
        "CREATE FUNCTION big_orders_only(r jsonb) RETURNS jsonb LANGUAGE sql AS"
        " $$ SELECT CASE WHEN (r->>'amount')::numeric >= 100"
        " THEN jsonb_build_object('big', r->'id') END $$"
    )
    pg.conn.execute(
        "UPDATE callback_router SET handler_function = 'big_orders_only'"
        " WHERE event_type = 'order_created'"
    )
    pg.conn.execute("UPDATE callback_router SET enabled = false WHERE event_type = 'order_shipped'")
    _new_order(pg.conn, "5.00")
    big = _new_order(pg.conn, "500.00")
    _ship(pg.conn, big)
    assert _queued(pg.conn) == [("order_created", {"big": big})]


def test_router_handler_name_cannot_inject(pg: PgSchema, mech: mechanism.Installed) -> None:
    pg.conn.execute(
        "UPDATE callback_router SET handler_function = 'abs(1)); DROP TABLE orders; --'"
        " WHERE event_type = 'order_created'"
    )
    with pytest.raises(errors.UndefinedFunction):
        _new_order(pg.conn)
    assert pg.conn.execute("SELECT to_regclass('orders') IS NOT NULL").fetchone() == (True,)


def test_queue_insert_wakes_workers(pg: PgSchema, mech: mechanism.Installed) -> None:
    listener = _Listener(pg, "callback_queue")
    try:
        _new_order(pg.conn)
        payloads = listener.received(pg.conn.info.backend_pid)
    finally:
        listener.close()
    assert payloads == ["order_created"]


def _bucket(pg: PgSchema, bucket: str, tokens: int, capacity: int, rate: float) -> None:
    pg.conn.execute(
        "INSERT INTO callback_limits (bucket_id, tokens, capacity, refill_per_second, last_refill)"
        " VALUES (%s, %s, %s, %s, clock_timestamp())",
        (bucket, tokens, capacity, rate),
    )


def test_token_bucket_drops_rows_over_the_limit(pg: PgSchema, mech: mechanism.Installed) -> None:
    _bucket(pg, "order_created", tokens=5, capacity=5, rate=0)
    notices: list[str] = []
    pg.conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    for _ in range(8):
        _new_order(pg.conn)
    # the order itself is never refused, only its callback
    assert pg.conn.execute("SELECT count(*) FROM orders").fetchone() == (8,)
    assert len(_queued(pg.conn)) == 5
    assert notices.count("Rate limit exceeded") == 3
    row = pg.conn.execute(
        "SELECT tokens, dropped FROM callback_limits WHERE bucket_id = 'order_created'"
    ).fetchone()
    assert row == (0, 3)


def test_token_bucket_refills_up_to_capacity(pg: PgSchema, mech: mechanism.Installed) -> None:
    # a 'default' bucket covers event types without a bucket of their own
    _bucket(pg, "default", tokens=0, capacity=3, rate=0.01)  # a token every 100 s
    insert = (
        "INSERT INTO callback_queue (event_type, payload)"
        " SELECT 'misc', jsonb_build_object('n', g) FROM generate_series(1, %s) g"
    )
    pg.conn.execute(insert, (5,))
    assert len(_queued(pg.conn)) == 0
    # As if the last refill were 1000 s ago: 10 tokens earned, capped at 3.
    pg.conn.execute("UPDATE callback_limits SET last_refill = last_refill - interval '1000 s'")
    pg.conn.execute(insert, (5,))
    assert len(_queued(pg.conn)) == 3


def _as(pg: PgSchema, role: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(pg.dsn, user=role, autocommit=True)
    conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg.name)))
    return conn


def _grant(pg: PgSchema, granted: str, to: str) -> None:
    pg.conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(granted), sql.Identifier(to)))


def test_executor_role_can_only_queue(
    pg: PgSchema, mech: mechanism.Installed, roles: Roles
) -> None:
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        psycopg.connect(pg.dsn, user=mech.executor_role)
    app, outsider = roles("cbmon_app"), roles("cbmon_out")
    _grant(pg, mech.executor_role, app)
    with _as(pg, app) as conn:
        row = conn.execute("SELECT handle_callback('order_created', '{\"id\": 7}')").fetchone()
        assert row is not None
        assert row[0] is not None
        with pytest.raises(errors.InvalidParameterValue, match="no enabled route"):
            conn.execute("SELECT handle_callback('nope', '{}')")
        for statement in (
            "SELECT * FROM callback_queue",
            "INSERT INTO callback_queue (event_type) VALUES ('x')",
            "UPDATE callback_router SET target_url = 'http://evil.test'",
            "SELECT * FROM orders",
            "SELECT enqueue_callback('order_created', '{}')",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
    # even with the schema visible, EXECUTE is the executor's alone (revoked from PUBLIC)
    pg.conn.execute(
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(pg.name), sql.Identifier(outsider)
        )
    )
    with _as(pg, outsider) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT handle_callback('order_created', '{}')")
    assert _queued(pg.conn) == [
        ("order_created", {"order_id": 7, "amount": None, "customer": None})
    ]


def test_security_definer_ignores_callers_search_path(
    pg: PgSchema, mech: mechanism.Installed, roles: Roles
) -> None:
    app = roles("cbmon_app")
    _grant(pg, mech.executor_role, app)
    own = sql.Identifier(f"{app}_own")
    pg.conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(own, sql.Identifier(app)))
    try:
        with _as(pg, app) as conn:
            # decoys the definer function would pick up if it trusted the caller's path
            conn.execute(sql.SQL("CREATE TABLE {}.callback_queue (LIKE pg_class)").format(own))
            conn.execute(
                sql.SQL(
                    "CREATE FUNCTION {}.enqueue_callback(text, jsonb) RETURNS bigint"
                    " LANGUAGE sql AS $$ SELECT -1::bigint $$"
                ).format(own)
            )
            conn.execute(sql.SQL("SET search_path = {}, {}").format(own, sql.Identifier(pg.name)))
            row = conn.execute("SELECT handle_callback('order_created', '{\"id\": 1}')").fetchone()
        assert row is not None
        assert row[0] > 0
        assert len(_queued(pg.conn)) == 1
    finally:
        pg.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(own))
    unpinned = pg.conn.execute(
        "SELECT proname FROM pg_proc WHERE pronamespace = %s::regnamespace"
        " AND prolang <> (SELECT oid FROM pg_language WHERE lanname = 'c')"
        " AND NOT coalesce(proconfig, '{}') @> ARRAY[%s]",
        (pg.name, f"search_path={pg.name}, pg_temp"),
    ).fetchall()
    assert unpinned == []


def test_cbmon_role_reads_and_never_writes(pg: PgSchema, roles: Roles) -> None:
    reader = roles("cbmon_ro", create=False)
    mechanism.apply(pg.dsn, schema=pg.name, executor_role=roles("cbmon_exec", create=False))
    pg.conn.execute(schema.roles_sql(reader, pg.name))
    pg.conn.execute("INSERT INTO callback_logs (event_type, status) VALUES ('e', 'COMPLETED')")
    with _as(pg, reader) as conn:
        assert conn.execute("SELECT count(*) FROM callback_logs").fetchone() == (1,)
        with pytest.raises(errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO callback_logs (event_type, status) VALUES ('e', 'X')")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM orders")


def test_callback_metrics_view(pg: PgSchema, mech: mechanism.Installed) -> None:
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time) VALUES"
        " ('a', 'COMPLETED', 10), ('a', 'FAILED', 30), ('b', 'COMPLETED', 5)"
    )
    pg.conn.execute("INSERT INTO callback_errors (event_type, error_message) VALUES ('a', 'boom')")
    rows = pg.conn.execute(
        "SELECT event_type, total_calls, avg_time, max_time, errors"
        " FROM callback_metrics ORDER BY event_type"
    ).fetchall()
    assert rows == [("a", 2, 20.0, 30.0, 1), ("b", 1, 5.0, 5.0, 0)]


# -- signed callbacks (pgcrypto) --------------------------------------------------------------


@pytest.fixture
def signed(mech: mechanism.Installed) -> mechanism.Installed:
    if not mech.signatures:
        pytest.skip("pgcrypto is not available on this server: signed callbacks not installed")
    return mech


def test_sql_signature_matches_the_standard_webhooks_vector(
    pg: PgSchema, signed: mechanism.Installed
) -> None:
    # the example from the Standard Webhooks specification
    row = pg.conn.execute(
        "SELECT webhook_signature(%s, %s, %s, %s)",
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            '{"test": 2432232314}',
        ),
    ).fetchone()
    assert row == ("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",)


def test_signed_callback_is_verified_in_sql(
    pg: PgSchema, signed: mechanism.Installed, roles: Roles
) -> None:
    secret = signing.new_secret()
    pg.conn.execute("INSERT INTO callback_secrets VALUES ('default', %s)", (secret,))
    app = roles("cbmon_app")
    _grant(pg, signed.executor_role, app)
    body = '{"id": 42, "amount": 3.5}'
    headers = signing.sign(secret, "msg_abc", None, body)
    call = "SELECT handle_signed_callback('order_created', %s, %s, %s, %s)"

    def args(body: str = body, **over: str) -> tuple[str, int, str, str]:
        h = {**headers, **over}
        return (h["webhook-id"], int(h["webhook-timestamp"]), body, h["webhook-signature"])

    with _as(pg, app) as conn:
        first = conn.execute(call, args()).fetchone()
        assert first is not None
        assert first[0] is not None
        assert conn.execute(call, args()).fetchone() == (None,)  # redelivery: not queued again
        stale = signing.sign(secret, "msg_old", int(time.time()) - 600, body)
        for bad in (
            args('{"id": 42, "amount": 350}'),
            args(**{"webhook-signature": "v1,AAAA" + headers["webhook-signature"][7:]}),
            args(**{"webhook-id": "msg_other"}),
            args(**stale),
        ):
            with pytest.raises(errors.InvalidAuthorizationSpecification, match="Invalid signature"):
                conn.execute(call, bad)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM callback_secrets")
    assert _queued(pg.conn) == [
        ("order_created", {"order_id": 42, "amount": 3.5, "customer": None})
    ]
