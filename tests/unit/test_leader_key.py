"""The leader lock's key: one per cluster, database and watched table, unguessable without
the cluster secret."""

from __future__ import annotations

from cbmon.delivery.leader import lock_key, split_key

BASE = ("s3cret", "shop", "app", "public", "callback_logs")


def test_the_key_is_stable_and_64_bits_signed() -> None:
    key = lock_key(*BASE)
    assert key == lock_key(*BASE)
    assert -(2**63) <= key < 2**63


def test_each_watched_table_has_its_own_key() -> None:
    keys = {
        lock_key(*BASE),
        lock_key("s3cret", "shop", "app", "public", "other_logs"),  # another table
        lock_key("s3cret", "shop", "app", "audit", "callback_logs"),  # the same in a schema
        lock_key("s3cret", "shop", "app"),  # nothing watched
        lock_key("s3cret", "shop", "other_db", "public", "callback_logs"),
        lock_key("s3cret", "eu", "app", "public", "callback_logs"),
        lock_key("another", "shop", "app", "public", "callback_logs"),
        lock_key(None, "shop", "app", "public", "callback_logs"),
    }
    assert len(keys) == 8


def test_names_are_separated_so_that_moving_a_dot_changes_the_key() -> None:
    assert lock_key("s", "c", "db", "a", "b_c") != lock_key("s", "c", "db", "a_b", "c")


def test_split_key_gives_the_halves_pg_locks_shows() -> None:
    assert split_key(-1) == (0xFFFF_FFFF, 0xFFFF_FFFF)
    assert split_key(0x0000_0001_0000_0002) == (1, 2)
