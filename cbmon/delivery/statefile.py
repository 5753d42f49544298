"""Alert state that survives a restart: one JSON file, replaced atomically.

What is written: each alert's track (firing or not, since when, the last notification and
when it resolved) and the messages still waiting in each webhook outbox. On start the file is
read back, so an alert firing before a restart resolves after it and an undelivered
notification is still delivered.

A write goes to a temporary file in the same directory, is flushed to disk, and replaces the
old file with ``os.replace``, which is atomic on POSIX filesystems (a Kubernetes volume too):
a crash leaves the old file or the new one, never half of one.

A file that cannot be used (unreadable, not UTF-8, not JSON or cut short, the wrong shape, from
another version, a directory in its place) is no reason not to start: it is moved aside as
``<name>.corrupt-<time>``, one warning line names it and what was wrong, and cbmon starts from
what the database and the window tell it. Everything read is checked here, against
:class:`Saved`, before the tracker or the outboxes see it: no content of the file reaches them
unchecked, so none is a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from cbmon.errors import ConfigError
from cbmon.slo.judge import ALERT_NAMES

log = logging.getLogger(__name__)

VERSION = 1
# Ten thousand messages for each of a few receivers fit many times over; anything larger is
# not a file cbmon wrote, and is not read into memory.
MAX_BYTES = 256 << 20
MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z: later is no time a clock shows


def _known_slo(slo: str) -> str:
    if slo not in ALERT_NAMES:
        raise ValueError(f"{slo[:40]!r} is no indicator that alerts")
    return slo


Slo = Annotated[str, AfterValidator(_known_slo)]
Time = Annotated[float, Field(ge=0, le=MAX_TIME, allow_inf_nan=False)]  # wall, unix seconds
Count = Annotated[int, Field(ge=0)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SavedIndicator(_Shape):
    slo: Slo
    event_type: str
    value: float | None
    state: Literal[-1, 0, 1, 2]
    events: Count


class SavedAlert(_Shape):
    alertname: str
    slo: Slo
    event_type: str
    severity: Literal["warning", "critical"]
    status: Literal["firing", "resolved"]
    value: float | None
    starts_at: Time
    ends_at: Time | None
    summary: str
    description: str
    threshold: str


class SavedNote(_Shape):
    group: dict[str, str]
    alerts: Annotated[list[SavedAlert], Field(min_length=1)]
    repeat: Count


class SavedTrack(_Shape):
    """One alert's track, as :meth:`cbmon.slo.saved.snapshot` writes it."""

    slo: Slo
    event_type: str
    since_warning: Time | None
    since_critical: Time | None
    firing: Literal[1, 2] | None
    started_at: Time
    last_sent: Time
    last: SavedIndicator | None
    note: SavedNote | None
    resolved_at: Time | None
    no_data_since: Time | None = None  # absent from files of cbmon 0.1

    @model_validator(mode="after")
    def _firing_has_its_numbers(self) -> SavedTrack:
        if self.firing is not None and (self.last is None or self.note is None):
            raise ValueError("firing, but without the indicator or the notification it fired with")
        return self


class SavedMessage(_Shape):
    id: Annotated[str, Field(min_length=1, max_length=200)]
    body: str


class Saved(_Shape):
    """The whole file."""

    version: Literal[1]
    tracks: list[SavedTrack] = []
    outboxes: dict[str, list[SavedMessage]] = {}


class Unusable(ValueError):
    """What is wrong with a state file, in a few words."""


def path_for(state_dir: Path, cluster: str, identity: str) -> Path:
    """The state file of one replica: its cluster, and what it watches and where it listens
    (``identity``), so two replicas or two deployments on one host never share a file."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return state_dir / f"alerts-{cluster}-{digest}.json"


def parse(raw: bytes) -> dict[str, Any]:
    """The content of a state file, checked; raises :class:`Unusable` saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unusable(f"not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text)
        # "\ud800" is valid JSON but no text: it could be neither sent nor logged.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except json.JSONDecodeError as exc:
        ended = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        cut = " (cut short)" if ended else ""
        where = f"line {exc.lineno} column {exc.colno}"
        raise Unusable(f"not JSON{cut}: {exc.msg} ({where})") from None
    except UnicodeEncodeError:
        raise Unusable("holds an escaped lone surrogate, which is no Unicode text") from None
    except ValueError as exc:  # a number of thousands of digits, for one
        raise Unusable(f"not JSON cbmon reads: {str(exc)[:80]}") from None
    except RecursionError:
        raise Unusable("not a state file: JSON nested too deep") from None
    if not isinstance(data, dict):
        raise Unusable(f"not a state file: JSON {_JSON_KINDS[type(data)]}, not an object")
    version = data.get("version")
    if version is None:
        raise Unusable("not a state file: no version")
    if type(version) is not int or version != VERSION:
        shown = json.dumps(version)[:20]
        raise Unusable(f"written by another version of cbmon (format {shown}, not {VERSION})")
    try:
        return Saved.model_validate(data).model_dump()
    except ValidationError as exc:
        raise Unusable(_first_problem(exc)) from None


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}
_JSON_KINDS.update({bool: "true or false", type(None): "null"})


def _first_problem(error: ValidationError) -> str:
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where}: {message}{more}"


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._failing: str | None = None  # why the last save failed, said once

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
        """What was saved, checked; ``{}`` when there is nothing usable. A file that cannot
        be used is moved aside, with one warning line."""
        try:
            raw = self._read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            return self._set_aside(f"cannot be read: {exc.strerror or exc}")
        except Unusable as exc:
            return self._set_aside(str(exc))
        try:
            return parse(raw)
        except Unusable as exc:
            return self._set_aside(str(exc))

    def _read_bytes(self) -> bytes:
        info = os.stat(self.path)
        if stat.S_ISDIR(info.st_mode):
            raise Unusable("a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise Unusable("not a regular file")  # a FIFO would block the start for ever
        with self.path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise Unusable(f"larger than {MAX_BYTES >> 20} MiB: not a file cbmon wrote")
        return raw

    def _set_aside(self, problem: str) -> dict[str, Any]:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        number = 1
        while aside.exists() or aside.is_symlink():
            number += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{number}")
        try:
            os.replace(self.path, aside)
            moved = f"moved to {aside}"
        except OSError as exc:
            moved = (
                f"it could not be moved aside ({exc.strerror or exc}) and is replaced at the "
                "next save"
            )
        log.warning(
            "alert state %s is unusable (%s); %s; starting from what the database and the "
            "window show, and alerts still firing fire again",
            self.path,
            problem,
            moved,
        )
        return {}

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
                problem = str(exc.strerror or exc)
                if problem != self._failing:  # said once, not at every poll
                    log.warning(
                        "cannot save alert state to %s: %s (alerting goes on in memory; "
                        "saving is tried again at every change)",
                        self.path,
                        problem,
                    )
                self._failing = problem
                return
            if self._failing is not None:
                log.info("alert state saved to %s again", self.path)
                self._failing = None


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
