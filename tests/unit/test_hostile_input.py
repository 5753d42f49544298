"""No input crashes cbmon: generated configurations, durations, DSNs and arguments each end
in one line naming what is wrong and a non-zero exit, never a traceback, and never show a
password, whatever shape the DSN has."""

from __future__ import annotations

import logging
import os
import string
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbmon import secrets
from cbmon.cli import main
from cbmon.config import load_config
from cbmon.durations import parse_duration
from cbmon.errors import ConfigError

PASSWORD = "Pw-S3cret"  # every generated DSN hides this somewhere; it must never be shown
CLOSED = "127.0.0.1:9"  # nothing listens there: connecting fails at once


def run(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """``cbmon ARGS`` through the console entry point: the exit code and all it printed."""
    for name in list(os.environ):
        if name.startswith("CBMON_") and name != "CBMON_STATE_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "argv", ["cbmon", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    code = exited.value.code
    return code if isinstance(code, int) else 1, out.out + out.err


def dsn_shapes() -> st.SearchStrategy[str]:
    """DSNs as people get them wrong: spaces, unencoded @ and :, quotes, key/value or URI."""
    noise = st.text(alphabet=string.ascii_letters + string.digits + " @:/'\"=%?&#\\", max_size=6)
    password = st.builds(lambda a, b: a + PASSWORD + b, noise, noise)
    uri = st.builds(
        lambda scheme, user, pw, host, db: f"{scheme}://{user}:{pw}@{host}/{db}",
        st.sampled_from(["postgresql", "postgres", "pg", "postgresql+psycopg"]),
        st.sampled_from(["u", "cbmon", "a b"]),
        password,
        st.sampled_from([CLOSED, "127.0.0.1:99999", "", "h ost"]),
        st.sampled_from(["db", "", "d b"]),
    )
    keyvalue = st.builds(
        lambda pw, quote, host: f"host={host} port=9 password={quote}{pw}{quote} dbname=x",
        password,
        st.sampled_from(["", "'"]),
        st.sampled_from(["127.0.0.1", "", "h ost"]),
    )
    return st.one_of(uri, keyvalue)


@settings(
    max_examples=int(os.environ.get("CBMON_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(dsn=dsn_shapes(), command=st.sampled_from(["check", "report", "schema-apply"]))
def test_no_dsn_shows_its_password(
    dsn: str,
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    args = {
        "check": ["check", "--dsn", dsn, "--timeout", "2s"],
        "report": ["report", "--dsn", dsn],
        "schema-apply": ["schema", "apply", "--dsn", dsn],
    }[command]
    with caplog.at_level(logging.DEBUG):
        code, shown = run(args, monkeypatch, capsys)
    assert code != 0
    assert "Traceback" not in shown
    for text in (shown, caplog.text):
        assert PASSWORD not in text
        assert PASSWORD[:6] not in text  # nor the start of it, cut by a parser


def test_a_password_with_an_unencoded_at_leaks_no_tail(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, shown = run(["check", "--dsn", f"postgresql://u:p@{PASSWORD}@{CLOSED}/db"],
                      monkeypatch, capsys)  # fmt: skip
    assert code == 3
    assert PASSWORD not in shown
    assert "unencoded @" in shown


@settings(max_examples=int(os.environ.get("CBMON_HYPOTHESIS_EXAMPLES", "200")), deadline=None)
@given(st.text(max_size=30))
def test_any_text_is_a_duration_or_one_clear_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        message = str(exc)
    else:
        assert 0 <= seconds <= 100 * 365 * 86400
        return
    assert "\n" not in message


YAML_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["0s", "-1s", "1000000000y", "1e400", "99.5%", "http://h:99999/x", "5"]),
    st.lists(st.text(max_size=5), max_size=3),
)
KEYS = st.sampled_from(
    [
        ("listen",), ("poll_interval",), ("max_event_types",), ("max_execution_time",),
        ("database", "statement_timeout"), ("database", "dsn_file"), ("reader", "batch_size"),
        ("tables", "logs", "table"), ("tables", "logs", "success_statuses"),
        ("thresholds", "success_rate", "normal"), ("thresholds", "avg_latency", "alert"),
        ("thresholds", "backlog", "alert"), ("slo", "window"), ("slo", "min_events"),
        ("alerting", "webhooks"), ("alerting", "timeout"), ("alerting", "secret_file"),
        ("alerting", "state_dir"), ("nonsense",),
    ]
)  # fmt: skip


def nest(path: tuple[str, ...], value: object) -> dict[str, object]:
    for key in reversed(path):
        value = {key: value}
    assert isinstance(value, dict)
    return value


@settings(max_examples=int(os.environ.get("CBMON_HYPOTHESIS_EXAMPLES", "300")), deadline=None)
@given(KEYS, YAML_VALUES)
def test_any_value_at_any_key_loads_or_is_one_line_naming_the_key(
    path: tuple[str, ...], value: object
) -> None:
    try:
        load_config(overrides=nest(path, value), environ={})
    except ConfigError as exc:
        message = str(exc)
        assert path[-1] in message or path[0] in message
        assert "Traceback" not in message


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe poll_interval: 5s\n", "not UTF-8"),
        (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested more than"),
        (b"a: " + b"{b: " * 3000 + b"1" + b"}" * 3000 + b"\n", "nested more than"),
        (b"x" * (2 << 20), "larger than"),
        (b"poll_interval: 1000000000y\n", "longer than 100y"),
        (b"alerting: {webhooks: ['http://h:99999/x']}\n", "port outside 1..65535"),
    ],
)
def test_hostile_config_files_are_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    needle: str,
) -> None:
    path = tmp_path / "c.yml"
    path.write_bytes(content)
    code, shown = run(["config", "check", str(path)], monkeypatch, capsys)
    assert code == 2
    assert "Traceback" not in shown
    (line,) = shown.splitlines()
    assert needle in line


@pytest.mark.parametrize("key", ["database.dsn_file", "alerting.secret_file"])
def test_a_binary_secret_file_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key: str,
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"\x00\xff\xfe" + PASSWORD.encode("utf-16"))
    section, name = key.split(".")
    config = tmp_path / "c.yml"
    config.write_text(f"{section}: {{{name}: {secret}}}\n")
    code, shown = run(["check", "--config", str(config)], monkeypatch, capsys)
    assert code == 3
    (line,) = shown.splitlines()
    assert key in line
    assert "not UTF-8" in line


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--since", "100000y"],
        ["report", "--since", "1000000000y"],
        ["check", "--window", "99999999999999999999y"],
        ["serve", "--poll-interval", "1000000000y"],
        ["report", "--from", "99999-01-01"],
    ],
)
def test_absurd_arguments_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, shown = run([*args, "--dsn", f"postgresql://u@{CLOSED}/db"], monkeypatch, capsys)
    assert code in (2, 3)
    assert "Traceback" not in shown
    assert len(shown.splitlines()) == 1


def test_remembered_secrets_are_masked_in_any_text() -> None:
    secrets.remember("tok-123456")
    secrets.remember_url("https://hooks.example/services/T000/B000/XYZSECRET?k=v")
    text = "posting to https://hooks.example/services/T000/B000/XYZSECRET?k=v with tok-123456"
    assert "XYZSECRET" not in secrets.scrub(text)
    assert "tok-123456" not in secrets.scrub(text)
    assert "hooks.example" in secrets.scrub(text)  # the host stays: it names the receiver
    secrets.remember_url("http://127.0.0.1:8080/hook?token=Tok3n-Value")
    assert secrets.scrub("webhook sent, token=Tok3n-Value") == "webhook sent, token=***"


ARGUMENT_WORDS = st.sampled_from(
    ["--window", "--since", "--format", "--timeout", "--by", "--from", "--to", "--top",
     "--event-type", "--config", "--schema", "--role", "--fail-on", "--output", "--nope",
     "5", "0s", "-1s", "1000000000y", "json", "csv", "yaml", "1e400", "", "x" * 300,
     "2020-13-45", "\x00", "é", "--", "-", "/dev/null", "/nonexistent/c.yml"]
)  # fmt: skip


@settings(
    max_examples=int(os.environ.get("CBMON_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    command=st.sampled_from(
        [["check"], ["report"], ["config", "check"], ["schema", "print"], ["schema", "audit"]]
    ),
    words=st.lists(ARGUMENT_WORDS, max_size=6),
)
def test_any_arguments_end_in_an_exit_code_never_a_traceback(
    command: list[str],
    words: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [*command, *words]
    if command != ["config", "check"] and command != ["schema", "print"]:
        args += ["--dsn", f"postgresql://u@{CLOSED}/db"]
    code, shown = run(args, monkeypatch, capsys)
    assert "Traceback" not in shown
    if code not in (0, 1):  # an error (2, 3, 4) is one line
        assert len([line for line in shown.splitlines() if line.strip()]) == 1, shown
