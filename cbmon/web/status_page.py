"""The status page at ``/``: what is firing, every indicator against its thresholds with a
sparkline of the window, the queue, the database, who sends, and the latest changes.

A pure function of a :class:`~cbmon.web.status.Snapshot`: HTML out, no I/O. The page is
complete as the server renders it, so it works with scripts off (a ``<noscript>`` refresh
reloads it); with scripts on, a few lines fetch the page again every few seconds and swap
its content in place, without a reload. One renderer serves both, so formats and escaping
live here only. Everything is inline (no CDN, no external file), and the layout folds into
cards on a phone.

Every value is escaped: event types come from the database and may hold markup.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable, Sequence

from cbmon import present
from cbmon.domain import Level
from cbmon.durations import format_duration
from cbmon.slo import budget, wording
from cbmon.slo.judge import OVERALL, TRAFFIC
from cbmon.slo.objectives import BY_SLO, MECHANISM, Limits
from cbmon.slo.tracker import Transition
from cbmon.web.status import FiringStatus, IndicatorStatus, Snapshot

REFRESH = 2  # seconds between refreshes by the script
MAX_ROWS = 50  # event types in the table, besides those in a warning or worse
NOSCRIPT_REFRESH = 10  # seconds between full reloads without scripts
NO_TRAFFIC = "no traffic"

# The table's columns per event type; the callbacks' where the tables have the lifecycle.
_COLUMNS = ("success_rate", "avg_latency", "p95_latency")
_CALLBACK_COLUMNS = ("callback_success_rate", "end_to_end_p95")
_WAKE = {
    "notify": "polled at once when rows are committed (LISTEN)",
    "no_trigger": "listening, but a watched table has no cbmon_wake trigger",
    "connecting": "connecting to LISTEN for new rows",
    "unsupported": "this server has no LISTEN: polled every interval",
    "poll": "no notification can arrive where it listens: polled every interval",
    "off": "polled every interval",
}
# How open gaps are settled where the poll reads: a word, and what it means.
_FENCE = {
    "primary": ("exact", "the primary"),
    "primary_dsn": ("exact", "a hot standby, fenced from the primary"),
    "unreachable": ("held", "a hot standby whose primary does not answer: open gaps held"),
    "none": (
        "NOT EXACT",
        "a hot standby without database.primary_dsn: rows committed late may be missed",
    ),
}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _state_class(level: Level) -> str:
    return f"s-{level.label}"


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _clock(seconds: float, now: float) -> str:
    """The time of day when on the page's day (UTC), else the date too."""
    same_day = time.gmtime(seconds)[:3] == time.gmtime(now)[:3]
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _ago(seconds: float, now: float) -> str:
    return f"{present.age(max(0.0, now - seconds))} ago"


def _scope(event_type: str) -> str:
    return "all event types" if event_type == OVERALL else event_type


def _value(item: IndicatorStatus, value: float | None) -> str:
    limits = None if item.normal is None else Limits(item.normal, item.alert)
    return present.slo_value(item.slo, value, limits)


def _word(item: IndicatorStatus) -> str:
    """The state as a word: ok, WARNING, CRITICAL, "no traffic"; nothing when not judged."""
    if not item.judged:
        return ""
    return NO_TRAFFIC if item.no_data else present.level_word(item.state)


def limits(slo: str, normal: float | None, alert: float | None) -> str:
    """The thresholds of an indicator in words: ``ok > 99.50%, critical < 99.00%``."""
    if normal is None:
        return ""
    if slo == TRAFFIC:
        return f"warning after {esc(present.age(normal))} without an attempt"
    return esc(wording.bounds(BY_SLO[slo], Limits(normal, alert)))


# -- the sparkline ---------------------------------------------------------------------------
WIDTH, HEIGHT = 120, 28


def sparkline(values: Sequence[float | None], normal: float | None, alert: float | None) -> str:
    """An inline SVG of ``values`` (None for gaps), with the thresholds as dashed lines."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return ""
    marks = [b for b in (normal, alert) if b is not None]
    low, high = min([*known, *marks]), max([*known, *marks])
    span = (high - low) or 1.0
    count = max(len(values) - 1, 1)

    def y(value: float) -> str:
        return f"{HEIGHT - 2 - (value - low) / span * (HEIGHT - 4):.2f}"

    lines: list[list[str]] = [[]]
    for index, value in enumerate(values):
        if value is None or not math.isfinite(value):
            if lines[-1]:
                lines.append([])
            continue
        lines[-1].append(f"{index / count * WIDTH:.2f},{y(value)}")
    parts = [
        f'<line class="t-{name}" x1="0" x2="{WIDTH}" y1="{y(mark)}" y2="{y(mark)}"/>'
        for name, mark in (("normal", normal), ("alert", alert))
        if mark is not None
    ]
    for points in lines:
        if len(points) == 1:
            x, y_ = points[0].split(",")
            parts.append(f'<circle cx="{x}" cy="{y_}" r="1.5"/>')
        elif points:
            parts.append(f'<polyline points="{" ".join(points)}"/>')
    return (
        f'<svg class="spark" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
        f' preserveAspectRatio="none" aria-hidden="true">{"".join(parts)}</svg>'
    )


# -- the sections ----------------------------------------------------------------------------
def _cell(item: IndicatorStatus | None, slo: str) -> str:
    label = esc(BY_SLO[slo].label)
    if item is None:
        return f'<td data-label="{label}">{present.MISSING}</td>'
    word = _word(item)
    title = ""
    if item.no_data:
        title = f' title="{esc(item.events)} events in the window: too few to judge"'
    state = f' <span class="word">{esc(word)}</span>' if word else ""
    state_class = _state_class(item.state) if item.judged else "shown"
    return (
        f'<td data-label="{label}" data-slo="{esc(slo)}" class="{state_class}"{title}>'
        f'<div><span class="value">{esc(_value(item, item.value))}</span>{state}'
        f"{sparkline(item.trend, item.normal, item.alert)}</div></td>"
    )


def _columns(snapshot: Snapshot) -> tuple[str, ...]:
    if snapshot.indicator("callback_success_rate", OVERALL) is None:
        return _COLUMNS
    return _COLUMNS + _CALLBACK_COLUMNS


def _indicators(snapshot: Snapshot) -> str:
    columns = _columns(snapshot)
    heads = []
    for slo in columns:
        first = snapshot.indicator(slo, OVERALL)
        note = "" if first is None else limits(slo, first.normal, first.alert)
        heads.append(f"<th>{esc(BY_SLO[slo].label)}<small>{note or 'not judged'}</small></th>")
    rows = []
    scopes = [t for t in snapshot.event_types() if snapshot.indicator("success_rate", t)]
    for event_type in _first(snapshot, scopes):
        shown = [snapshot.indicator(slo, event_type) for slo in columns]
        cells = "".join(_cell(item, slo) for item, slo in zip(shown, columns, strict=True))
        attempts = shown[0].events if shown[0] is not None else 0
        rows.append(
            f'<tr data-event-type="{esc(event_type)}" class="{_state_class(_worst(shown))}">'
            f'<th scope="row" class="scope{" overall" if event_type == OVERALL else ""}">'
            f"{esc(_scope(event_type))}</th>{cells}"
            f'<td data-label="attempts" class="num">{esc(attempts)}</td></tr>'
        )
    if len(scopes) > len(rows):
        rows.append(
            f'<tr><td colspan="5" class="quiet">and {len(scopes) - len(rows)} more event types,'
            ' none in a warning: <a href="/api/v1/status">/api/v1/status</a> lists every one'
            "</td></tr>"
        )
    body = "".join(rows) or (
        '<tr><td colspan="5" class="quiet">No callback attempts in the window yet.</td></tr>'
    )
    window = esc(format_duration(snapshot.window))
    return (
        f'<section id="indicators"><h2>Indicators over the last {window}</h2>'
        f'<p class="hint">Judged from {esc(max(snapshot.min_events, 1))} events in the window; '
        f"fewer is {NO_TRAFFIC}. Sparklines span the window.</p>"
        '<div class="scroll"><table class="indicators"><thead><tr><th>event type</th>'
        f"{''.join(heads)}<th>attempts</th></tr></thead><tbody>{body}</tbody></table></div>"
        "</section>"
    )


def _worst(items: Iterable[IndicatorStatus | None]) -> Level:
    return max((i.state for i in items if i is not None and i.judged), default=Level.UNKNOWN)


def _first(snapshot: Snapshot, scopes: list[str]) -> list[str]:
    """Overall first, then every event type in a warning or worse, then the others by name,
    as many as :data:`MAX_ROWS` allows: a page of five hundred healthy rows helps nobody, and
    the JSON API lists them all."""
    columns = _columns(snapshot)
    worst = {t: _worst(snapshot.indicator(slo, t) for slo in columns) for t in scopes}

    def order(event_type: str) -> tuple[bool, int, str]:
        level = worst[event_type]
        return (event_type != OVERALL, -int(level) if level >= Level.WARNING else 0, event_type)

    ordered = sorted(scopes, key=order)
    return ordered[:MAX_ROWS] + [t for t in ordered[MAX_ROWS:] if worst[t] >= Level.WARNING]


def _alert(item: FiringStatus, snapshot: Snapshot) -> str:
    """One firing alert in two lines: what it said when it fired (its numbers and threshold),
    then its name, scope, since when and its value now; what to do one click away."""
    now = snapshot.generated_at
    indicator = snapshot.indicator(item.slo, item.event_type)
    if item.no_data_since is not None:
        current = (
            f' · <span class="nodata">{NO_TRAFFIC} since {esc(_clock(item.no_data_since, now))}'
            f"; resolves after {esc(format_duration(snapshot.window))} without data</span>"
        )
    elif indicator is not None:
        current = f" · now <b>{esc(_value(indicator, item.current))}</b>"
    else:
        current = ""
    return (
        f'<li class="alert s-{esc(item.severity)}" data-alertname="{esc(item.alertname)}"'
        f' data-event-type="{esc(item.event_type)}" data-severity="{esc(item.severity)}">'
        f'<p class="summary"><span class="badge">{esc(item.severity)}</span> '
        f"{esc(item.summary)}</p>"
        f'<div class="when">{esc(item.alertname)} · '
        f'<span class="scope">{esc(_scope(item.event_type))}</span> · since '
        f'<span title="{esc(_when(item.since))}">{esc(_clock(item.since, now))}</span> '
        f"({esc(_ago(item.since, now))}){current} "
        f"<details><summary>what to do</summary><p>{esc(item.description)}</p></details></div>"
        "</li>"
    )


def _firing(snapshot: Snapshot) -> str:
    count = len(snapshot.firing)
    if count:
        items = "".join(_alert(item, snapshot) for item in snapshot.firing)
        body = f'<ul class="alerts">{items}</ul>'
    else:
        body = '<p class="quiet">Nothing is firing.</p>'
    heading = f'<h2>Firing now <span class="count">{count}</span></h2>'
    return f'<section id="firing">{heading}{body}</section>'


def _single(item: IndicatorStatus | None, slo: str, extra: str = "") -> str:
    """One overall indicator as a definition: the backlog, the time since the last attempt."""
    if item is None:
        return ""
    word = _word(item)
    state = f' <span class="word">{esc(word)}</span>' if word else ""
    note = limits(slo, item.normal, item.alert)
    return (
        f'<div class="kv {_state_class(item.state)}" data-slo="{esc(slo)}">'
        f"<dt>{esc(BY_SLO[slo].label)}</dt><dd>"
        f'<span class="value">{esc(_value(item, item.value))}</span>{state}'
        f"{sparkline(item.trend, item.normal, item.alert)}"
        f"{f'<small>{note}</small>' if note else ''}{extra}</dd></div>"
    )


def _budgets(snapshot: Snapshot) -> str:
    """Each objective's error budget: what is left, how fast it burns, when it runs out."""
    if not snapshot.budgets:
        return ""
    rows = []
    for item in snapshot.budgets:
        left = item.remaining
        level = budget.judge_remaining(left)
        name = "success" if item.slo == "success_rate" else "latency"
        goal = present.percent(item.target, boundaries=())
        if item.threshold is not None:
            goal += f" within {present.millis(item.threshold)}"
        gone = item.exhausted_in
        when = (
            "spent"
            if gone == 0
            else "not at this rate"
            if gone is None
            else f"in {present.age(gone)}"
        )
        burn = item.burn.get("1h")
        rows.append(
            f'<tr class="{_state_class(level)}" '
            f'data-budget="{esc(item.slo)}:{esc(item.event_type)}">'
            f'<th scope="row" class="scope">{esc(_scope(item.event_type))}</th>'
            f'<td data-label="objective">{esc(name)} {esc(goal)} over '
            f"{esc(present.period(item.period))}</td>"
            f'<td data-label="left" class="num"><span class="word">'
            f"{esc('-' if left is None else present.percent(left, 1))}</span></td>"
            f'<td data-label="burn 1h" class="num">'
            f"{esc('-' if burn is None else present.number(burn, 2))}x</td>"
            f'<td data-label="runs out">{esc(when if left is not None else "-")}</td></tr>'
        )
    return (
        '<section id="budgets"><h2>Error budgets</h2>'
        '<p class="hint">Left of each objective\'s allowance of bad events over its period; '
        "burn 1x spends it exactly over the period; runs out at the last hour's burn.</p>"
        '<div class="scroll"><table class="budgets"><thead><tr><th>event type</th>'
        "<th>objective</th><th>left</th><th>burn 1h</th><th>runs out</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _queue(snapshot: Snapshot) -> str:
    oldest = (
        f"<small>oldest waiting {esc(present.age(snapshot.oldest_age_seconds))}</small>"
        if snapshot.backlog
        else "<small>nothing waiting</small>"
    )
    states = ""
    if snapshot.queue_states is not None:
        words = {"retry_scheduled": "waiting for a retry", "in_flight": "in flight"}
        shown = ", ".join(
            f"{count} {words.get(state, state)}" for state, count in snapshot.queue_states.items()
        )
        states = f"<small>{esc(shown)}</small>"
    backlog = _single(snapshot.indicator("backlog", OVERALL), "backlog", oldest + states)
    dead = _single(snapshot.indicator("dead_letters", OVERALL), "dead_letters")
    traffic = _single(snapshot.indicator(TRAFFIC, OVERALL), TRAFFIC)
    return (
        f'<section id="queue"><h2>Queue and traffic</h2><dl>{backlog}{dead}{traffic}</dl></section>'
    )


_PROBLEM_WORDS = {
    "no_route": "no route",
    "disabled": "route disabled",
    "missing_handler": "handler function missing",
    "retries_above_policy": "more retries than the policy",
}


def _mechanism(snapshot: Snapshot) -> str:
    """The mechanism inside the database: each judged probe, and what it names."""
    found = snapshot.mechanism
    if found is None:
        return ""
    jobs = [j for j in found["jobs"] or () if j["failing"]]
    named = {
        "scheduler_jobs_failing": "; ".join(f"{j['job']}: {j['failing']}" for j in jobs),
        "route_problems": "; ".join(
            f"{_PROBLEM_WORDS.get(problem, problem)}: {', '.join(names)}"
            for problem, names in (found["route_problems"] or {}).items()
            if names
        ),
    }
    items = "".join(
        _single(
            snapshot.indicator(slo, OVERALL),
            slo,
            f"<small>{esc(named[slo])}</small>" if named.get(slo) else "",
        )
        for slo in (objective.slo for objective in MECHANISM)
    )
    off = "; ".join(
        f"{s['source']} {s['state']}" + (f" ({s['detail']})" if s["detail"] else "")
        for s in found["sources"]
        if s["state"] != "ok" or s["detail"]
    )
    note = f'<p class="hint">{esc(off)}</p>' if off else ""
    return (
        f'<section id="mechanism"><h2>Mechanism in the database</h2><dl>{items}</dl>{note}'
        "</section>"
    )


def _senders(snapshot: Snapshot) -> str:
    leader = snapshot.leader
    if not leader.webhooks:
        words = "no webhook receivers: alerts are logged, exported and shown here"
    elif leader.sends_webhooks:
        words = f"this replica sends them ({leader.webhooks} receiver(s))"
    elif leader.refusal is not None:
        words = f"never this replica: {leader.refusal}"
    elif leader.foreign_holder is not None:
        words = f"nobody: the lock is held by {leader.foreign_holder}, not a cbmon replica"
    elif leader.sender is not None:
        words = f"replica {leader.sender} sends them; this one stands by"
    else:
        words = "not known yet; this replica stands by"
    if leader.alertmanagers:
        words += f"; every replica posts to {leader.alertmanagers} Alertmanager(s)"
    return esc(words)


def _system(snapshot: Snapshot) -> str:
    now, database = snapshot.generated_at, snapshot.database
    level = Level.OK if database.up else Level.CRITICAL
    polled = (
        f"last poll {_ago(database.last_poll, now)}" if database.last_poll else "not polled yet"
    )
    lag = f", {database.lag_rows} rows still to read" if database.lag_rows else ""
    wake = _WAKE.get(database.wake, database.wake)
    rows = [
        (
            "database",
            f'<span class="{_state_class(level)}"><span class="word">'
            f"{'up' if database.up else 'DOWN'}</span></span> · {esc(polled)}{esc(lag)}",
        ),
        (
            "polls",
            f"{esc(database.polls_total)} ({esc(database.poll_errors_total)} failed) · every "
            f"{esc(format_duration(snapshot.poll_interval))}; {esc(wake)}",
        ),
        ("webhooks", _senders(snapshot)),
    ]
    if database.server_role == "standby" or database.pooler not in (None, "none"):
        levels = {"NOT EXACT": Level.CRITICAL, "held": Level.WARNING}
        word, words = _FENCE.get(database.fence or "", _FENCE["primary"])
        if database.pooler not in (None, "none"):
            words += f"; through a pooler in {database.pooler} mode"
        state = _state_class(levels.get(word, Level.OK))
        rows.insert(
            1,
            (
                "reads",
                f'<span class="{state}"><span class="word">{esc(word)}</span></span> · '
                f"{esc(words)}",
            ),
        )
    if database.resets:
        rows.insert(2, ("resets", esc(f"{database.resets} table histories replaced (see log)")))
    if snapshot.lifecycle_notes:
        rows.append(("callbacks", "<br>".join(esc(note) for note in snapshot.lifecycle_notes)))
    items = "".join(f'<div class="kv"><dt>{name}</dt><dd>{text}</dd></div>' for name, text in rows)
    return f'<section id="system"><h2>cbmon</h2><dl>{items}</dl></section>'


def _transition(item: Transition, now: float) -> str:
    colour = {"resolved": "ok", "data_back": "ok", "no_data": "unknown"}.get(item.change)
    return (
        f'<tr class="s-{esc(colour or item.severity)}" data-change="{esc(item.change)}">'
        f'<td data-label="when" title="{esc(_when(item.at))}">{esc(_clock(item.at, now))}</td>'
        f'<td data-label="change"><span class="word">{esc(item.change.replace("_", " "))}'
        "</span></td>"
        f'<td data-label="alert">{esc(item.alertname)}</td>'
        f'<td data-label="event type">{esc(_scope(item.event_type))}</td>'
        f'<td data-label="severity">{esc(item.severity)}</td>'
        f'<td data-label="summary" class="text">{esc(item.summary)}</td></tr>'
    )


def _transitions(items: Iterable[Transition], now: float) -> str:
    rows = "".join(_transition(item, now) for item in items)
    if not rows:
        body = '<p class="quiet">No alert has changed since cbmon started.</p>'
    else:
        body = (
            '<div class="scroll"><table class="transitions"><thead><tr><th>when (UTC)</th>'
            "<th>change</th><th>alert</th><th>event type</th><th>severity</th><th>summary</th>"
            f"</tr></thead><tbody>{rows}</tbody></table></div>"
        )
    return f'<section id="transitions"><h2>Recent changes</h2>{body}</section>'


# -- the page --------------------------------------------------------------------------------
def _style() -> str:
    colours = "".join(
        f".s-{level.label}{{--c:{colour}}}" for level, colour in present.HTML_COLOURS.items()
    )
    return _CSS + colours


_CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2328;background:#f6f8fa}
main{max-width:1200px;margin:0 auto;padding:12px 16px 32px}
header.top{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 16px;margin:4px 0 8px}
h1{font-size:22px;margin:0}h1 small{font-weight:400;color:#57606a;font-size:15px}
h2{font-size:17px;margin:0 0 8px}
.verdict{font-weight:700;color:#fff;background:var(--c);border-radius:6px;padding:2px 10px}
.meta{color:#57606a;margin:0;flex-basis:100%}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 14px;margin:12px 0}
.quiet,.hint{color:#57606a;margin:0}.hint{font-size:13px;margin-bottom:6px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-top:1px solid #eaeef2;vertical-align:top}
thead th{border-top:0;font-size:13px;color:#57606a;font-weight:600;white-space:nowrap}
thead th small{display:block;font-weight:400}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.value{font-variant-numeric:tabular-nums;font-weight:600}
.word{color:var(--c);font-weight:700;font-size:13px;margin-left:4px}
td.s-unknown .word,.kv.s-unknown .word{font-weight:400;font-style:italic}
td.s-unknown .value,.kv.s-unknown .value{color:#6e7781}
.scope{overflow-wrap:anywhere;font-weight:600}.scope.overall{font-style:italic}
tr.s-critical th.scope{box-shadow:inset 4px 0 var(--c)}
tr.s-warning th.scope{box-shadow:inset 4px 0 var(--c)}
svg.spark{display:block;margin-top:2px;max-width:100%;overflow:visible}
svg.spark polyline{fill:none;stroke:var(--c,#57606a);stroke-width:1.5;
vector-effect:non-scaling-stroke}
svg.spark circle{fill:var(--c,#57606a)}
svg.spark line{stroke-width:1;stroke-dasharray:2 3;opacity:.6;vector-effect:non-scaling-stroke}
svg.spark .t-normal{stroke:#9a6700}svg.spark .t-alert{stroke:#cf222e}
ul.alerts{list-style:none;margin:0;padding:0}
li.alert{border-left:5px solid var(--c);background:#fff8f8;padding:6px 10px;margin:6px 0;
border-radius:4px}
li.alert.s-warning{background:#fff8e5}
li.alert p{margin:1px 0}li.alert .when{margin:1px 0}
li.alert details{display:inline}
li.alert details[open]{display:block}
li.alert details p{color:#1f2328;margin:4px 0}
.badge{background:var(--c);color:#fff;border-radius:4px;padding:0 6px;font-size:13px;
font-weight:700;text-transform:uppercase}
.summary{font-weight:600;overflow-wrap:anywhere}
.when{color:#57606a;font-size:14px;overflow-wrap:anywhere}.when b{color:#1f2328}
.when .scope{color:#1f2328}
.nodata{color:#6e7781;font-style:italic}
details summary{cursor:pointer;color:#0969da;font-size:14px;display:inline;white-space:nowrap}
dl{margin:0;display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:8px 24px}
.kv dt{font-size:13px;color:#57606a}.kv dd{margin:0}.kv small{display:block;color:#57606a}
.count{background:#eaeef2;border-radius:10px;padding:0 8px;font-size:14px}
td.text{overflow-wrap:anywhere;min-width:16em}
footer{color:#57606a;font-size:13px;text-align:center}
a{color:#0969da}
#stale{display:none;background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;
padding:6px 10px;margin:8px 0}
html.stale #stale{display:block}
@media (max-width:700px){
main{padding:8px}section{padding:10px 8px}li.alert{padding:6px 8px}
table.indicators thead,table.budgets thead,table.transitions thead{display:none}
table.indicators,table.indicators tbody,table.indicators tr,table.indicators td,
table.indicators th,table.budgets,table.budgets tbody,table.budgets tr,table.budgets td,
table.budgets th,table.transitions,table.transitions tbody,table.transitions tr,
table.transitions td{display:block;width:100%}
table.indicators tr,table.budgets tr,table.transitions tr{border-top:1px solid #d0d7de;
padding:6px 0}
table.indicators th,table.indicators td,table.budgets th,table.budgets td,
table.transitions td{border:0;padding:2px 4px}
table.indicators td,table.budgets td,table.transitions td{display:grid;
grid-template-columns:8.5em 1fr;align-items:center;column-gap:6px}
table.indicators td::before,table.budgets td::before,table.transitions td::before{
content:attr(data-label);color:#57606a;font-size:13px}
td.num{text-align:left}td.text{min-width:0}
}
"""

_SCRIPT = """
(function () {
  "use strict";
  var every = %d * 1000;
  function tick() {
    fetch(location.pathname, {cache: "no-store", credentials: "same-origin",
                              headers: {"Accept": "text/html"}})
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); }
                           return r.text(); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("live"), old = document.getElementById("live");
        if (!fresh || !old) { throw new Error("not a status page"); }
        old.replaceWith(document.adoptNode(fresh));
        document.title = doc.title;
        document.documentElement.classList.remove("stale");
      })
      .catch(function () { document.documentElement.classList.add("stale"); })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
"""


def verdict(snapshot: Snapshot) -> tuple[Level, str]:
    """The page's verdict: the worst state and its word; a database down is critical."""
    if not snapshot.database.up:
        return Level.CRITICAL, "DATABASE DOWN"
    state = snapshot.state
    overall = snapshot.indicator("success_rate", OVERALL)
    if state <= Level.OK and (overall is None or overall.no_data):
        return Level.UNKNOWN, NO_TRAFFIC.upper()  # nothing wrong, and nothing to judge
    return state, present.level_word(state).upper()


def render(snapshot: Snapshot) -> str:
    """The whole page."""
    state, word = verdict(snapshot)
    firing = len(snapshot.firing)
    name = snapshot.database.name
    title = f"cbmon {name}: {word}" + (f", {firing} firing" if firing else "")
    links = " · ".join(
        f'<a href="{path}">{path}</a>'
        for path in ("/metrics", "/api/v1/status", "/api/v1/alerts", "/healthz", "/readyz")
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        f'<noscript><meta http-equiv="refresh" content="{NOSCRIPT_REFRESH}"></noscript>'
        f"<style>{_style()}</style></head><body><main>"
        '<p id="stale">cbmon does not answer: what you see may be out of date.</p>'
        f'<div id="live" data-state="{esc(state.label)}">'
        f'<header class="top"><h1>cbmon <small>database {esc(name)} · cluster '
        f"{esc(snapshot.cluster)}</small></h1>"
        f'<span class="verdict {_state_class(state)}">{esc(word)}</span>'
        f'<p class="meta">updated {esc(_when(snapshot.generated_at))} · window '
        f"{esc(format_duration(snapshot.window))} · cbmon {esc(snapshot.version)}</p></header>"
        f"{_firing(snapshot)}{_indicators(snapshot)}{_budgets(snapshot)}{_queue(snapshot)}"
        f"{_mechanism(snapshot)}"
        f"{_system(snapshot)}"
        f"{_transitions(snapshot.transitions, snapshot.generated_at)}</div>"
        f"<footer>{links}</footer></main>"
        f"<script>{_SCRIPT % REFRESH}</script></body></html>"
    )
