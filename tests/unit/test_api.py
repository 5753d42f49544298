"""The JSON API, version 1: its shape, its values, the way back for clients, and docs/api.md
describing every field it has (and none it has not)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from cbmon.domain import Bucket, Job, Mechanism, SourceState
from cbmon.web import api
from cbmon.web.mechanism import summary
from tests.support.sidecar import callbacks
from tests.support.status import Pipeline

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
PROBED = Mechanism(
    at=1_800_000_000.0,
    sources=(SourceState("notify_queue", "ok"), SourceState("scheduler", "absent", "no pg_cron")),
    notify_usage=0.25,
    listeners={"callback_queue": True},
    jobs=(Job("drain", True, 60.0, 3, 1, 1_799_999_990.0, 1_799_999_990.0),),
    buckets=(Bucket("default", 4.0, 100, 7),),
    dropped_in_window=2,
    route_problems={"no_route": ("refund",), "disabled": ()},
    track_functions="pl",
)


def breach() -> Pipeline:
    pipeline = Pipeline()
    pipeline.poll({"pay": callbacks([0.05] * 100, failures=10), "ship": callbacks([0.6] * 3)})
    return pipeline


def status_document() -> dict[str, Any]:
    pipeline = breach()
    pipeline.clock.advance(1)
    pipeline.poll({"pay": callbacks([0.05] * 100)})
    # With a probe of the mechanism, so that its fields are produced too.
    snapshot = dataclasses.replace(pipeline.snapshot(), mechanism=summary(PROBED, 3))
    document: dict[str, Any] = json.loads(api.encode(api.status(snapshot)))
    return document


def fields(value: Any, prefix: str = "") -> set[str]:
    """Every field path of a document: ``a``, ``a.b``, ``a[].c``."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found.add(path)
            found |= fields(inner, path)
    elif isinstance(value, list):
        for item in value:
            found |= fields(item, f"{prefix}[]")
    return found


def documented() -> set[str]:
    rows = re.findall(r"^\| `([a-z_.\[\]]+)` \|", DOCS.read_text(encoding="utf-8"), re.M)
    return set(rows)


def test_every_field_is_documented_and_every_documented_field_exists() -> None:
    produced = fields(status_document())
    # Keyed by value (levels, windows), documented as one field each.
    keyed = (
        "indicators[].thresholds.",
        "budgets[].burn_rate.",
        "mechanism.listeners.",
        "mechanism.route_problems.",
    )
    produced -= {f for f in produced if f.startswith(keyed)}
    assert produced == documented()


def test_alerts_is_the_status_documents_alert_part() -> None:
    pipeline = breach()
    snapshot = pipeline.snapshot()
    whole, part = api.status(snapshot), api.alerts(snapshot)
    assert set(part) == {"version", "generated_at", "alerts", "transitions"}
    assert {key: whole[key] for key in part} == part


def test_values_are_base_units_scopes_null_overall_and_times_rfc3339() -> None:
    document = status_document()
    assert document["version"] == 1
    assert document["state"] == "critical"
    assert document["window_seconds"] == 300
    rate = next(
        i for i in document["indicators"] if i["slo"] == "success_rate" and i["event_type"] == "pay"
    )
    assert rate["value"] == pytest.approx(0.95)
    assert rate["state"] == "critical"
    assert (rate["judged"], rate["no_data"], rate["events"]) == (True, False, 200)
    assert rate["thresholds"] == {"normal": 0.995, "alert": 0.99}
    assert rate["trend"] == [pytest.approx(0.95)]  # two polls within one trend step
    overall = [i for i in document["indicators"] if i["event_type"] is None]
    assert {i["slo"] for i in overall} == {
        "success_rate",
        "avg_latency",
        "p95_latency",
        "slow_share",
        "backlog",
    }
    shown = next(i for i in overall if i["slo"] == "p95_latency")
    assert (shown["judged"], shown["thresholds"]) == (False, None)
    rare = next(
        i for i in document["indicators"] if i["slo"] == "avg_latency" and i["event_type"] == "ship"
    )
    assert (rare["state"], rare["no_data"], rare["events"]) == ("unknown", True, 3)
    alert = next(a for a in document["alerts"] if a["event_type"] == "pay")
    assert alert["since"] == "2023-11-14T22:13:20.000Z"
    assert (alert["value"], alert["value_now"]) == (0.9, pytest.approx(0.95))
    assert alert["no_data_since"] is None
    assert [a["severity"] for a in document["alerts"]] == ["critical", "critical"]
    assert document["transitions"][0]["change"] == "fired"
    assert document["database"]["last_poll"] == "2023-11-14T22:13:21.000Z"
    assert document["leader"]["sends_webhooks"] is False


def test_the_way_back_gives_the_judges_indicators() -> None:
    pipeline = breach()
    document = json.loads(api.encode(api.status(pipeline.snapshot())))
    assert api.indicators(api.decode(json.dumps(document).encode())) == (
        pipeline.evaluator.indicators()
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"version": 2}', "API version 2, expected 1"),
        (b'{"alerts": []}', "API version None, expected 1"),
    ],
)
def test_what_is_not_version_1_is_refused_in_a_few_words(body: bytes, problem: str) -> None:
    with pytest.raises(api.ApiError, match=f"^{re.escape(problem)}$"):
        api.decode(body)


@pytest.mark.parametrize(
    "indicators",
    [
        [{"slo": "success_rate"}],
        [{"slo": "x", "event_type": None, "value": "high", "state": "ok", "events": 1}],
        [{"slo": "x", "event_type": None, "value": 1, "state": "dire", "events": 1}],
        ["success_rate"],
        None,
    ],
)
def test_malformed_indicators_are_an_api_error(indicators: Any) -> None:
    with pytest.raises(api.ApiError, match=r"^indicators: "):
        api.indicators({"version": 1, "indicators": indicators})
