"""The status routes of ``cbmon serve``: ``/`` (the page), ``/api/v1/status`` and
``/api/v1/alerts``. Each request takes one snapshot, so a page or a document never mixes two
moments. The HTTP server asks :meth:`StatusPages.answer` and knows nothing else of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from cbmon.web import api, status_page
from cbmon.web.status import Snapshot


@dataclasses.dataclass(frozen=True)
class Page:
    body: bytes
    content_type: str


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
