"""The status page, rendered from snapshots the sidecar's own parts make: what fires, each
indicator's value, threshold and state, no traffic shown as such, and every value escaped."""

from __future__ import annotations

from cbmon.domain import Figures, Level
from cbmon.web import status, status_page
from cbmon.web.status_page import sparkline
from tests.support.dom import Element, parse
from tests.support.sidecar import callbacks
from tests.support.status import Pipeline

HOSTILE = "<script>alert('x')</script>"
IN_ATTRIBUTE = '"><img src=x onerror=alert(1)>'


def page(pipeline: Pipeline, wake: str = "notify", database_up: bool | None = None) -> Element:
    return parse(status_page.render(pipeline.snapshot(wake=wake, database_up=database_up)))


def calls(count: int, failures: int = 0, seconds: float = 0.05) -> Figures:
    return callbacks([seconds] * count, failures=failures)


def breach() -> Pipeline:
    pipeline = Pipeline()
    pipeline.poll({"pay": callbacks([0.05] * 100, failures=10), "ship": callbacks([0.05] * 100)})
    return pipeline


def test_the_firing_alert_its_event_type_and_state_are_on_the_page() -> None:
    dom = page(breach())
    alert = dom.find("li", data_alertname="CallbackSuccessRateLow", data_event_type="pay")
    assert alert.attrs["data-severity"] == "critical"
    assert "Callback success rate 90.00% for event type pay (below 99.00%)" in alert.text
    assert "since" in alert.text
    row = dom.find("tr", data_event_type="pay")
    assert "s-critical" in row.classes
    cell = row.find("td", data_slo="success_rate")
    assert cell.text.startswith("90.00% CRITICAL")
    assert cell.find_all("svg")  # the sparkline
    healthy = dom.find("tr", data_event_type="ship").find("td", data_slo="success_rate")
    assert healthy.text.startswith("100.00% ok")
    assert "s-ok" in healthy.classes
    assert dom.find("span", class_="verdict").text == "CRITICAL"
    assert dom.find("section", id="firing").find("span", class_="count").text == "2"


def test_thresholds_are_shown_with_the_indicators() -> None:
    text = page(breach()).find("table", class_="indicators").find("thead").text
    assert "success rate ok > 99.50%, critical < 99.00%" in text
    assert "avg latency ok < 150 ms, critical > 500 ms" in text


def test_hostile_event_types_are_text_and_never_markup() -> None:
    pipeline = Pipeline()
    pipeline.poll({HOSTILE: callbacks([0.05] * 20, failures=10), IN_ATTRIBUTE: calls(20, 10)})
    html = status_page.render(pipeline.snapshot())
    dom = parse(html)
    assert [s.attrs for s in dom.find_all("script")] == [{}]  # only the page's own, last
    assert dom.find_all("img") == []
    assert HOSTILE not in html
    assert IN_ATTRIBUTE not in html
    for event_type in (HOSTILE, IN_ATTRIBUTE):
        alert = dom.find("li", data_alertname="CallbackSuccessRateLow", data_event_type=event_type)
        assert event_type in alert.text
        assert dom.find("tr", data_event_type=event_type).find("th").text == event_type


def test_too_few_events_read_no_traffic() -> None:
    pipeline = Pipeline()
    pipeline.poll({"pay": calls(100), "rare": calls(3, 1)})
    dom = page(pipeline)
    cell = dom.find("tr", data_event_type="rare").find("td", data_slo="success_rate")
    assert "no traffic" in cell.text
    assert "s-unknown" in cell.classes
    assert "3 events in the window" in cell.attrs["title"]


def test_an_alert_whose_traffic_stopped_says_so_then_resolves() -> None:
    pipeline = breach()
    pipeline.clock.advance(301)  # every event leaves the 5m window
    pipeline.poll()
    dom = page(pipeline)
    alert = dom.find("li", data_alertname="CallbackSuccessRateLow", data_event_type="pay")
    assert "no traffic since" in alert.text
    assert dom.find("tr", data_event_type="", class_="s-unknown")  # overall: nothing to judge
    changes = dom.find("section", id="transitions").find_all("tr", data_change="no_data")
    assert len(changes) == 2  # overall and pay
    pipeline.clock.advance(300)
    pipeline.poll()
    dom = page(pipeline)
    assert dom.find("section", id="firing").find("p").text == "Nothing is firing."
    resolved = dom.find("section", id="transitions").find_all("tr", data_change="resolved")
    assert "Resolved for lack of data: no traffic" in resolved[0].text
    assert dom.find("span", class_="verdict").text == "NO TRAFFIC"


def test_a_healthy_system_fires_nothing() -> None:
    pipeline = Pipeline()
    pipeline.poll({"pay": calls(100)}, backlog=3)
    dom = page(pipeline)
    assert dom.find("section", id="firing").find("p").text == "Nothing is firing."
    assert dom.find("span", class_="verdict").text == "OK"
    backlog = dom.find("div", data_slo="backlog")
    assert backlog.text.startswith("backlog 3 ok")
    assert "ok < 1000, critical > 5000" in backlog.text
    assert "No alert has changed" in dom.find("section", id="transitions").text


def test_a_database_down_is_the_headline() -> None:
    dom = page(breach(), database_up=False)
    assert dom.find("span", class_="verdict").text == "DATABASE DOWN"
    assert "DOWN" in dom.find("section", id="system").text


def test_the_traffic_rule_is_shown_when_switched_on() -> None:
    pipeline = Pipeline(slo={"for": "0s", "min_events": 10, "traffic_absent_after": "10m"})
    pipeline.poll({"pay": calls(100)})
    pipeline.clock.advance(601)
    pipeline.poll()
    dom = page(pipeline)
    traffic = dom.find("div", data_slo="last_attempt_age")
    assert traffic.text.startswith("last attempt 10m1s WARNING")
    assert "warning after 10m without an attempt" in traffic.text
    assert dom.find("li", data_alertname="CallbackTrafficAbsent", data_severity="warning")
    assert Pipeline().snapshot().indicator("last_attempt_age", "") is None  # off by default


def test_who_sends_the_webhooks() -> None:
    pipeline = breach()

    def says(**leader: object) -> str:
        defaults: dict[str, object] = {
            "webhooks": 2,
            "alertmanagers": 0,
            "sends_webhooks": False,
            "sender": None,
            "foreign_holder": None,
        }
        snapshot = pipeline.snapshot(leader=status.LeaderStatus(**{**defaults, **leader}))  # type: ignore[arg-type]
        return parse(status_page.render(snapshot)).find("section", id="system").text

    assert "this replica sends them (2 receiver(s))" in says(sends_webhooks=True)
    assert "replica cbmon-2:9863 (pid 7) sends them" in says(sender="cbmon-2:9863 (pid 7)")
    assert "held by pid 9 (psql), not a cbmon replica" in says(foreign_holder="pid 9 (psql)")
    assert "no webhook receivers" in says(webhooks=0)
    assert "posts to 1 Alertmanager(s)" in says(webhooks=0, alertmanagers=1)


def test_how_polls_are_started() -> None:
    pipeline = breach()

    def polls(wake: str) -> str:
        return page(pipeline, wake=wake).find("section", id="system").text

    assert "polled at once when rows are committed" in polls("notify")
    assert "no cbmon_wake trigger" in polls("no_trigger")
    assert "has no LISTEN" in polls("unsupported")


def test_the_page_is_whole_without_scripts_and_needs_no_network() -> None:
    html = status_page.render(breach().snapshot())
    assert "://" not in html  # no CDN, no external file: everything is inline
    head, _, rest = html.partition("</head>")
    assert '<noscript><meta http-equiv="refresh" content="10"></noscript>' in head
    body, _, script = rest.rpartition("<script>")
    assert "CallbackSuccessRateLow" in body  # rendered by the server, not by the script
    assert "fetch(location.pathname" in script
    dom = parse(html)
    assert dom.find("meta", name="viewport").attrs["content"].startswith("width=device-width")
    hrefs = {a.attrs["href"] for a in dom.find_all("a")}
    assert hrefs >= {"/metrics", "/api/v1/status", "/api/v1/alerts", "/healthz", "/readyz"}


def test_the_page_state_follows_the_worst_judged_indicator() -> None:
    snapshot = breach().snapshot()
    assert snapshot.state is Level.CRITICAL
    assert parse(status_page.render(snapshot)).find("div", id="live").attrs == {
        "id": "live",
        "data-state": "critical",
    }


def test_sparkline_draws_values_gaps_and_thresholds() -> None:
    svg = parse(sparkline([0.999, 0.998, None, 0.97, 0.96], normal=0.995, alert=0.99))
    lines = svg.find_all("polyline")
    assert [len(line.attrs["points"].split()) for line in lines] == [2, 2]  # split at the gap
    assert {line.attrs["class"] for line in svg.find_all("line")} == {"t-normal", "t-alert"}
    points = [p.split(",") for line in lines for p in line.attrs["points"].split()]
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    assert xs == sorted(xs)
    assert xs[0] == 0
    assert xs[-1] == status_page.WIDTH
    assert ys[0] < ys[-1]  # a falling rate goes down the picture
    assert parse(sparkline([None, 5.0, None], None, None)).find_all("circle")
    assert sparkline([None, None], 1.0, 2.0) == ""
    assert sparkline([], None, None) == ""


def test_a_long_list_keeps_every_problem_and_says_how_many_more() -> None:
    pipeline = Pipeline()
    figures: dict[str | None, Figures] = {f"type_{n:03d}": calls(30) for n in range(80)}
    figures["zz_late_in_the_alphabet"] = calls(30, 3)
    figures["zz_slow"] = calls(30, 0, seconds=0.3)
    pipeline.poll(figures)
    rows = page(pipeline).find("table", class_="indicators").find_all("tr")[1:]
    scopes = [row.attrs.get("data-event-type") for row in rows]
    assert scopes[:3] == ["", "zz_late_in_the_alphabet", "zz_slow"]  # overall, then problems
    assert scopes[3:6] == ["type_000", "type_001", "type_002"]
    assert len(rows) == status_page.MAX_ROWS + 1
    assert rows[-1].text == (
        "and 33 more event types, none in a warning: /api/v1/status lists every one"
    )
