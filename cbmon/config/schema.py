"""The configuration's shape: every key, its type, default and checks (pydantic models with
``extra="forbid"``), and :class:`Config`, what cbmon runs with. Loading it from a file, the
environment and flags is :mod:`cbmon.config.load`'s; the judge's plain values are
:attr:`Config.baseline`.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from cbmon.db.connect import database_label
from cbmon.domain import BUCKETS
from cbmon.durations import format_duration, parse_duration
from cbmon.errors import ConfigError
from cbmon.slo import objectives

DSN_ENV = "CBMON_DSN"
WEBHOOK_SECRET_ENV = "CBMON_WEBHOOK_SECRET"  # noqa: S105 - the variable's name, not a secret
CLUSTER_SECRET_ENV = "CBMON_CLUSTER_SECRET"  # noqa: S105 - the variable's name, not a secret
DRIVER_ENV = "CBMON_DB_DRIVER"  # psycopg or gaussdb, when the file does not say
PRIMARY_DSN_ENV = "CBMON_PRIMARY_DSN"


def _seconds(value: object) -> float:
    """Durations are strings the Prometheus way; a bare number is refused to avoid unit doubt."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a duration such as 500ms, 5s, 1m or 24h")
    if isinstance(value, int | float):
        if value == 0:
            return 0.0
        raise ValueError(f"{value!r} has no unit; write it the Prometheus way, e.g. 5s or 500ms")
    return parse_duration(value)


def _ratio(value: object) -> float:
    """A ratio from 0 to 1, also accepted as a percentage string such as ``99.5%``."""
    if isinstance(value, str):
        text = value.strip()
        try:
            # 99.9% is 0.999, not 0.9990000000000001: divide in decimal, round once.
            number = float(Decimal(text[:-1]) / 100) if text.endswith("%") else float(text)
        except (ValueError, ArithmeticError):
            raise ValueError(f"{value!r} is not a ratio such as 0.995 or 99.5%") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError("must be a ratio such as 0.995 or 99.5%")
    if not 0 <= number <= 1:
        raise ValueError(f"{value!r} is outside 0..1 (0% to 100%)")
    return number


def _url(value: str) -> str:
    """An http(s) URL with a host and a valid port. The message never repeats the URL: its
    path or authority often holds a token."""
    parts = urllib.parse.urlsplit(value)
    spaced = any(c.isspace() for c in value)
    if parts.scheme not in ("http", "https") or not parts.hostname or spaced:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port outside 1..65535 or that is not a number") from None
    if port == 0:
        raise ValueError("has a port outside 1..65535 or that is not a number")
    return value


def default_state_dir() -> Path:
    """Where cbmon keeps its alert state unless told: ``CBMON_STATE_DIR``, else systemd's
    StateDirectory, else /var/lib/cbmon for root and the XDG state directory for others."""
    if os.environ.get("CBMON_STATE_DIR"):
        return Path(os.environ["CBMON_STATE_DIR"])
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib/cbmon")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cbmon"


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be above 0s: a timeout or an interval of 0 would disable it")
    return seconds


def _at_most_a_day(seconds: float) -> float:
    if seconds > 86400:
        raise ValueError("must be at most 1d")
    return seconds


# A duration that must be above zero: a timeout or an interval of 0 would disable something.
Positive = Annotated[float, BeforeValidator(_seconds), AfterValidator(_positive)]
# How often something is done or how long to wait for it: a day at most.
Interval = Annotated[
    float, BeforeValidator(_seconds), AfterValidator(_positive), AfterValidator(_at_most_a_day)
]
Ratio = Annotated[float, BeforeValidator(_ratio)]


def _identifier(name: str) -> str:
    """PostgreSQL cuts names at 63 bytes (not characters) without a word: refuse instead."""
    if len(name.encode("utf-8")) > 63:
        raise ValueError(f"{name[:20]!r}... is longer than the 63 bytes PostgreSQL keeps")
    if "\x00" in name:
        raise ValueError("a name cannot hold a NUL character")
    return name


Name = Annotated[str, Field(min_length=1), AfterValidator(_identifier)]


def _path(path: Path) -> Path:
    if "\x00" in str(path) or not str(path).strip():
        raise ValueError("must be a file or directory path")
    return path


FilePath = Annotated[Path, AfterValidator(_path)]
Url = Annotated[str, AfterValidator(_url)]
_LISTEN = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]*):(?P<port>\d{1,5})$")


def _listen(text: str) -> str:
    parse_listen(text)
    return text


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9863`` for IPv6; an empty host means every interface)."""
    match = _LISTEN.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:9863 or :9863")
    port = int(match["port"])
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    host = match["host"].strip("[]") or "0.0.0.0"  # noqa: S104
    return host, port


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LogsTable(_Model):
    """The attempt log: one row per delivery attempt."""

    table_schema: Name = Field("public", alias="schema")
    table: Name = "callback_logs"
    id: Name = "id"
    event_type: Name = "event_type"
    status: Name = "status"
    execution_time: Name = "execution_time"
    created_at: Name = "created_at"
    success_statuses: tuple[str, ...] = Field(("COMPLETED",), min_length=1)
    execution_time_unit: Literal["ms", "s"] = "ms"
    # The callback lifecycle: which queue row an attempt is for, and its number (1 first);
    # the HTTP status and the receiver. null (or a column the table lacks) switches off what
    # needs it (docs/configuration.md#callbacks).
    queue_id: Name | None = "queue_id"
    attempt: Name | None = "attempt"
    http_status: Name | None = "http_status"
    target: Name | None = "target"


class ErrorsTable(_Model):
    """The error table: one row per recorded failure."""

    table_schema: Name = Field("public", alias="schema")
    table: Name = "callback_errors"
    id: Name = "id"
    event_type: Name = "event_type"
    error_message: Name = "error_message"
    created_at: Name = "created_at"


class QueueTable(_Model):
    """The queue: rows whose ``processed_at`` is NULL are waiting (the backlog)."""

    table_schema: Name = Field("public", alias="schema")
    table: Name = "callback_queue"
    id: Name = "id"
    event_type: Name = "event_type"
    created_at: Name = "created_at"
    processed_at: Name = "processed_at"
    # States of waiting rows: a lease (in flight, stuck past it), a retry's due time, and the
    # final outcome ('delivered' or 'dead'). null (or absent) leaves the states out.
    locked_until: Name | None = "locked_until"
    next_attempt_at: Name | None = "next_attempt_at"
    outcome: Name | None = "outcome"


class Tables(_Model):
    logs: LogsTable = LogsTable()
    errors: ErrorsTable = ErrorsTable()
    queue: QueueTable = QueueTable()


class SuccessRateThreshold(_Model):
    """Higher is better: ok above ``normal``, critical below ``alert``."""

    normal: Ratio = 0.995
    alert: Ratio = 0.99

    @model_validator(mode="after")
    def _ordered(self) -> SuccessRateThreshold:
        if self.normal < self.alert:
            raise ValueError(
                f"normal ({self.normal:g}) must not be below alert ({self.alert:g}): "
                "a success rate is ok above normal and critical below alert"
            )
        return self


class LatencyThreshold(_Model):
    """Lower is better: ok below ``normal``, critical above ``alert`` (average latency)."""

    normal: Seconds = 0.150
    alert: Seconds = 0.500

    @model_validator(mode="after")
    def _ordered(self) -> LatencyThreshold:
        if self.normal > self.alert:
            raise ValueError(
                f"normal ({format_duration(self.normal)}) must not be above alert "
                f"({format_duration(self.alert)})"
            )
        return self


class BacklogThreshold(_Model):
    """Lower is better: ok below ``normal`` waiting items, critical above ``alert``."""

    normal: Annotated[int, Field(ge=0, strict=True)] = 1000
    alert: Annotated[int, Field(ge=0, strict=True)] = 5000

    @model_validator(mode="after")
    def _ordered(self) -> BacklogThreshold:
        if self.normal > self.alert:
            raise ValueError(f"normal ({self.normal}) must not be above alert ({self.alert})")
        return self


class ShareThreshold(_Model):
    """Lower is better, as a share: ok below ``normal``, critical above ``alert``."""

    normal: Ratio = 0.05
    alert: Ratio = 0.20

    @model_validator(mode="after")
    def _ordered(self) -> ShareThreshold:
        if self.normal > self.alert:
            raise ValueError(f"normal ({self.normal:g}) must not be above alert ({self.alert:g})")
        return self


class EndToEndThreshold(LatencyThreshold):
    """Queued to delivered, retries included (p95): ok below ``normal``, critical above."""

    normal: Seconds = 1.0
    alert: Seconds = 5.0


class DeadLettersThreshold(_Model):
    """Dead letters in the window: a warning from ``normal`` on, critical above ``alert``
    (none by default: every dead letter is a warning)."""

    normal: Annotated[int, Field(ge=1, strict=True)] = 1
    alert: Annotated[int, Field(ge=1, strict=True)] | None = None


class Thresholds(_Model):
    """The operators' baseline. Between ``normal`` and ``alert`` lies the warning band."""

    success_rate: SuccessRateThreshold = SuccessRateThreshold()
    avg_latency: LatencyThreshold = LatencyThreshold()
    backlog: BacklogThreshold = BacklogThreshold()
    slow_callback: Seconds = 0.200
    # Callbacks, not attempts (docs/alerting.md#callbacks).
    callback_success_rate: SuccessRateThreshold = SuccessRateThreshold()
    dead_letters: DeadLettersThreshold = DeadLettersThreshold()
    end_to_end_p95: EndToEndThreshold = EndToEndThreshold()
    slow_share: ShareThreshold = ShareThreshold()


class EventRetries(_Model):
    max_retries: Annotated[int, Field(ge=0, le=100, strict=True)]


class Callbacks(_Model):
    """How callbacks end: after ``max_retries`` retries a failed callback is dead (a dead
    letter); ``event_types`` sets other numbers for single event types."""

    max_retries: Annotated[int, Field(ge=0, le=100, strict=True)] = 3
    event_types: dict[str, EventRetries] = {}


class Slo(_Model):
    """How the sidecar judges the baseline: over a sliding window, held for ``for``."""

    window: Positive = 300.0
    for_: Seconds = Field(60.0, alias="for")
    min_events: Annotated[int, Field(ge=0, strict=True)] = 20
    # Rows dated further ahead of the database's clock are left out of time-based reads.
    clock_skew: Seconds = 60.0
    # CallbackTrafficAbsent: no attempt logged for this long is a warning; 0s switches it off.
    traffic_absent_after: Seconds = 0.0


class Alerting(_Model):
    """Where alert notifications go. Secrets never live in this file, only their files."""

    webhooks: tuple[Url, ...] = ()
    alertmanagers: tuple[Url, ...] = ()
    secret_file: FilePath | None = None
    # For each attempt's whole exchange: connecting, TLS, sending, the status line, the body.
    timeout: Interval = 5.0
    # CAs (PEM) trusted for https receivers instead of the default ones: a private CA.
    ca_file: FilePath | None = None
    max_retries: Annotated[int, Field(ge=0, le=10, strict=True)] = 3
    repeat_interval: Positive = 4 * 3600.0
    # Replicas with the same cluster name and secret elect one webhook sender among them.
    cluster: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_.-]+$")] = (
        "cbmon"
    )
    cluster_secret_file: FilePath | None = None
    state_dir: FilePath = Field(default_factory=default_state_dir)
    # Alertmanager: how often a firing alert is sent again (its endsAt is 4 of these ahead),
    # and how long a resolved one keeps being sent (and re-sent by a replica taking over).
    resend_interval: Interval = 60.0
    resolved_retention: Positive = 15 * 60.0


class Wake(_Model):
    """Polling at once when the database says rows were committed (``cbmon schema apply
    --wake`` installs the trigger that says so); ``poll_interval`` stays the fallback."""

    listen: bool = True
    # However many notifications arrive, polls they cause are at least this far apart.
    min_interval: Positive = 0.2


def _database_name(name: str) -> str:
    """A name that reads well as a label value and in a URL path: no spaces or slashes."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}", name):
        raise ValueError(
            f"{name[:20]!r} is not a database name: 1 to 63 letters, digits, _ . : or -, "
            "starting with a letter or digit"
        )
    return name


DatabaseName = Annotated[str, AfterValidator(_database_name)]


class Database(_Model):
    # The database label of every series, page, API answer and alert; without it, the
    # DSN's host:port/dbname.
    name: DatabaseName | None = None
    dsn_file: FilePath | None = None
    # When the DSN reaches a hot standby (or a pooler in transaction mode): a connection to
    # the primary, for the fence of open gaps, the leader lock and LISTEN. Keep its password
    # out of this file (~/.pgpass, primary_dsn_file or CBMON_PRIMARY_DSN).
    primary_dsn: str | None = Field(default=None, repr=False)
    primary_dsn_file: FilePath | None = None
    statement_timeout: Interval = 5.0
    connect_timeout: Interval = 5.0
    # psycopg (stock libpq), or Huawei's gaussdb driver for openGauss/GaussDB sha256 logins
    driver: Literal["psycopg", "gaussdb"] = "psycopg"


class Reader(_Model):
    """How the incremental reader walks the log and error tables."""

    batch_size: Annotated[int, Field(ge=1, strict=True)] = 1_000_000
    startup_gap_scan: Annotated[int, Field(ge=0, strict=True)] = 10_000
    # The newest rows remembered per table, to tell after a truncate or a failover which rows
    # are still the ones counted: a failover that lost more than this many is inexact.
    history_rows: Annotated[int, Field(ge=1, le=1_000_000, strict=True)] = 10_000
    # On a hot standby without database.primary_dsn: how long a gap is held before it is
    # given up (a transaction committing later than this after taking its id is missed).
    standby_gap_hold: Positive = 3600.0


class Target(_Model):
    """An objective over a period: ``target`` of the events good over ``period``."""

    target: Ratio
    period: Annotated[float, BeforeValidator(_seconds), AfterValidator(_positive)] = 30 * 86400.0
    # latency only: an attempt is good when its duration is at or below this
    threshold: Seconds | None = None


def _bucket(seconds: float | None) -> float | None:
    if seconds is not None and seconds not in BUCKETS:
        bounds = ", ".join(format_duration(b) for b in BUCKETS)
        raise ValueError(
            f"{format_duration(seconds)} is not a bucket bound of the duration histogram "
            f"({bounds}): the budget must be exact from the histogram"
        )
    return seconds


class LatencyTarget(Target):
    threshold: Annotated[Seconds, AfterValidator(_bucket)] = 0.5


class EventTargets(_Model):
    success_rate: Target | None = None
    latency: LatencyTarget | None = None


class Objectives(_Model):
    """Objectives over a period with their error budgets: the success rate's is on by
    default (99.5 % of callback attempts over 30 days), the latency's when given (a share of
    attempts at or below a duration). ``event_types`` sets others for single event types."""

    success_rate: Target | None = Target(target=0.995)
    latency: LatencyTarget | None = None
    event_types: dict[str, EventTargets] = {}


# Keys of the file a fleet's target cannot set: one process has one of each.
PROCESS_KEYS = ("listen", "web_config_file", "targets")


class FleetTarget(BaseModel):
    """One database of a fleet (``targets:``): its name and DSN; every other key is a key of
    the file, merged over the top level's (:func:`cbmon.config.load.load_config` checks them
    as such)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: DatabaseName
    dsn: str | None = Field(default=None, repr=False)
    dsn_file: FilePath | None = None


class NotifyQueueThreshold(_Model):
    normal: Ratio = 0.5
    alert: Ratio = 0.9

    @model_validator(mode="after")
    def _ordered(self) -> NotifyQueueThreshold:
        if self.alert < self.normal:
            raise ValueError("alert must be at or above normal (higher usage is worse)")
        return self


class MechanismListener(_Model):
    """A session that LISTENs on ``channel``, found by its ``application_name``."""

    channel: str
    application_name: str


class Mechanism(_Model):
    """The callback mechanism's own health inside the database (docs/metrics.md#the-mechanism):
    each source probed at start and every ``interval``; a source absent is off."""

    enabled: bool = True
    interval: Interval = 60.0
    # Where callback_router and callback_limits live; the queue's schema unless told.
    mechanism_schema: Name | None = Field(None, alias="schema")
    listeners: tuple[MechanismListener, ...] = (
        MechanismListener(channel="callback_queue", application_name="cbmon-worker"),
    )
    notify_queue_usage: NotifyQueueThreshold = NotifyQueueThreshold()
    # A scheduler job with no success for this many of its intervals is critical.
    missed_runs: Annotated[int, Field(ge=1, le=1000, strict=True)] = 3


class FileConfig(_Model):
    """The YAML file's shape; every key is optional."""

    listen: Annotated[str, AfterValidator(_listen)] = "0.0.0.0:9863"
    # TLS and basic authentication for the HTTP endpoints, in the exporter-toolkit format.
    web_config_file: FilePath | None = None
    poll_interval: Interval = 5.0
    wake: Wake = Wake()
    max_event_types: Annotated[int, Field(ge=1, strict=True)] = 500
    max_event_type_length: Annotated[int, Field(ge=16, le=1024, strict=True)] = 128
    max_execution_time: Seconds = 3600.0
    database: Database = Database()
    reader: Reader = Reader()
    tables: Tables = Tables()
    thresholds: Thresholds = Thresholds()
    callbacks: Callbacks = Callbacks()
    slo: Slo = Slo()
    objectives: Objectives = Objectives()
    alerting: Alerting = Alerting()
    mechanism: Mechanism = Mechanism()
    # Several databases in one process, each polled on its own (docs/configuration.md#fleet).
    targets: tuple[FleetTarget, ...] = ()


class Config(_Model):
    """Everything cbmon runs with: the file's values plus the DSN and secret resolved."""

    file: FileConfig = FileConfig()
    dsn: str | None = Field(default=None, repr=False)
    primary_dsn: str | None = Field(default=None, repr=False)
    webhook_secret: str | None = Field(default=None, repr=False)
    cluster_secret: str | None = Field(default=None, repr=False)
    source: str = "defaults"
    # With ``targets:`` in the file: one configuration per database, in the file's order.
    fleet: tuple[Config, ...] = ()

    @property
    def database(self) -> str:
        """The ``database`` label: the configured name, else host:port/dbname (no secrets)."""
        if self.file.database.name is not None:
            return self.file.database.name
        return database_label(self.dsn or "")

    # Short-hands so callers do not walk the tree for the common values.
    @property
    def tables(self) -> Tables:
        return self.file.tables

    @property
    def thresholds(self) -> Thresholds:
        return self.file.thresholds

    @property
    def baseline(self) -> objectives.Baseline:
        """What the judge, the wording and the rules need, as plain values (the one place the
        configuration is turned into them)."""
        file = self.file
        t = file.thresholds
        limits = {
            objectives.SUCCESS_RATE.slo: objectives.Limits(
                t.success_rate.normal, t.success_rate.alert
            ),
            objectives.AVG_LATENCY.slo: objectives.Limits(
                t.avg_latency.normal, t.avg_latency.alert
            ),
            objectives.BACKLOG.slo: objectives.Limits(
                float(t.backlog.normal), float(t.backlog.alert)
            ),
            objectives.TRAFFIC.slo: objectives.Limits(file.slo.traffic_absent_after),
            objectives.CALLBACK_SUCCESS_RATE.slo: objectives.Limits(
                t.callback_success_rate.normal, t.callback_success_rate.alert
            ),
            objectives.DEAD_LETTERS.slo: objectives.Limits(
                float(t.dead_letters.normal),
                None if t.dead_letters.alert is None else float(t.dead_letters.alert),
            ),
            objectives.END_TO_END_P95.slo: objectives.Limits(
                t.end_to_end_p95.normal, t.end_to_end_p95.alert
            ),
            objectives.SLOW_SHARE.slo: objectives.Limits(t.slow_share.normal, t.slow_share.alert),
            **objectives.mechanism_limits(
                file.mechanism.notify_queue_usage.normal, file.mechanism.notify_queue_usage.alert
            ),
        }
        return objectives.Baseline(
            limits=limits,
            window=file.slo.window,
            for_=file.slo.for_,
            min_events=file.slo.min_events,
            slow_callback=t.slow_callback,
            targets=_targets(file.objectives.success_rate, file.objectives.latency),
            event_targets={
                name: _targets(own.success_rate, own.latency)
                for name, own in file.objectives.event_types.items()
            },
        )

    def require_dsn(self) -> str:
        if not self.dsn and self.fleet:
            names = ", ".join(target.database for target in self.fleet)
            raise ConfigError(
                f"the configuration lists several databases ({names}): pass --dsn for one, "
                "or ask the running serve with --from-url http://HOST:PORT/databases/NAME/"
            )
        if not self.dsn:
            raise ConfigError(
                f"no database given: pass --dsn, set {DSN_ENV}, or set database.dsn_file"
            )
        return self.dsn


def _targets(success: Target | None, latency: Target | None) -> dict[str, objectives.Target]:
    found: dict[str, objectives.Target] = {}
    for slo, target in (("success_rate", success), ("latency", latency)):
        if target is not None:
            found[slo] = objectives.Target(target.target, target.period, target.threshold)
    return found
