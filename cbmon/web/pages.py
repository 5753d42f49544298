"""The status routes of ``cbmon serve``: ``/`` (the page), ``/api/v1/status`` and
``/api/v1/alerts``. Each request takes one snapshot, so a page or a document never mixes two
moments. The HTTP server asks :meth:`StatusPages.answer` and knows nothing else of them."""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cbmon.domain import Level
from cbmon.web import api, fleet_page, status_page
from cbmon.web.status import Snapshot


@dataclasses.dataclass(frozen=True)
class Page:
    body: bytes
    content_type: str


class Pages(Protocol):
    def answer(self, path: str) -> Page | None: ...


class StatusPages:
    PATHS = ("/", api.STATUS_PATH, api.ALERTS_PATH)

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def answer(self, path: str) -> Page | None:
        """The page or document at ``path``; None for any other path."""
        if path not in self.PATHS:
            return None
        snapshot = self._snapshot()
        if path == "/":
            return Page(status_page.render(snapshot).encode(), "text/html; charset=utf-8")
        document = api.status(snapshot) if path == api.STATUS_PATH else api.alerts(snapshot)
        return Page(api.encode(document), "application/json")


def worst_first(snapshots: Sequence[Snapshot]) -> list[Snapshot]:
    """Databases down first, then by verdict (critical, warning, ...), most firing, name."""

    def order(snapshot: Snapshot) -> tuple[bool, int, int, str]:
        level, _ = status_page.verdict(snapshot)
        rank = -1 if level is Level.UNKNOWN else int(level)
        return (snapshot.database.up, -rank, -len(snapshot.firing), snapshot.database.name)

    return sorted(snapshots, key=order)


class FleetPages:
    """The routes of a fleet: ``/`` (every database, worst first), ``/api/v1/status`` and
    ``/api/v1/alerts`` (every database's, in a ``databases`` list and one list of alerts),
    and each database's own page and documents under ``/databases/NAME/``."""

    def __init__(self, snapshots: Callable[[], Sequence[Snapshot]]) -> None:
        self._snapshots = snapshots

    def answer(self, path: str) -> Page | None:
        if path.startswith(fleet_page.PREFIX):
            return self._one(path.removeprefix(fleet_page.PREFIX))
        if path not in StatusPages.PATHS:
            return None
        snapshots = worst_first(self._snapshots())
        if path == "/":
            now = max((s.generated_at for s in snapshots), default=0.0)
            return Page(fleet_page.render(snapshots, now).encode(), "text/html; charset=utf-8")
        return Page(api.encode(fleet_document(path, snapshots)), "application/json")

    def _one(self, rest: str) -> Page | None:
        name, _, below = rest.partition("/")
        name = urllib.parse.unquote(name)
        found = next((s for s in self._snapshots() if s.database.name == name), None)
        if found is None:
            return None
        return StatusPages(lambda: found).answer("/" + below)


def fleet_document(path: str, snapshots: Sequence[Snapshot]) -> dict[str, Any]:
    """``/api/v1/status`` or ``/api/v1/alerts`` of a fleet, worst database first."""
    generated = max((s.generated_at for s in snapshots), default=0.0)
    if path == api.ALERTS_PATH:
        documents = [api.alerts(s) for s in snapshots]
        return {
            "version": api.VERSION,
            "generated_at": api.when(generated),
            "alerts": [alert for d in documents for alert in d["alerts"]],
            "transitions": [
                {"database": s.database.name, **t}
                for s, d in zip(snapshots, documents, strict=True)
                for t in d["transitions"]
            ],
        }
    return {
        "version": api.VERSION,
        "generated_at": api.when(generated),
        "databases": [api.status(s) for s in snapshots],
    }
