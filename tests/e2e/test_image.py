"""The container image, built from the Dockerfile by podman and run: as docker run's users
start it, and as the Deployment of deploy/kubernetes/ starts it (its volumes, user, read-only
root and probes, with basic auth on), scraped over HTTP.

No registry is reached: the base image is made with debootstrap (scripts/build-image
--local-base). Containers share this host's network, so the pod listens on a free port of
127.0.0.1 rather than 9863 on every interface.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg import conninfo, sql

from cbmon import __version__
from cbmon.db.embedded import EmbeddedPostgres
from cbmon.reference import schema
from tests.conftest import require_binary
from tests.support.kubernetes import fill_secrets, podman_run
from tests.support.processes import free_port, samples_of, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/cbmon:e2e"


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "podman"), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The image built from this tree (the base is made once and kept), removed after."""
    require_binary("podman")
    require_binary("debootstrap")
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-image"), "--local-base", TAG],
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    yield TAG
    podman("rmi", TAG, check=False)


@pytest.fixture
def database(pg_dsn: str) -> Iterator[str]:
    """A database of its own with the reference tables in ``public``, dropped after."""
    name = f"cbmon_image_{secrets.token_hex(4)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = conninfo.make_conninfo(pg_dsn, dbname=name)
    try:
        schema.apply(dsn, schema="public", role=None)
        yield dsn
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _socket_mounts(dsn: str) -> list[str]:
    """A DSN on a Unix socket (the embedded server where no PostgreSQL answers on TCP) reaches
    the container through the socket, at the same path."""
    params = conninfo.conninfo_to_dict(dsn)
    host = str(params.get("host") or "")
    if not host.startswith("/"):
        return []
    socket = f"{host}/.s.PGSQL.{params.get('port') or 5432}"
    return ["--volume", f"{socket}:{socket}"]


@contextmanager
def container(name: str, args: list[str]) -> Iterator[str]:
    podman("run", "--detach", "--name", name, *args)
    try:
        yield name
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def logs(name: str) -> list[str]:
    """What the container wrote, stdout and stderr (cbmon logs to stderr)."""
    done = subprocess.run(
        ["podman", "logs", name], capture_output=True, text=True, timeout=30, check=False
    )
    return (done.stdout + done.stderr).splitlines()


def _insert(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO callback_logs (event_type, status, execution_time) "
            "SELECT 'order_paid', 'COMPLETED', 40 FROM generate_series(1, %s)",
            [rows],
        )


def test_the_image_holds_the_wheel_only_and_runs_unprivileged(image: str) -> None:
    (info,) = json.loads(podman("image", "inspect", image))
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["cbmon", "serve"]
    assert "9863/tcp" in config["ExposedPorts"]
    assert info["Healthcheck"]["Test"][:2] == ["CMD", "python3"]  # kept: docker format
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    script = (
        "cbmon --version; id -u; test ! -e /src && test ! -e /opt/cbmon/bin/pip && echo clean; "
        "python3 -c 'import cbmon, sys; print(cbmon.__file__)'"
    )
    out = podman("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script)
    version, uid, clean, location = out.splitlines()
    assert (version, uid, clean) == (f"cbmon, version {__version__}", "10001", "clean")
    assert location.startswith("/opt/cbmon/lib/")
    assert "/site-packages/cbmon/" in location


@pytest.fixture
def socket_database(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An embedded server with the reference tables, and the file of its Unix socket."""
    with EmbeddedPostgres(tmp_path / "pgdata") as server:
        schema.apply(server.dsn, schema="public", role=None)
        params = conninfo.conninfo_to_dict(server.dsn)
        yield server.dsn, Path(str(params["host"])) / f".s.PGSQL.{params.get('port') or 5432}"


def test_docker_run_serves_metrics_keeps_state_and_stops_cleanly(
    image: str, socket_database: tuple[str, Path], tmp_path: Path
) -> None:
    """`docker run -e CBMON_DSN=... -v state:/var/lib/cbmon cbmon` with every default of the
    image: it listens on 9863 and its HEALTHCHECK asks there. The container has a network of
    its own with nothing in it (the database comes in as its socket), so it is scraped from
    inside, the way a sidecar scrapes."""
    dsn, socket = socket_database
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    name = f"cbmon-run-{secrets.token_hex(4)}"
    args = ["--network", "none", "--health-interval", "disable",
            "--volume", f"{socket}:/run/postgresql/{socket.name}",
            "--env", "CBMON_DSN=postgresql://postgres@/postgres?host=/run/postgresql",
            "--volume", f"{state}:/var/lib/cbmon", image, "--poll-interval", "500ms"]  # fmt: skip
    fetch = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"

    def inside(path: str) -> str:
        url = f"http://127.0.0.1:9863{path}"
        return podman("exec", name, "python3", "-c", fetch, url, check=False)

    with container(name, args):
        wait_for(lambda: inside("/readyz").startswith("ready"), timeout=60, every=0.5)
        _insert(dsn, 25)
        wait_for(lambda: _attempts(inside("/metrics")) == 25, timeout=30, every=0.5)
        assert podman("healthcheck", "run", name, check=False) == ""  # no word: healthy
        podman("stop", "--time", "20", name)
        (inspected,) = json.loads(podman("inspect", name))
        written = logs(name)
    assert inspected["State"]["ExitCode"] == 0, written
    assert written[-1].endswith("cbmon: stopped")
    assert list(state.glob("alerts-*.json"))  # the alert state is on the volume


def _attempts(exposition: str) -> float | None:
    """order_paid's attempts in an exposition; None while it is not one yet."""
    try:
        return samples_of(exposition).get('cbmon_callback_attempts_total{event_type="order_paid"}')
    except ValueError:
        return None


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=3).status_code
    except requests.RequestException:
        return None


def test_the_kubernetes_pod_runs_with_its_volumes_and_probes_pass_under_basic_auth(
    image: str, database: str, tmp_path: Path
) -> None:
    """The Deployment's container as the kubelet would start it: the ConfigMap and the
    filled-in example Secret as read-only files where it mounts them, the emptyDir for
    state, its user, fsGroup, read-only root and dropped capabilities. The probes' paths
    answer without a password; /metrics wants the ServiceMonitor's."""
    filled = fill_secrets(database)
    port = free_port()
    pod = podman_run(image, tmp_path / "volumes", filled, port)
    base = f"http://127.0.0.1:{port}"
    name = f"cbmon-pod-{port}"
    with container(name, [*_socket_mounts(database), *pod.args]):
        wait_for(lambda: _status(base + pod.probes["readinessProbe"]) == 200, timeout=60)
        for probe, path in pod.probes.items():
            assert _status(base + path) == 200, probe
        assert _status(f"{base}/metrics") == 401
        assert _status(f"{base}/api/v1/status") == 401
        credentials = (filled.scrape_user, filled.scrape_password)
        _insert(database, 7)

        def counted() -> bool:
            reply = requests.get(f"{base}/metrics", auth=credentials, timeout=3)
            return reply.status_code == 200 and _attempts(reply.text) == 7

        wait_for(counted, timeout=30)
        # Deleting the pod: SIGTERM, then at most terminationGracePeriodSeconds.
        podman("stop", "--time", str(pod.grace), name)
        (inspected,) = json.loads(podman("inspect", name))
        written = logs(name)
    assert inspected["State"]["ExitCode"] == 0, written
    records = [json.loads(line) for line in written]  # CBMON_LOG_FORMAT=json
    assert records[-1]["msg"] == "stopped"
    assert filled.scrape_password not in "\n".join(written)
    assert list((tmp_path / "volumes" / "state").glob("alerts-*.json"))
