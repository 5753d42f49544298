"""How a replica names itself on its leader lock session: what PostgreSQL keeps of an
application_name (63 bytes of printable ASCII), so the other replicas can say who sends."""

from __future__ import annotations

from cbmon.delivery.leader import application_name


def test_the_cluster_and_the_replica_are_in_the_name() -> None:
    assert application_name("shop", "cbmon-1.cbmon:9863") == "cbmon leader shop cbmon-1.cbmon:9863"
    assert application_name("shop") == "cbmon leader shop"
    assert application_name("shop", "[::1]:9863") == "cbmon leader shop [::1]:9863"


def test_the_name_is_cut_to_what_postgresql_keeps() -> None:
    name = application_name("c" * 63, "cbmon-1:9863")
    assert len(name.encode()) == 63
    assert name.startswith("cbmon leader ccc")


def test_nothing_unprintable_or_beyond_ascii_reaches_the_server() -> None:
    assert application_name("shop", "hôte\n:9863") == "cbmon leader shop hte:9863"
