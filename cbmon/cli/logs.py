"""How the command writes its log to stderr: plain text lines, or one JSON object per line
(``--log-format json``, as the Prometheus exporters' ``--log.format=json``) for log collectors.

Either way every record goes through :class:`cbmon.secrets.ScrubFilter` first, so a secret is
masked before it is formatted, in the message and in a traceback alike.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from cbmon import secrets
from cbmon.sidecar import scope

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER = "cbmon-stderr"  # the name of the handler the command adds to the root logger


class TextFormatter(logging.Formatter):
    """:data:`TEXT`, and the database a fleet's line is about after the logger's name."""

    def __init__(self) -> None:
        super().__init__(TEXT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        database = getattr(record, "database", None)
        if database:
            head = f"{record.name}: "
            line = line.replace(head, f"{record.name}: database {database}: ", 1)
        return line


class JsonFormatter(logging.Formatter):
    """``{"time": ..., "level": ..., "logger": ..., "msg": ...}`` on one line, with
    ``"exception"`` when the record carries a traceback. Time is UTC, RFC 3339 with
    milliseconds, as the Prometheus exporters write it."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        entry = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        database = getattr(record, "database", None)
        if database:
            entry["database"] = database
        if record.exc_info and not record.exc_text:
            record.exc_text = secrets.scrub(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = secrets.scrub(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, log_format: str) -> None:
    """Log to stderr at ``level`` in ``log_format``, as :func:`logging.basicConfig` would: a
    root logger that already has handlers (cbmon embedded in another program, a test runner)
    keeps them and its level. Every handler gets the scrubber."""
    root = logging.getLogger()
    if not root.handlers:
        ours = logging.StreamHandler(sys.stderr)
        ours.name = _HANDLER
        root.addHandler(ours)
        root.setLevel(level.upper())
    for handler in root.handlers:
        if not any(isinstance(f, secrets.ScrubFilter) for f in handler.filters):
            handler.addFilter(secrets.ScrubFilter())
        if not any(isinstance(f, scope.DatabaseFilter) for f in handler.filters):
            handler.addFilter(scope.DatabaseFilter())
    use_format(log_format)


def use_format(log_format: str) -> None:
    """Switch the command's own handler to ``text`` or ``json``."""
    formatter = JsonFormatter() if log_format.lower() == "json" else TextFormatter()
    for handler in logging.getLogger().handlers:
        if handler.name == _HANDLER:
            handler.setFormatter(formatter)


def json_enabled() -> bool:
    """Whether the command's handler writes JSON, so its last words should too."""
    return any(
        handler.name == _HANDLER and isinstance(handler.formatter, JsonFormatter)
        for handler in logging.getLogger().handlers
    )
