"""A fleet in this process (:class:`~cbmon.sidecar.fleet.Fleet`): two databases' tables on the
real PostgreSQL and one database that never answers, one HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import yaml

from cbmon.config import load_config
from cbmon.sidecar.fleet import Fleet
from tests.conftest import PgSchema, reference_schema
from tests.support.processes import scrape, wait_for


@contextmanager
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never says a word: a database that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def until(metrics: str, holds: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    """The first scrape, database labels kept, of which ``holds`` is true."""

    def check() -> dict[str, float] | None:
        samples = scrape(metrics, database=True)
        return samples if holds(samples) else None

    return wait_for(check)


def _tables(pg: PgSchema) -> dict[str, dict[str, str]]:
    return {table: {"schema": pg.name} for table in ("logs", "errors", "queue")}


def test_each_database_is_polled_on_its_own_and_named_everywhere(
    pg: PgSchema, pg_dsn: str, tmp_path: Path
) -> None:
    with reference_schema(pg_dsn) as other, black_hole() as port:
        path = tmp_path / "fleet.yml"
        config = {
            "listen": "127.0.0.1:0",
            "poll_interval": "200ms",
            "wake": {"listen": False},
            "database": {"connect_timeout": "30s"},
            "targets": [
                {"name": "orders", "dsn": pg.dsn, "tables": _tables(pg)},
                {"name": "billing", "dsn": other.dsn, "tables": _tables(other)},
                {"name": "hung", "dsn": f"host=127.0.0.1 port={port} dbname=x user=x"},
            ],
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        fleet = Fleet(load_config(path, environ={}))
        server = fleet.start()
        thread = threading.Thread(target=fleet.run, daemon=True)
        thread.start()
        try:
            metrics = server.url + "/metrics"

            def polls(samples: dict[str, float], name: str) -> float:
                return samples.get(f'cbmon_polls_total{{database="{name}"}}', 0.0)

            # The hung database holds its poll for 30 s; the others poll every 200 ms.
            first = until(metrics, lambda s: polls(s, "billing") >= 2)
            later = until(
                metrics,
                lambda s: (
                    polls(s, "orders") >= polls(first, "orders") + 5
                    and polls(s, "billing") >= polls(first, "billing") + 5
                ),
            )
            assert later['cbmon_database_up{database="orders"}'] == 1
            assert later['cbmon_database_up{database="billing"}'] == 1
            assert later['cbmon_database_up{database="hung"}'] == 0
            assert polls(later, "hung") == 0
            # counted from the tail: a row committed after the first polls
            pg.conn.execute(
                "INSERT INTO callback_logs (event_type, status, execution_time) "
                "VALUES ('pay', 'COMPLETED', 10)"
            )
            until(
                metrics,
                lambda s: (
                    s.get('cbmon_callback_attempts_total{database="orders",event_type="pay"}') == 1
                ),
            )
            assert 'cbmon_callback_attempts_total{database="billing",event_type="pay"}' not in later

            status = requests.get(server.url + "/api/v1/status", timeout=5).json()
            names = [d["database"]["name"] for d in status["databases"]]
            assert names[0] == "hung"  # the worst first
            assert sorted(names) == ["billing", "hung", "orders"]
            page = requests.get(server.url + "/", timeout=5).text
            assert page.index(">hung<") < page.index(">billing<")
            one = requests.get(server.url + "/databases/orders/api/v1/status", timeout=5).json()
            assert one["database"] | {"name": "orders", "up": True} == one["database"]
            ready = requests.get(server.url + "/readyz", timeout=5)
            assert ready.status_code == 200
            assert "2 of 3 databases ready" in ready.text
            assert "hung" in ready.text
        finally:
            fleet.stop()
            thread.join(timeout=15)
            fleet.close()
        assert not thread.is_alive()
