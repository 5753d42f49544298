"""Loading the configuration: a YAML file, environment variables and flags, validated into
frozen values (:mod:`cbmon.config.schema`).

Precedence, lowest first: built-in defaults (the reference schema and the operators' baseline),
the YAML file, environment variables (``CBMON_DSN``, ``CBMON_WEBHOOK_SECRET``), then flags.
Every problem becomes one line that names the key, raised as :class:`ConfigError` (exit 2).
Loading registers nothing: what it found that must be masked is :func:`secrets_of`'s answer,
which the caller hands to :func:`cbmon.secrets.learn`.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import conninfo
from pydantic import ValidationError

from cbmon import secrets
from cbmon.config.schema import (
    CLUSTER_SECRET_ENV,
    DRIVER_ENV,
    DSN_ENV,
    PRIMARY_DSN_ENV,
    PROCESS_KEYS,
    WEBHOOK_SECRET_ENV,
    Config,
    FileConfig,
)
from cbmon.delivery import signing
from cbmon.errors import ConfigError

# Keys earlier versions accepted, with what to do about them.
_RETIRED: dict[tuple[int | str, ...], str] = {
    ("reader", "gap_grace"): (
        "no longer used: open gaps are now given up when the transactions that could fill "
        "them have ended, with no waiting time; remove the key"
    ),
}


def _location(loc: Sequence[int | str]) -> str:
    return ".".join("for" if part == "for_" else str(part) for part in loc) or "(top level)"


def _flatten(error: ValidationError, source: str) -> ConfigError:
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = _RETIRED.get(tuple(item["loc"]), "unknown key")
        lines.append(f"{source}: {_location(item['loc'])}: {message}")
    return ConfigError("\n".join(lines))


MAX_CONFIG_BYTES = 1 << 20  # a configuration is a few hundred lines, never a megabyte
MAX_NESTING = 20  # the deepest key is three levels down; YAML nested 5,000 deep is an attack


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB; not a config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    _check_nesting(path, text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): must be a mapping of keys to values")
    return data


def _check_nesting(path: Path, text: str) -> None:
    """Refuse YAML nested deeper than any configuration, before the parser recurses on it."""
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise ConfigError(f"{path}: nested more than {MAX_NESTING} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return  # safe_load reports it, with its line


def _read_secret_file(path: Path, key: str) -> str:
    """A file holding one secret (a DSN, a signing secret): UTF-8 text, one line, small."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(65537)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > 65536:
        raise ConfigError(f"{key}: {path} is larger than 64 KiB; not a secret file")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from None
    if "\x00" in value or "\n" in value:
        raise ConfigError(f"{key}: {path} must hold one line of text")
    return value


def _check_ca_file(path: Path) -> None:
    """One line now, rather than every delivery failing later."""
    try:
        ssl.create_default_context(cafile=str(path))
    except OSError as exc:  # ssl.SSLError is one too: test it first
        if isinstance(exc, ssl.SSLError):
            raise ConfigError(
                f"alerting.ca_file: {path} holds no PEM certificate that can be read"
            ) from None
        raise ConfigError(f"alerting.ca_file: cannot read {path}: {exc.strerror or exc}") from None


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def check_dsn(dsn: str, source: str) -> None:
    """One line naming what is wrong with a DSN, never a character of it: the driver's own
    parse errors quote the text, password included."""
    hint = "percent-encode special characters in a URI (%20 for a space, %40 for @)"
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except (psycopg.ProgrammingError, UnicodeDecodeError, ValueError):
        raise ConfigError(
            f"{source}: not a valid libpq connection string or URI ({hint}); "
            "it is not shown here, as it may hold a password"
        ) from None
    if "@" in str(params.get("host") or "") or "@" in str(params.get("dbname") or ""):
        raise ConfigError(
            f"{source}: the URI has an unencoded @ ({hint}); "
            "it is not shown here, as it may hold a password"
        )
    ports = str(params.get("port") or "")
    if ports and not all(port.strip().isdigit() for port in ports.split(",")):
        raise ConfigError(
            f"{source}: the port is not a number (a password holding / ? # or @ must be "
            "percent-encoded); it is not shown here, as it may hold a password"
        )


def load_config(
    path: Path | str | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    dsn: str | None = None,
    webhook_secret: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the :class:`Config` from a file, flag ``overrides`` (file-shaped) and the environment.

    ``overrides`` use the file's keys (``{"slo": {"window": "10m"}}``), so a flag is checked by
    the same rules as the key it stands for and its error names that key.
    """
    env = os.environ if environ is None else environ
    top = _load_one(path, overrides=overrides, dsn=dsn, webhook_secret=webhook_secret, env=env)
    if not top.file.targets:
        return top
    fleet = _fleet(top, path, overrides or {}, webhook_secret, env)
    return top.model_copy(update={"fleet": fleet})


def _fleet(
    top: Config,
    path: Path | str | None,
    overrides: Mapping[str, Any],
    webhook_secret: str | None,
    env: Mapping[str, str],
) -> tuple[Config, ...]:
    """One configuration per target: the top level's keys with the target's merged over them
    (flags over both), its own DSN and the name as ``database.name``."""
    base = dict(_read_yaml(Path(path))) if path is not None else {}
    base.pop("targets", None)
    seen: set[str] = set()
    found = []
    for index, target in enumerate(top.file.targets):
        where = f"{top.source}: targets.{index} ({target.name})"
        if target.name in seen:
            raise ConfigError(f"{where}: name: another target has this name")
        seen.add(target.name)
        own = dict(target.model_extra or {})
        for key in PROCESS_KEYS:
            if key in own:
                raise ConfigError(
                    f"{where}: {key}: one process has one of these; set it at the top level"
                )
        if target.dsn is None and target.dsn_file is None:
            raise ConfigError(f"{where}: dsn: every target needs a dsn or a dsn_file")
        own = _merge(own, {"database": {"name": target.name}})
        if target.dsn_file is not None:
            own = _merge(own, {"database": {"dsn_file": str(target.dsn_file)}})
        found.append(
            _load_one(
                None,
                data=_merge(_merge(base, own), overrides),
                dsn=target.dsn,
                dsn_source=f"{where}: dsn",
                webhook_secret=webhook_secret,
                # the environment's DSNs are the top level's, never a target's
                env={k: v for k, v in env.items() if k not in (DSN_ENV, PRIMARY_DSN_ENV)},
                source=where,
            )
        )
    return tuple(found)


def _load_one(
    path: Path | str | None,
    *,
    overrides: Mapping[str, Any] | None = None,
    dsn: str | None = None,
    dsn_source: str = "--dsn",
    webhook_secret: str | None = None,
    env: Mapping[str, str],
    data: Mapping[str, Any] | None = None,
    source: str = "defaults",
) -> Config:
    if data is None:
        data = {}
    if path is not None:
        source = str(path)
        data = _read_yaml(Path(path))
    if overrides:
        data = _merge(data, overrides)
    database = data.get("database")
    if env.get(DRIVER_ENV) and not (isinstance(database, Mapping) and "driver" in database):
        data = _merge(data, {"database": {"driver": env[DRIVER_ENV]}})
    try:
        file = FileConfig.model_validate(data)
    except ValidationError as exc:
        raise _flatten(exc, source) from None
    if file.alerting.ca_file is not None:
        _check_ca_file(file.alerting.ca_file)
    resolved_dsn = dsn or env.get(DSN_ENV) or None
    dsn_source = dsn_source if dsn else DSN_ENV
    if resolved_dsn is None and file.database.dsn_file is not None:
        resolved_dsn = _read_secret_file(file.database.dsn_file, "database.dsn_file") or None
        dsn_source = "database.dsn_file"
    if resolved_dsn is not None:
        check_dsn(resolved_dsn, dsn_source)
    primary_dsn = env.get(PRIMARY_DSN_ENV) or file.database.primary_dsn or None
    primary_source = PRIMARY_DSN_ENV if env.get(PRIMARY_DSN_ENV) else "database.primary_dsn"
    if primary_dsn is None and file.database.primary_dsn_file is not None:
        path = file.database.primary_dsn_file
        primary_dsn = _read_secret_file(path, "database.primary_dsn_file") or None
        primary_source = "database.primary_dsn_file"
    if primary_dsn is not None:
        check_dsn(primary_dsn, primary_source)
    secret = webhook_secret or env.get(WEBHOOK_SECRET_ENV) or None
    if secret is None and file.alerting.secret_file is not None:
        secret = _read_secret_file(file.alerting.secret_file, "alerting.secret_file") or None
    if secret is not None:
        signing.check_secret(secret)  # one clear line at load, for config check too
    cluster_secret = env.get(CLUSTER_SECRET_ENV) or None
    if cluster_secret is None and file.alerting.cluster_secret_file is not None:
        path = file.alerting.cluster_secret_file
        cluster_secret = _read_secret_file(path, "alerting.cluster_secret_file") or None
    return Config(
        file=file,
        dsn=resolved_dsn,
        primary_dsn=primary_dsn,
        webhook_secret=secret,
        cluster_secret=cluster_secret,
        source=source,
    )


def secrets_of(config: Config) -> secrets.Found:
    """What ``config`` holds that must never be shown: passwords of its DSNs, the signing and
    cluster secrets, the tokens of its receivers' URLs."""
    configs = (config, *config.fleet)
    return secrets.Found(
        values=tuple(
            v for c in configs for v in (c.webhook_secret, c.cluster_secret) if v is not None
        ),
        dsns=tuple(d for c in configs for d in (c.dsn, c.primary_dsn) if d),
        urls=tuple(
            url
            for c in configs
            for url in (*c.file.alerting.webhooks, *c.file.alerting.alertmanagers)
        ),
    )
