"""Error budgets in ``cbmon serve`` equal an independent SQL count over the same rows: history
read on start by creation time, new rows by the poll that read them."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from cbmon.sidecar.service import Service
from cbmon.web.collector import EvaluatorCollector
from tests.conftest import PgSchema

# Rows dated back from now, well inside their windows: (age, event type, total, failed).
HISTORY = [
    ("10 days", "pay", 400, 4),
    ("2 days", "pay", 300, 3),
    ("3 hours", "ship", 200, 10),
    ("20 minutes", "pay", 100, 5),
]


def insert(pg: PgSchema, age: str, event_type: str, total: int, failed: int) -> None:
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time, created_at) "
        "SELECT %s, CASE WHEN g <= %s THEN 'FAILED' ELSE 'COMPLETED' END, 40, "
        "now() - %s::interval FROM generate_series(1, %s) AS g",
        (event_type, failed, age, total),
    )


def sql_budget(pg: PgSchema, span: str, event_type: str | None, target: float) -> float:
    """(failed / attempts) / (1 - target) over the rows created within ``span``."""
    row = pg.conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status <> 'COMPLETED') FROM callback_logs "
        "WHERE created_at > now() - %s::interval AND (%s::text IS NULL OR event_type = %s)",
        (span, event_type, event_type),
    ).fetchone()
    assert row is not None
    return float(row[1] / row[0]) / (1 - target)


def sample(service: Service, name: str, **labels: str) -> float | None:
    registry = CollectorRegistry()
    registry.register(EvaluatorCollector(service.evaluator, service.dispatcher))
    return registry.get_sample_value(name, labels)


def test_budgets_and_burn_rates_equal_sql_over_the_same_rows(pg: PgSchema) -> None:
    for row in HISTORY:
        insert(pg, *row)
    config = pg.config(
        listen="127.0.0.1:0",
        objectives={"event_types": {"ship": {"success_rate": {"target": "99%", "period": "7d"}}}},
    )
    service = Service(config)
    try:
        service.poll_once()  # the history, by creation time
        insert(pg, "0 seconds", "pay", 200, 1)  # and rows the next poll reads
        service.poll_once()
        found = {(b.slo, b.event_type): b for b in service.evaluator.budgets()}
    finally:
        service.close()
    overall = found[("success_rate", "")]
    assert overall.events == 1200
    assert overall.spent == pytest.approx(sql_budget(pg, "30 days", None, 0.995))
    assert found[("success_rate", "pay")].spent == pytest.approx(
        sql_budget(pg, "30 days", "pay", 0.995)
    )
    ship = found[("success_rate", "ship")]
    assert ship.target.target == pytest.approx(0.99)
    assert ship.spent == pytest.approx(sql_budget(pg, "7 days", "ship", 0.99))
    # Burn rates: the same ratio over the window's rows.
    assert overall.burn["1h"] == pytest.approx(sql_budget(pg, "1 hour", None, 0.995))
    assert overall.burn["6h"] == pytest.approx(sql_budget(pg, "6 hours", None, 0.995))
    assert overall.burn["3d"] == pytest.approx(sql_budget(pg, "3 days", None, 0.995))
    remaining = sample(
        service,
        "cbmon_slo_error_budget_remaining_ratio",
        slo="success_rate",
        event_type="pay",
    )
    assert remaining == pytest.approx(1 - sql_budget(pg, "30 days", "pay", 0.995))
    burn = sample(service, "cbmon_slo_burn_rate", slo="success_rate", event_type="", window="1h")
    assert burn == pytest.approx(sql_budget(pg, "1 hour", None, 0.995))
