"""Alert state that survives a restart: one JSON file, replaced atomically.

What is written: each alert's track (firing or not, since when, the last notification and
when it resolved) and the messages still waiting in each webhook outbox. On start the file is
read back, so an alert firing before a restart resolves after it and an undelivered
notification is still delivered.

A write goes to a temporary file in the same directory, is flushed to disk, and replaces the
old file with ``os.replace``, which is atomic on POSIX filesystems (a Kubernetes volume too):
a crash leaves the old file or the new one, never half of one. A file that cannot be read
(corrupt, from a future version) is set aside with a warning and cbmon starts afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from cbmon.errors import ConfigError

log = logging.getLogger(__name__)

VERSION = 1


def path_for(state_dir: Path, cluster: str, identity: str) -> Path:
    """The state file of one replica: its cluster, and what it watches and where it listens
    (``identity``), so two replicas or two deployments on one host never share a file."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return state_dir / f"alerts-{cluster}-{digest}.json"


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Create the directory and prove it is writable, or one clear line (exit 2)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.path.parent, prefix=".probe-"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"alerting.state_dir: cannot write to {self.path.parent}: {exc.strerror or exc}"
            ) from None

    def read(self) -> dict[str, Any]:
        """What was saved, or ``{}`` when there is nothing usable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read alert state %s (%s); starting afresh", self.path, exc)
            return {}
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != VERSION:
                raise ValueError("unknown format")
        except ValueError as exc:
            aside = self.path.with_suffix(".unreadable")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            log.warning("alert state %s is unreadable (%s); moved to %s", self.path, exc, aside)
            return {}
        return data

    def write(self, data: dict[str, Any]) -> None:
        """Replace the file with ``data``; a failure is logged, never raised (alerting goes on
        in memory, and the next write tries again)."""
        body = json.dumps({"version": VERSION, **data}, separators=(",", ":")).encode()
        with self._lock:
            try:
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".alerts-")
                try:
                    with os.fdopen(fd, "wb") as out:
                        out.write(body)
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(tmp, self.path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
                _sync_directory(self.path.parent)
            except OSError as exc:
                log.warning("cannot save alert state to %s: %s", self.path, exc.strerror or exc)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
