"""An embedded PostgreSQL for the demo and for machines without a database.

The ``pgserver`` package bundles PostgreSQL in its wheel and serves on a Unix socket only, so
nothing listens on the network. Its data lives under the user's cache directory. As root,
pgserver runs the server as a ``pgserver`` system user and opens read access on the data
directory's parents, so the default path sits under a cache directory, never a home.

A server is stopped only by the one who started it: one found already running on the data
directory is used and left running. With ``exclusive``, a lock beside the data directory,
held as long as the server is in use, keeps a second user away altogether.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import os
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from cbmon.errors import CbmonError, ConfigError

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or (
        "/var/cache" if os.geteuid() == 0 else str(Path.home() / ".cache")
    )
    return Path(cache) / "cbmon" / "pgdata"


class DataDirInUse(ConfigError):
    """The data directory is taken: another process holds it, or a server we did not start
    runs on it."""


def _lock_path(data_dir: Path) -> Path:
    # Beside the directory, not in it: initdb wants the directory to itself.
    return data_dir.with_name(data_dir.name + ".lock")


def _take(data_dir: Path) -> IO[str]:
    """An exclusive lock on ``data_dir`` for as long as the returned file stays open."""
    handle = _lock_path(data_dir).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise DataDirInUse(
            f"{data_dir} is in use by another cbmon process (pid {holder})"
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _require_pgserver() -> None:
    try:
        importlib.import_module("pgserver")
    except ImportError:
        raise CbmonError(
            "the embedded PostgreSQL needs the pgserver package; from a clone of cbmon: "
            "pip install -e '.[embedded]'"
        ) from None


def running_postmaster(data_dir: Path) -> int | None:
    """The pid of a PostgreSQL server running on ``data_dir``, if one is."""
    _require_pgserver()
    from pgserver.utils import PostmasterInfo

    info: Any = PostmasterInfo.read_from_pgdata(data_dir) if data_dir.is_dir() else None
    if info is None or not info.is_running():
        return None
    return int(info.pid)


class EmbeddedPostgres:
    """A running embedded server. Use as a context manager; it stops on exit if it was
    started here."""

    def __init__(self, data_dir: Path | None = None, *, exclusive: bool = False) -> None:
        self.data_dir = data_dir or default_data_dir()
        self.exclusive = exclusive
        self.started_here = False
        self._server: Any = None
        self._lock: IO[str] | None = None

    def start(self) -> EmbeddedPostgres:
        _require_pgserver()
        from pgserver.postgres_server import get_server

        if self.exclusive:
            self.lock()
        try:
            self._start(get_server)
        except BaseException:
            self._release()
            raise
        log.info("embedded PostgreSQL running from %s", self.data_dir)
        return self

    def lock(self) -> None:
        """Take the data directory for this process alone (``exclusive``), or raise
        :class:`DataDirInUse`: another process holds it, or a server runs there already."""
        if self._lock is not None:
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _take(self.data_dir)
        pid = running_postmaster(self.data_dir)
        if pid is not None:
            self._release()
            raise DataDirInUse(
                f"{self.data_dir}: a PostgreSQL server cbmon did not start runs there "
                f"(pid {pid}); stop it or choose another data directory"
            )

    def _start(self, get_server: Any) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.started_here = running_postmaster(self.data_dir) is None
        # pgserver stops the server when its last handle goes, unless told to leave it.
        cleanup = "stop" if self.started_here else None
        for attempt in (1, 2):
            try:
                self._server = get_server(self.data_dir, cleanup_mode=cleanup)
                break
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
                # pg_ctl gives up after 10 s; a loaded machine can need a second try.
                if attempt == 2:
                    raise CbmonError(
                        f"embedded PostgreSQL in {self.data_dir} did not start: {exc}"
                    ) from None
                log.warning("embedded PostgreSQL did not start (%s); trying again", exc)
                time.sleep(1)

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise CbmonError("embedded PostgreSQL is not running")
        return str(self._server.get_uri())

    def restart(self, mode: str = "fast") -> None:
        """Restart the server (``mode`` as pg_ctl's ``-m``: smart, fast or immediate)."""
        self._pg_ctl("-w", "-m", mode, "restart")

    def stop(self) -> None:
        """Stop the server if it was started here; a server found running is left alone."""
        try:
            # A guest lets go without a word to pgserver: within one process pgserver hands
            # out the owner's handle, and cleaning that up would stop the owner's server.
            if self._server is not None and self.started_here:
                self._server.cleanup()
                # After a restart pgserver still knows the old postmaster only; stop the new one.
                if (self.data_dir / "postmaster.pid").exists():
                    self._pg_ctl("-w", "-m", "fast", "stop")
            self._server = None
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.close()
            self._lock = None

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
