"""The fleet's page at ``/`` when one process watches several databases: one row per
database, worst first, each linking to its own status page (``/databases/NAME/``).

A pure function of the databases' snapshots, like :mod:`cbmon.web.status_page`, whose
verdict, formats and style it uses.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

from cbmon import present
from cbmon.durations import format_duration
from cbmon.slo.judge import OVERALL
from cbmon.web import status_page
from cbmon.web.status import Snapshot
from cbmon.web.status_page import esc

PREFIX = "/databases/"


def path_of(database: str) -> str:
    """Where a database's own page is; its API answers below it (``.../api/v1/status``)."""
    return PREFIX + urllib.parse.quote(database, safe="") + "/"


def _row(snapshot: Snapshot) -> str:
    state, word = status_page.verdict(snapshot)
    database, now = snapshot.database, snapshot.generated_at
    overall = snapshot.indicator("success_rate", OVERALL)
    rate = present.percent(None if overall is None else overall.value)
    polled = (
        f"{format_duration(max(0.0, round(now - database.last_poll)))} ago"
        if database.last_poll
        else "not yet"
    )
    cells = (
        f'<th class="scope"><a href="{esc(path_of(database.name))}">{esc(database.name)}</a></th>'
        f'<td class="{status_page._state_class(state)}"><span class="word">{esc(word)}</span></td>'
        f'<td class="num">{len(snapshot.firing)}</td>'
        f'<td class="num">{esc(rate)}</td>'
        f'<td class="num">{snapshot.backlog}</td>'
        f"<td>{esc(polled)}</td>"
        f'<td class="num">{database.poll_errors_total}</td>'
    )
    return f'<tr class="{status_page._state_class(state)}">{cells}</tr>'


def render(snapshots: Sequence[Snapshot], now: float) -> str:
    """The whole page; ``snapshots`` in the order shown (worst first)."""
    down = sum(not s.database.up for s in snapshots)
    firing = sum(len(s.firing) for s in snapshots)
    worst = max((status_page.verdict(s)[0] for s in snapshots), default=None)
    title = f"cbmon fleet: {len(snapshots)} databases" + (f", {down} down" if down else "")
    title += f", {firing} firing" if firing else ""
    head = (
        "<tr><th>database</th><th>state</th><th>firing</th><th>success rate</th>"
        "<th>backlog</th><th>last poll</th><th>failed polls</th></tr>"
    )
    rows = "".join(_row(s) for s in snapshots)
    links = " · ".join(
        f'<a href="{path}">{path}</a>' for path in ("/metrics", "/api/v1/status", "/api/v1/alerts")
    )
    verdict = "" if worst is None else present.level_word(worst).upper()
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        f'<meta http-equiv="refresh" content="{status_page.NOSCRIPT_REFRESH}">'
        f"<style>{status_page._style()}</style></head><body><main>"
        f'<header class="top"><h1>cbmon <small>fleet of {_databases(len(snapshots))}</small></h1>'
        + (
            f'<span class="verdict {status_page._state_class(worst)}">{esc(verdict)}</span>'
            if worst is not None
            else ""
        )
        + f'<p class="meta">updated {esc(status_page._when(now))} · worst first</p></header>'
        f'<section id="fleet"><h2>databases</h2><div class="scroll"><table>'
        f"<thead>{head}</thead><tbody>{rows}</tbody></table></div></section>"
        f"<footer>{links}</footer></main></body></html>"
    )


def _databases(count: int) -> str:
    return f"{count} database" if count == 1 else f"{count} databases"
