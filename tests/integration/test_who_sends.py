"""Every replica says whether it sends the webhook notifications and, if not, which replica
does: the lock holder's session carries its name, as far as PostgreSQL keeps one."""

from __future__ import annotations

import logging

import pytest

from cbmon.delivery.leader import Leadership, lock_key
from cbmon.delivery.signing import new_secret
from cbmon.sidecar.service import Service
from tests.conftest import PgSchema, Replicated
from tests.support.cluster import Pgbouncer
from tests.support.proxy import freezable_proxy


def leadership(pg: PgSchema, cluster: str, replica: str) -> Leadership:
    key = lock_key("secret", cluster, pg.name)
    return Leadership(pg.dsn, key, cluster=cluster, alive_timeout=30, replica=replica)


def backend(pg: PgSchema, application_name: str) -> int:
    row = pg.conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]
    ).fetchone()
    assert row is not None, application_name
    return int(row[0])


def test_a_standby_names_the_replica_that_holds_the_lock(pg: PgSchema) -> None:
    first = leadership(pg, "shop", "cbmon-a:9863")
    second = leadership(pg, "shop", "cbmon-b:9863")
    try:
        assert first.check() is True
        assert second.check() is False
        pid = backend(pg, "cbmon leader shop cbmon-a:9863")
        assert (second.holder, second.foreign_holder) == (f"cbmon-a:9863 (pid {pid})", None)
        first.close()
        assert second.check() is True
        assert second.holder is None
        assert first.check() is False
        assert first.holder == f"cbmon-b:9863 (pid {backend(pg, second.application_name)})"
    finally:
        first.close()
        second.close()


def test_a_cluster_name_as_long_as_allowed_is_still_recognised(pg: PgSchema) -> None:
    cluster = "c" * 63  # the longest alerting.cluster: the replica's name is cut off
    first = leadership(pg, cluster, "cbmon-a:9863")
    second = leadership(pg, cluster, "cbmon-b:9863")
    try:
        assert first.check() is True
        assert len(first.application_name.encode()) == 63
        assert second.check() is False
        assert second.foreign_holder is None  # a replica of the cluster, not a squatter
        assert second.holder is not None
        assert second.holder.startswith("a replica (pid ")
    finally:
        first.close()
        second.close()


def test_each_replica_says_at_start_who_sends(
    pg: PgSchema, caplog: pytest.LogCaptureFixture
) -> None:
    def replica(port: int) -> Service:
        # A path no log line holds: paths of webhook URLs are masked as secrets in logs.
        hooks = {"webhooks": ["http://127.0.0.1:9/t0k3n-4f2a"]}
        return Service(pg.config(listen=f"127.0.0.1:{port}", alerting=hooks))

    sender, standby = replica(19001), replica(19002)
    try:
        with caplog.at_level(logging.INFO, logger="cbmon.sidecar.service"):
            sender.poll_once()
            standby.poll_once()
            standby.poll_once()  # said once, not at every poll
        pid = backend(pg, sender.leadership.application_name)
        said = [r.getMessage() for r in caplog.records if "sends" in r.getMessage()]
        assert said == [
            "this replica sends the webhook notifications (cluster cbmon)",
            f"replica 127.0.0.1:19001 (pid {pid}) sends the webhook notifications of cluster "
            "cbmon; this one stands by",
        ]
        assert standby.status().leader.sender == f"127.0.0.1:19001 (pid {pid})"
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="cbmon.sidecar.service"):
            sender.close()  # the sender goes away: the standby takes over and says so
            standby.poll_once()
        assert [r.getMessage() for r in caplog.records if "sends" in r.getMessage()] == [
            "this replica sends the webhook notifications (cluster cbmon)"
        ]
    finally:
        sender.close()
        standby.close()


def test_replicas_reaching_the_database_by_different_addresses_elect_one_sender(
    pg: PgSchema,
) -> None:
    """The key comes from the database as the server names it, not from the address in each
    replica's DSN: one replica through a proxy, one direct, still one sender."""
    with freezable_proxy() as proxy:
        via_proxy = pg.dsn.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        assert via_proxy != pg.dsn
        replicas = [
            Leadership(
                dsn,
                cluster="shop",
                secret="s",
                watched=(pg.name, "callback_logs"),
                alive_timeout=30,
                replica=name,
            )
            for dsn, name in ((pg.dsn, "direct:1"), (via_proxy, "proxied:2"))
        ]
        try:
            assert [replica.check() for replica in replicas] == [True, False]
            assert replicas[0].key == replicas[1].key
        finally:
            for replica in replicas:
                replica.close()


def test_clusters_watching_different_tables_each_have_a_sender(pg: PgSchema) -> None:
    """Two clusters of one name and secret watching two log tables of one database are two
    elections: the watched table is part of the lock's key."""
    pg.conn.execute("CREATE TABLE other_logs (LIKE callback_logs)")

    def replica(table: str, name: str) -> Leadership:
        watched = (pg.name, table)
        return Leadership(
            pg.dsn, cluster="shop", secret="s", watched=watched, alive_timeout=30, replica=name
        )

    replicas = [
        replica("callback_logs", "a:1"),
        replica("other_logs", "b:2"),
        replica("callback_logs", "c:3"),
    ]
    try:
        assert [r.check() for r in replicas] == [True, True, False]
        assert replicas[0].key != replicas[1].key
        assert replicas[2].holder is not None
        assert replicas[2].holder.startswith("a:1")
    finally:
        for r in replicas:
            r.close()


def test_the_service_keys_its_lock_by_the_logs_table_it_reads(pg: PgSchema) -> None:
    secret = new_secret()
    config = pg.config(
        webhook_secret=secret, alerting={"webhooks": ["http://127.0.0.1:9/t0k3n-4f2a"]}
    )
    service = Service(config)
    try:
        assert service.leadership.check() is True
        row = pg.conn.execute("SELECT current_database()").fetchone()
        assert row is not None
        cluster = config.file.alerting.cluster
        expected = lock_key(secret, cluster, str(row[0]), pg.name, "callback_logs")
        assert service.leadership.key == expected
    finally:
        service.leadership.close()


def _replica(pg: PgSchema, dsn: str, port: int, primary_dsn: str | None = None) -> Service:
    hooks = {"webhooks": ["http://127.0.0.1:9/t0k3n-4f2a"]}
    database = {} if primary_dsn is None else {"primary_dsn": primary_dsn}
    config = pg.config(dsn=dsn, listen=f"127.0.0.1:{port}", alerting=hooks, database=database)
    return Service(config)


@pytest.mark.standby
def test_a_replica_on_the_primary_and_one_on_its_standby_elect_one_sender(
    replicated: Replicated,
) -> None:
    """Advisory locks are per server: a lock taken on the standby would exclude nobody."""
    pg = replicated.pg
    on_primary = _replica(pg, replicated.primary.dsn(), 19011)
    on_standby = _replica(pg, replicated.standby_dsn(), 19012, primary_dsn=replicated.primary.dsn())
    try:
        for _ in range(3):
            on_primary.poll_once()
            on_standby.poll_once()
            assert (on_primary.dispatcher.is_leader, on_standby.dispatcher.is_leader) == (
                True,
                False,
            )
        assert on_standby.status().leader.sender is not None
        on_primary.close()  # the sender goes: the standby's replica takes over, on the primary
        on_standby.poll_once()
        assert on_standby.dispatcher.is_leader
    finally:
        on_primary.close()
        on_standby.close()


@pytest.mark.standby
def test_a_replica_on_a_standby_without_the_primary_never_sends_and_says_why(
    replicated: Replicated, caplog: pytest.LogCaptureFixture
) -> None:
    pg = replicated.pg
    alone = _replica(pg, replicated.standby_dsn(), 19013)
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                alone.poll_once()
        assert not alone.dispatcher.is_leader
        refusal = alone.status().leader.refusal
        assert refusal is not None
        assert "hot standby" in refusal
        said = [r.getMessage() for r in caplog.records if "never sends" in r.getMessage()]
        assert len(said) == 1  # once, not at every poll
        assert "database.primary_dsn" in said[0]
        assert alone.status().database.fence == "none"
        assert not alone.status().database.exact
    finally:
        alone.close()


@pytest.mark.pooler
def test_through_a_pooler_in_transaction_mode_no_replica_leads_on_it(
    replicated: Replicated, poolers: dict[str, Pgbouncer]
) -> None:
    """A session-level lock taken through transaction pooling stays behind on a backend any
    client may get next: such a replica refuses, and leads through database.primary_dsn."""
    pg = replicated.pg
    pooled = poolers["transaction"].dsn()
    refusing = _replica(pg, pooled, 19014)
    direct = _replica(pg, pooled, 19015, primary_dsn=replicated.primary.dsn())
    try:
        for _ in range(3):
            refusing.poll_once()
            direct.poll_once()
        assert (refusing.dispatcher.is_leader, direct.dispatcher.is_leader) == (False, True)
        assert "transaction mode" in (refusing.status().leader.refusal or "")
        assert direct.status().database.pooler == "transaction"
        assert direct.status().database.up
    finally:
        refusing.close()
        direct.close()


@pytest.mark.pooler
def test_through_a_pooler_in_session_mode_replicas_elect_one_sender(
    replicated: Replicated, poolers: dict[str, Pgbouncer]
) -> None:
    pg = replicated.pg
    pooled = poolers["session"].dsn()
    replicas = [_replica(pg, pooled, port) for port in (19016, 19017)]
    try:
        for _ in range(3):
            for replica in replicas:
                replica.poll_once()
        assert sorted(r.dispatcher.is_leader for r in replicas) == [False, True]
        assert all(r.status().leader.refusal is None for r in replicas)
    finally:
        for replica in replicas:
            replica.close()
