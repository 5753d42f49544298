"""Private PostgreSQL clusters run by the machine's own binaries: a primary, its streaming
standbys, promotions with and without the last commits, and a real pgbouncer in front.

PostgreSQL refuses to run as root, so as root every server process runs as an unprivileged
OS user (``postgres`` when it exists, as on Debian). Each cluster listens on 127.0.0.1 on a
free port with trust authentication, and keeps its sockets in its own directory.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
from psycopg import conninfo

from tests.support.processes import free_port, wait_for

SUPERUSER = "root"


def bindir() -> Path | None:
    """Where initdb, pg_ctl and pg_basebackup live: pg_config's answer, else the newest
    /usr/lib/postgresql/*/bin that has them."""
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        path = Path(out.stdout.strip())
        if (path / "pg_basebackup").exists() and (path / "initdb").exists():
            return path
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "pg_basebackup").exists():
            return Path(candidate)
    return None


def _version(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def _runner() -> tuple[list[str], int | None, int | None]:
    """The command prefix and the uid/gid server processes run as."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"], entry.pw_uid, entry.pw_gid
    raise RuntimeError("no unprivileged user to run PostgreSQL as")


_TEMPLATES: dict[str, Path] = {}  # server binaries -> a data directory fresh from initdb


class Cluster:
    """One private server. ``start``/``stop``/``kill``/``promote`` act on the real process."""

    def __init__(self, root: Path, name: str, port: int | None = None) -> None:
        self.bin = bindir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries are not installed")
        self.root = root
        self.name = name
        self.data = root / name
        self.sockets = root / f"{name}-sockets"
        self.port = port or free_port()
        self.log = root / f"{name}.log"
        self._prefix, self._uid, self._gid = _runner()

    # -- making one --------------------------------------------------------------------
    def init(self, **settings: str) -> Cluster:
        """A new cluster: a copy of one initdb made once per test run (initdb is the slow
        part, and every cluster starts from the same files), then its settings."""
        template = self._template()
        command = [*self._prefix, "cp", "-a", str(template), str(self.data)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        defaults = {
            "listen_addresses": "'127.0.0.1'",
            "wal_level": "replica",
            "max_wal_senders": "10",
            "hot_standby": "on",
            "fsync": "off",
            "synchronous_commit": "on",
            "max_prepared_transactions": "10",
            "shared_buffers": "32MB",
            "wal_receiver_status_interval": "1s",
            "hot_standby_feedback": "on",
        }
        self._write_settings({**defaults, **settings})
        with (self.data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        return self

    def standby(self, name: str, **settings: str) -> Cluster:
        """A streaming hot standby of this (running) cluster, from pg_basebackup -R."""
        replica = Cluster(self.root, name)
        replica._mkdir(replica.data)
        replica._run(
            "pg_basebackup", "-D", str(replica.data), "-h", "127.0.0.1", "-p", str(self.port),
            "-U", SUPERUSER, "-R", "-X", "stream", "--no-sync", "-c", "fast",
        )  # fmt: skip
        replica._write_settings({"port": str(replica.port), **settings})
        return replica

    def _write_settings(self, settings: dict[str, str]) -> None:
        self._mkdir(self.sockets)
        settings = {
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockets}'",
            **settings,
        }
        with (self.data / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    # -- running it --------------------------------------------------------------------
    def start(self) -> Cluster:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def kill(self) -> None:
        """The postmaster dies at once, as in a crash: nothing is flushed to a standby."""
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not _alive(pid), timeout=30)
            # Its backends notice the postmaster's death and exit on their own.
            wait_for(lambda: not self._backends_left(), timeout=30)

    def _backends_left(self) -> bool:
        out = subprocess.run(
            ["pgrep", "-f", f"-D {self.data}"], capture_output=True, text=True, check=False
        )
        return bool(out.stdout.strip())

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def promote(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")
        wait_for(lambda: not self.in_recovery(), timeout=30)

    def in_recovery(self) -> bool:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return bool(row and row[0])

    # -- reaching it -------------------------------------------------------------------
    def dsn(self, dbname: str = "postgres", **params: str) -> str:
        return conninfo.make_conninfo(
            host="127.0.0.1", port=str(self.port), user=SUPERUSER, dbname=dbname, **params
        )

    def wait_replayed(self, primary: Cluster, timeout: float = 30.0) -> None:
        """Until this standby has replayed everything the primary has written so far."""
        with psycopg.connect(primary.dsn(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        target = row[0]

        def replayed() -> bool:
            with psycopg.connect(self.dsn(), autocommit=True) as conn:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
                ).fetchone()
            return bool(done and done[0])

        wait_for(replayed, timeout=timeout)

    # -- helpers -----------------------------------------------------------------------
    def _mkdir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self._uid is not None and self._gid is not None:
            os.chown(path, self._uid, self._gid)
        path.chmod(0o700)

    def _template(self) -> Path:
        found = _TEMPLATES.get(str(self.bin))
        if found is None:
            root = Path(tempfile.mkdtemp(prefix="cbmon-initdb-"))
            root.chmod(0o755)
            if self._uid is not None and self._gid is not None:
                os.chown(root, self._uid, self._gid)
            atexit.register(shutil.rmtree, root, True)
            found = root / "data"
            self._mkdir(found)
            self._run("initdb", "-D", str(found), "-U", SUPERUSER, "-A", "trust", "--no-sync")
            _TEMPLATES[str(self.bin)] = found
        return found

    def _run(self, program: str, *args: str) -> None:
        assert self.bin is not None
        command = [*self._prefix, str(self.bin / program), *args]
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=120, cwd=self.root
        )
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stderr.strip()}\n{tail}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
        return status != "Z"
    return False


@contextlib.contextmanager
def lab() -> Iterator[Path]:
    """A directory for clusters the unprivileged user can enter; every server in it is
    stopped and the directory removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="cbmon-lab-"))
    root.chmod(0o755)
    _, uid, gid = _runner()
    if uid is not None and gid is not None:
        os.chown(root, uid, gid)
    try:
        yield root
    finally:
        for pidfile in root.glob("*/postmaster.pid"):
            with contextlib.suppress(OSError, ValueError, IndexError, ProcessLookupError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        for pidfile in root.glob("*.pgbouncer.pid"):
            with contextlib.suppress(OSError, ValueError, ProcessLookupError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)


class Pgbouncer:
    """A real pgbouncer in front of ``target``, in ``pool_mode`` (session or transaction)."""

    def __init__(
        self,
        root: Path,
        target: Cluster,
        pool_mode: str,
        *,
        users: Sequence[str] = (SUPERUSER,),
        pool_size: int = 10,
    ) -> None:
        self.root = root
        self.target = target
        self.pool_mode = pool_mode
        self.port = free_port()
        name = f"pgbouncer-{pool_mode}-{self.port}"
        self.ini = root / f"{name}.ini"
        self.pidfile = root / f"{name}.pgbouncer.pid"
        self.logfile = root / f"{name}.log"
        users_file = root / f"{name}.users"
        users_file.write_text("".join(f'"{user}" ""\n' for user in users), encoding="utf-8")
        self.ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={target.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = trust\nauth_file = {users_file}\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\n"
            f"max_client_conn = 200\nlogfile = {self.logfile}\npidfile = {self.pidfile}\n"
            "server_reset_query = DISCARD ALL\n"
            "ignore_startup_parameters = extra_float_digits\n",
            encoding="utf-8",
        )
        self._prefix, uid, gid = _runner()
        for path in (self.ini, users_file):
            if uid is not None and gid is not None:
                os.chown(path, uid, gid)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Pgbouncer:
        program = shutil.which("pgbouncer")
        if program is None:
            raise RuntimeError("pgbouncer is not installed")
        self.process = subprocess.Popen(
            [*self._prefix, program, str(self.ini)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=20)
        return self

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self.dsn(), connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def stop(self) -> None:
        """End pgbouncer at once: it keeps nothing worth a graceful shutdown, which takes it
        two seconds. The signal goes to pgbouncer itself (its pidfile), not to the wrapper
        that runs it as another user, which then exits too."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(self.pidfile.read_text().strip()), signal.SIGKILL)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        return conninfo.make_conninfo(
            host="127.0.0.1", port=str(self.port), user=user, dbname=dbname
        )
