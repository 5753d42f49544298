"""An embedded PostgreSQL for the demo and for machines without a database.

The ``pgserver`` package bundles PostgreSQL in its wheel and serves on a Unix socket only, so
nothing listens on the network. Its data lives under the user's cache directory. As root,
pgserver runs the server as a ``pgserver`` system user and opens read access on the data
directory's parents, so the default path sits under a cache directory, never a home.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from cbmon.errors import CbmonError

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or (
        "/var/cache" if os.geteuid() == 0 else str(Path.home() / ".cache")
    )
    return Path(cache) / "cbmon" / "pgdata"


class EmbeddedPostgres:
    """A running embedded server. Use as a context manager; it stops on exit."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir or default_data_dir()
        self._server: Any = None

    def start(self) -> EmbeddedPostgres:
        try:
            from pgserver.postgres_server import get_server
        except ImportError:
            raise CbmonError(
                "the embedded PostgreSQL needs the pgserver package: pip install 'cbmon[embedded]'"
            ) from None
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        for attempt in (1, 2):
            try:
                self._server = get_server(self.data_dir, cleanup_mode="stop")
                break
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
                # pg_ctl gives up after 10 s; a loaded machine can need a second try.
                if attempt == 2:
                    raise CbmonError(
                        f"embedded PostgreSQL in {self.data_dir} did not start: {exc}"
                    ) from None
                log.warning("embedded PostgreSQL did not start (%s); trying again", exc)
                time.sleep(1)
        log.info("embedded PostgreSQL running from %s", self.data_dir)
        return self

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise CbmonError("embedded PostgreSQL is not running")
        return str(self._server.get_uri())

    def restart(self, mode: str = "fast") -> None:
        """Restart the server (``mode`` as pg_ctl's ``-m``: smart, fast or immediate)."""
        self._pg_ctl("-w", "-m", mode, "restart")

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            # After a restart pgserver still knows the old postmaster only; stop the new one.
            if (self.data_dir / "postmaster.pid").exists():
                self._pg_ctl("-w", "-m", "fast", "stop")
            self._server = None

    def _pg_ctl(self, *args: str) -> None:
        # pgserver builds its command wrappers at import time, so they are looked up by name.
        commands: Any = importlib.import_module("pgserver._commands")
        user = self._server.system_user if self._server is not None else None
        commands.pg_ctl(list(args), pgdata=self.data_dir, user=user)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
