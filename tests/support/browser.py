"""A real headless Chromium for tests (Debian's ``chromium``): a gate that holds a page's
later requests until the test lets them through, and the box of every text of a report's
charts as the browser lays them out.

Chromium runs offline with a profile of its own in a temporary directory: ``--dump-dom``
prints the DOM once the page's scripts have run for ``--virtual-time-budget`` (virtual time
stands still while a request is pending, so a held request is waited for, not timed out),
``--screenshot`` writes a PNG of the viewport.
"""

from __future__ import annotations

import html
import json
import re
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from tests.conftest import require_binary

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def chromium(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    binary = require_binary("chromium")
    with tempfile.TemporaryDirectory(prefix="cbmon-chromium-") as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )


def dump_dom(url: str, budget_ms: int = 3000, timeout: float = 90.0) -> str:
    """The DOM after the page's scripts ran for ``budget_ms`` of virtual time."""
    return chromium(f"--virtual-time-budget={budget_ms}", "--dump-dom", url, timeout=timeout).stdout


def screenshot(url: str, path: Path, width: int, height: int) -> tuple[int, int]:
    """A PNG of the page at this window size; its (width, height) as the file says."""
    chromium(
        f"--window-size={width},{height}",
        "--virtual-time-budget=1000",
        f"--screenshot={path}",
        url,
    )
    return png_size(path.read_bytes())


_MEASURE = """
<script>
const boxes = [];
document.querySelectorAll("svg.chart").forEach((svg, chart) => {
  const view = svg.viewBox.baseVal;
  svg.querySelectorAll("text").forEach((text) => {
    const box = text.getBBox();
    boxes.push({chart, text: text.textContent, x: box.x, y: box.y, width: box.width,
                height: box.height, view_width: view.width, view_height: view.height});
  });
});
const pre = document.createElement("pre");
pre.id = "measured";
pre.textContent = JSON.stringify(boxes);
document.body.appendChild(pre);
</script>
"""


@dataclass(frozen=True)
class Box:
    """One SVG text's box (``getBBox``, in its chart's own units)."""

    chart: int
    text: str
    x: float
    y: float
    width: float
    height: float
    view_width: float
    view_height: float

    def overlaps(self, other: Box, slack: float = 0.5) -> bool:
        return (
            self.x + slack < other.x + other.width
            and other.x + slack < self.x + self.width
            and self.y + slack < other.y + other.height
            and other.y + slack < self.y + self.height
        )

    @property
    def inside(self) -> bool:
        return (
            self.x >= 0
            and self.y >= 0
            and self.x + self.width <= self.view_width
            and self.y + self.height <= self.view_height
        )


def measure_charts(page: Path) -> list[Box]:
    """The box of every text of every chart of the HTML ``page``. The page holds no script:
    a copy of it gets one that writes the boxes into the DOM, which ``--dump-dom`` returns."""
    probe = page.with_name(page.stem + ".measure.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"))
    dom = dump_dom(probe.as_uri(), budget_ms=5000)
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, flags=re.S)
    assert found is not None, dom[-2000:]
    return [Box(**item) for item in json.loads(html.unescape(found.group(1)))]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


@dataclass(frozen=True)
class Seen:
    path: str
    mode: str  # Sec-Fetch-Mode: "navigate" for a page load, "cors" or "same-origin" for fetch()


class Gate(ThreadingHTTPServer):
    """Passes requests on to ``target``; every request for ``/`` after the first waits until
    :attr:`open` is set. Records each request's path and fetch mode."""

    daemon_threads = True

    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _GateHandler)
        self.target = target
        self.open = threading.Event()
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _GateHandler(BaseHTTPRequestHandler):
    server: Gate

    def do_GET(self) -> None:
        with self.server.lock:
            later = any(seen.path == "/" for seen in self.server.seen)
            self.server.seen.append(Seen(self.path, self.headers.get("Sec-Fetch-Mode", "")))
        if later and self.path == "/":
            self.server.open.wait(60)
        answer = requests.get(self.server.target + self.path, timeout=10)
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("Content-Type", "text/plain"))
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def gate(target: str) -> Iterator[Gate]:
    server = Gate(target.rstrip("/"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.open.set()
        server.shutdown()
        server.server_close()
