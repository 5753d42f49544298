"""Every code block of the README and docs/*.md that can run here is run, as written.

Shell commands run in bash against an embedded PostgreSQL cluster of their own (so
``cbmon schema apply`` may create its role and tables in ``public``),
with the documented placeholders (``postgresql://admin@db/app``, ``:9863``, ``whsec_...``)
replaced by working values (:data:`SUBSTITUTIONS`). ``cbmon serve`` runs until it is ready and
is then stopped with SIGTERM; ``cbmon demo`` runs for a few seconds instead of minutes. YAML
configuration is loaded by cbmon's loader, Prometheus and Alertmanager files are checked by
promtool and amtool, Python examples are executed, JSON is parsed (and the report's JSON
compared with the real output's keys), SQL statements run.

What cannot run here is listed in :data:`NOT_RUN` with the reason: a reviewed list. A block
or command that is neither run nor listed fails the test, and so does a listed one that no
longer exists.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import conninfo

from cbmon.config import load_config
from cbmon.db.embedded import EmbeddedPostgres
from cbmon.delivery import signing
from cbmon.reference import mechanism, schema
from tests.conftest import require_binary
from tests.support.processes import answers, free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CODE = ("sh", "console", "yaml", "python", "json", "sql", "ini")
BIN = Path(sys.executable).parent  # the cbmon, python and pip of this environment

# Reviewed: blocks ("FILE: first line") and commands ("FILE: command") that cannot run here.
NOT_RUN = {
    "README.md: bash scripts/test": "runs the whole test suite, this test among it",
    'README.md: bash scripts/test -m "not slow"': "runs the fast test layers, this one among them",
    "README.md: python3 -m venv .venv && .venv/bin/pip install -e '.[embedded]' && "
    ".venv/bin/cbmon demo --duration 2m": "creates a virtualenv and installs cbmon and its "
    "dependencies from PyPI; the extra it names is checked against pyproject.toml "
    "(test_install_commands_name_extras_that_exist), and `cbmon demo --duration 2m` runs "
    "from docs/demo.md",
    'README.md: eval "$(_CBMON_COMPLETE=zsh_source cbmon)"': "zsh's line, for zsh: "
    "tests/e2e/test_completion.py loads it in a real zsh and checks what it registers",
    "README.md: _CBMON_COMPLETE=fish_source cbmon | source": "fish's line, for fish: "
    "tests/e2e/test_completion.py sources it in a real fish and completes with it",
    "demo.md: python3 -m venv .venv && .venv/bin/pip install -e '.[embedded]'": "installs from "
    "PyPI into a new virtualenv; the extra is checked against pyproject.toml",
    "demo.md: curl -s http://127.0.0.1:9863/metrics | grep -E "
    "'^cbmon_(slo_state|alerts_firing|queue_backlog)'": "needs a demo running; "
    "tests/e2e/test_demo.py scrapes the demo's /metrics the same way",
    "deploy.md: python3 -m venv /opt/cbmon && /opt/cbmon/bin/pip install /path/to/cbmon": (
        "installs into /opt, a system path, from a path that stands for the user's checkout"
    ),
    "deploy.md: # /etc/systemd/system/cbmon.service": "a systemd unit: installing it needs root "
    "and a running systemd",
    "deploy.md: docker build -t cbmon:0.3.0 .": "needs a Docker engine; tests/e2e/test_image.py "
    "builds the same Dockerfile with podman (scripts/build-image --local-base)",
    "deploy.md: docker run -d --name cbmon -p 9863:9863 -v cbmon-state:/var/lib/cbmon -e "
    "CBMON_DSN=postgresql://cbmon@db:5432/app -e CBMON_LOG_FORMAT=json cbmon:0.3.0": "needs a "
    "Docker engine; tests/e2e/test_image.py runs the image with podman, a state volume and every "
    "default, and scrapes it",
    "deploy.md: # overlays/production/kustomization.yaml; then: kubectl apply -k "
    "overlays/production": "a Kustomize overlay of the user's: needs kustomize and a cluster; "
    "tests/integration/test_kubernetes.py checks the base it builds on",
    "mechanism.md: callback_router (": "the shape of a table, not a statement",
    "mechanism.md: callback_limits (bucket_id text PRIMARY KEY, tokens integer, last_refill "
    "timestamptz,": "the shape of a table, not a statement",
    'mechanism.md: {"data": {...payload...}, "timestamp": "<queue created_at, UTC>", "type": '
    '"<event_type>"}': "a shape with placeholders, not a document",
    "performance.md: .venv/bin/python bench/bench_serve.py --rows 10000000 --new 1000000": "a "
    "benchmark over ten million rows: minutes of work, run by hand",
    "performance.md: .venv/bin/python bench/bench_report.py --rows 10000000 --repeat 3": "a "
    "benchmark over ten million rows, run by hand",
    "performance.md: .venv/bin/python bench/bench_reaction.py": "a benchmark of wake-ups and "
    "failover, run by hand",
    "alerting.md: curl -X POST http://127.0.0.1:9863/-/reload": "needs a cbmon serve running "
    "with --web.enable-lifecycle; tests/e2e/test_reload.py posts the same and checks the answer",
    "performance.md: .venv/bin/python bench/bench_delivery.py": "a benchmark of delivery "
    "attempts against hostile receivers, run by hand; tests/integration/test_receivers.py "
    "checks what each attempt ends with",
    "performance.md: .venv/bin/python bench/bench_serve.py --only breach,cost": "a benchmark of "
    "alert reaction and database cost under load, run by hand",
    "performance.md: .venv/bin/python bench/bench_serve.py --only invisible": "a benchmark that "
    "inserts five million rows in an open transaction, run by hand; "
    "tests/integration/test_invisible_rows.py checks what an idle poll reads meanwhile",
    "demo.md: curl -s http://127.0.0.1:9863/api/v1/alerts": "needs a demo running; "
    "tests/e2e/test_status_page.py and tests/integration/test_status_api.py read the same API",
    "api.md: curl -s http://cbmon:9863/api/v1/status | jq '.alerts[] | {alertname, event_type, "
    "severity, since}'": "needs a cbmon serve reachable as `cbmon`; "
    "tests/integration/test_status_api.py reads every field named here",
    "gaussdb.md: pip install -e '.[gaussdb]'": "installs Huawei's driver into the environment; "
    "the extra is checked against pyproject.toml",
    "gaussdb.md: docker run --name og -d -e GS_PASSWORD='Secret@123' -p 15432:5432 "
    "opengauss/opengauss-server:latest": "needs a Docker engine, which this machine lacks",
    "gaussdb.md: .venv/bin/pytest -m opengauss -p no:cacheprovider": "runs tests of this suite "
    "against the openGauss server started above",
    "prometheus.md: sudo install -D -m 0644 cbmon-traffic.yml "
    "/etc/prometheus/rules/cbmon-traffic.yml": "writes to /etc as root; the promtool checks run "
    "on the repository's alerts-traffic.yml",
    "report.md: .venv/bin/python bench/bench_report.py --rows 10000000 --by hour": "a benchmark "
    "over ten million rows, run by hand",
    "prometheus.md: sudo install -D -m 0644 cbmon-rules.yml /etc/prometheus/rules/cbmon.yml": (
        "writes to /etc as root; the promtool checks after it run on the repository's alerts.yml"
    ),
    "prometheus.md: sudo systemctl reload prometheus": "reloads a system service",
    "prometheus.md: sudo install -D -m 0644 dashboards/provisioning/datasources/"
    "cbmon-prometheus.yml /etc/grafana/provisioning/datasources/cbmon-prometheus.yml": "writes "
    "to /etc as root; tests/integration/test_dashboards.py checks the files",
    "prometheus.md: sudo install -D -m 0644 dashboards/provisioning/dashboards/cbmon.yml "
    "/etc/grafana/provisioning/dashboards/cbmon.yml": "writes to /etc as root",
    "prometheus.md: sudo install -D -m 0644 -t /var/lib/grafana/dashboards/cbmon "
    "dashboards/*.json": "writes to /var/lib as root",
    "prometheus.md: sudo systemctl restart grafana-server": "restarts a system service",
    "prometheus.md: apt-get install prometheus prometheus-alertmanager": "installs system "
    "packages as root (present here already)",
    "prometheus.md: .venv/bin/pytest tests/e2e/test_prometheus.py tests/integration/"
    "test_rules.py tests/integration/test_dashboards.py": "runs tests of this suite",
}
# Placeholders in the docs, and what stands for them here.
SUBSTITUTIONS = {
    "postgresql://admin@db/app": "{admin}",
    "postgresql://cbmon@db/app": "{reader}",
    "postgresql://me@localhost/scratch": "{admin}",
    "127.0.0.1:9863": "127.0.0.1:{port}",
    "--listen :9863": "--listen :{port}",
    "whsec_...": "{secret}",
    "/etc/prometheus/rules/cbmon.yml": "{repo}/alerts.yml",
    "/etc/prometheus/rules/cbmon-traffic.yml": "{repo}/alerts-traffic.yml",
    "/etc/prometheus/prometheus.yml": "{prometheus_yml}",
    "tests/rules/": "{repo}/tests/rules/",
    "--duration 2m": "--duration 6s",  # a demo of a few seconds shows the command works
}
EXIT_CODES = {"check": {0, 1, 2}, "report": {0, 3, 4}, "audit": {0, 1}}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    text: str

    @property
    def key(self) -> str:
        first = next(line for line in self.text.splitlines() if line.strip())
        return f"{self.path.name}: {first.strip()}"

    def commands(self) -> list[str]:
        """Shell commands as a user types them: console lines after ``$``, every sh line;
        continuation lines joined, comments dropped."""
        lines = self.text.splitlines()
        if self.lang == "console":
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        joined = re.sub(r"\\\n\s*", "", "\n".join(lines))
        found = []
        for line in joined.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                found.append(command)
        return found


def _blocks() -> list[Block]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
            if match.group(1) in CODE:
                line = text[: match.start()].count("\n") + 1
                found.append(Block(path, line, match.group(1), match.group(2)))
    return found


BLOCKS = _blocks()


def _of(*langs: str) -> list[Block]:
    """Blocks of these languages, but those listed whole (shell ones are listed by command)."""
    return [
        block
        for block in BLOCKS
        if block.lang in langs and (block.lang in ("sh", "console") or block.key not in NOT_RUN)
    ]


def _command_key(block: Block, command: str) -> str:
    return f"{block.path.name}: {command}"


COMMANDS = [
    (block, command)
    for block in _of("sh", "console")
    for command in block.commands()
    if _command_key(block, command) not in NOT_RUN
]


def test_the_list_of_what_cannot_run_is_not_stale() -> None:
    keys = {block.key for block in BLOCKS}
    keys |= {
        _command_key(b, c) for b in BLOCKS if b.lang in ("sh", "console") for c in b.commands()
    }
    assert sorted(set(NOT_RUN) - keys) == []
    assert all(len(reason) > 20 for reason in NOT_RUN.values())


def test_install_commands_name_extras_that_exist() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    named = [
        extra
        for block in BLOCKS
        for extra in re.findall(r"pip install -e '\.\[([\w,]+)\]'", block.text)
    ]
    assert named, "the docs say how to install cbmon from a clone"
    for extra in named:
        assert set(extra.split(",")) <= set(extras), extra
    assert "pip install 'cbmon[" not in "".join(b.text for b in BLOCKS)  # not on an index


# -- the environment the commands run in ---------------------------------------------------


@dataclass
class Place:
    """Where the documented commands run: their database, files and values."""

    admin: str
    reader: str
    values: dict[str, str]
    env: dict[str, str]
    cwd: Path

    def fill(self, command: str) -> str:
        for placeholder, value in SUBSTITUTIONS.items():
            command = command.replace(placeholder, value)
        quoted = {
            k: shlex.quote(v) if k in ("admin", "reader") else v for k, v in self.values.items()
        }
        # only the names above: a doc's own braces (a jq filter, say) stay as written
        return re.sub(r"\{(\w+)\}", lambda m: quoted.get(m[1], m[0]), command)


SEED = """
INSERT INTO callback_logs (event_type, status, execution_time, created_at)
SELECT (ARRAY['order_paid', 'order_created', 'refund'])[1 + i % 3],
       CASE WHEN i % 61 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
       20 + i % 300, now() - i * interval '37 seconds'
FROM generate_series(1, 20000) AS i;
INSERT INTO callback_errors (event_type, error_message, created_at)
SELECT 'order_paid', 'HTTP 503', now() - i * interval '5 minutes' FROM generate_series(1, 50) AS i;
"""


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    """A PostgreSQL cluster of its own (so ``cbmon schema apply`` may create its role and
    tables in ``public``) with a day of traffic, a configuration file, the documented
    Prometheus file, a fresh signing secret."""
    cwd = tmp_path_factory.mktemp("docs")
    with EmbeddedPostgres(cwd / "pgdata") as server:
        admin = server.dsn
        schema.apply(admin, schema="public", role="cbmon")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(SEED)
        port = free_port()
        config = cwd / "cbmon.yml"
        config.write_text(f"listen: 127.0.0.1:{port}\n", encoding="utf-8")
        prometheus = next(b for b in BLOCKS if b.key == "prometheus.md: # prometheus.yml")
        prometheus_yml = cwd / "prometheus.yml"
        rules = str(REPO / "alerts.yml")
        prometheus_yml.write_text(prometheus.text.replace("/etc/prometheus/rules/cbmon.yml", rules))
        values = {
            "admin": admin,
            "reader": conninfo.make_conninfo(admin, user="cbmon"),
            "port": str(port),
            "secret": signing.new_secret(),
            "repo": str(REPO),
            "prometheus_yml": str(prometheus_yml),
        }
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "CBMON_DSN": values["reader"],
            "CBMON_CONFIG": str(config),
            "XDG_CACHE_HOME": str(cwd / "cache"),  # an embedded demo's data directory
            "CBMON_LOG_LEVEL": "info",
        }
        yield Place(admin, values["reader"], values, env, cwd)


# -- shell ---------------------------------------------------------------------------------


def _exports(command: str, env: dict[str, str]) -> bool:
    """``export NAME=VALUE`` sets the variable for the commands after it."""
    match = re.fullmatch(r"export (\w+)=(\S+)", command)
    if match:
        env[match.group(1)] = shlex.split(match.group(2))[0]
    return match is not None


def _serve(place: Place, command: str, env: dict[str, str]) -> None:
    """``cbmon serve`` until it is ready, then SIGTERM: it must stop cleanly (exit 0)."""
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command}"], cwd=place.cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        ready = f"http://127.0.0.1:{place.values['port']}/readyz"
        wait_for(lambda: answers(ready) or process.poll() is not None, timeout=30, every=0.2)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    if "--listen :" in command:  # every interface: said so, not 127.0.0.1
        assert f"serving http://0.0.0.0:{place.values['port']}/metrics" in err, err


def _run(place: Place, block: Block, command: str, env: dict[str, str]) -> None:
    filled = place.fill(command)
    if _exports(filled, env):
        return
    if re.match(r"(\S*/)?cbmon serve\b", filled):
        _serve(place, filled, env)
        return
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", filled], cwd=place.cwd, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    words = filled.split()
    allowed = next((codes for word, codes in EXIT_CODES.items() if word in words[:3]), {0})
    assert done.returncode in allowed, f"{block.key}\n$ {filled}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr


def _slow(block: Block, command: str) -> bool:
    """Commands that run a process for a while (a demo, a server, promtool over every
    generated test) belong to the slow layer; tests/integration/test_rules.py runs the
    generated tests in the fast one."""
    return any(word in command for word in ("cbmon demo", "cbmon serve", "promtool test rules"))


@pytest.mark.parametrize(
    ("block", "command"),
    [pytest.param(b, c, marks=[pytest.mark.slow] if _slow(b, c) else []) for b, c in COMMANDS],
    ids=[f"{b.path.name}:{b.line}:{c[:40]}" for b, c in COMMANDS],
)
def test_shell_command(place: Place, block: Block, command: str) -> None:
    """Each command as the docs write it; the exports before it in its block apply."""
    env = dict(place.env)
    for earlier in block.commands():
        if earlier == command:
            break
        _exports(place.fill(earlier), env)
    if "promtool" in command:
        require_binary("promtool")
    _run(place, block, command, env)


# -- configuration files -----------------------------------------------------------------------


@pytest.mark.parametrize("block", _of("yaml"), ids=lambda b: f"{b.path.name}:{b.line}")
def test_yaml(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "documented.yml"
    data = yaml.safe_load(block.text)
    if "scrape_configs" in data:
        text = block.text.replace("/etc/prometheus/rules/cbmon.yml", str(REPO / "alerts.yml"))
        path.write_text(text)
        _tool("promtool", "check", "config", str(path))
    elif "route" in data:
        path.write_text(block.text)
        _tool("amtool", "check-config", str(path))
    else:
        # Files a configuration names stand for the user's own; give them a body.
        secret = tmp_path / "secret"
        secret.write_text(signing.new_secret())
        path.write_text(block.text.replace("/run/secrets/cbmon-webhook", str(secret)))
        loaded = load_config(path, environ={})
        assert loaded.file.slo.window > 0


def _tool(name: str, *args: str) -> None:
    done = subprocess.run(
        [require_binary(name), *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- Python, JSON, SQL -------------------------------------------------------------------------


def _python_files() -> list[Path]:
    return sorted({block.path for block in _of("python")})


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: p.name)
def test_python_examples_run(path: Path, place: Place) -> None:
    """A file's Python blocks in order, in one namespace, with the names they take as given
    (``dsn``, ``secret``, a signed request) bound to working values."""
    secret = place.values["secret"]
    body = json.dumps({"alerts": []})
    namespace: dict[str, Any] = {
        "dsn": place.admin,
        "secret": secret,
        "request_body": body,
        "request_headers": signing.sign(secret, "msg_1", None, body),
    }
    before = set(threading.enumerate())
    for block in _of("python"):
        if block.path == path:
            exec(compile(block.text.replace("whsec_...", secret), str(path), "exec"), namespace)  # noqa: S102
    if "stop" in namespace:
        namespace["stop"].set()
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=30)
        assert not thread.is_alive(), thread.name


@pytest.mark.parametrize("block", _of("json"), ids=lambda b: f"{b.path.name}:{b.line}")
def test_json_parses(block: Block, place: Place) -> None:
    documented = json.loads(block.text)
    if block.path.name == "report.md":
        done = subprocess.run(
            [str(BIN / "cbmon"), "report", "--since", "1h", "--format", "json"],
            env=place.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        real = json.loads(done.stdout)
        assert list(documented) == list(real)  # every key documented, in order
        assert list(documented["period"]) == list(real["period"])
        assert list(documented["overall"]) == list(real["overall"])


def test_sql_statements_run(place: Place) -> None:
    """Statements the docs show (not table shapes) run in the reference mechanism."""
    mechanism.apply(place.admin, schema="docs_sql", executor_role="docs_sql_executor")
    with psycopg.connect(place.admin, autocommit=True) as conn:
        conn.execute("SET search_path = docs_sql")
        ran = 0
        for block in _of("sql"):
            conn.execute(block.text)
            ran += 1
    assert ran >= 1
