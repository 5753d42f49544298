"""Keeping secrets out of everything a person or a scraper reads.

Every secret cbmon learns (a DSN's password, whatever its shape; the webhook and cluster
secrets; the contents of secret files; the path, query and credentials of webhook URLs, which
often carry a token) is remembered here when the configuration is loaded. :func:`scrub`
replaces each with ``***``: the CLI runs every error line through it, a logging filter runs
every log record through it, and the process title is rewritten without them. Redaction by
shape (``password=...``) catches what was never remembered, such as a DSN typed into an
error message of the driver.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import urllib.parse

MASK = "***"
_MIN_LENGTH = 3  # shorter strings would mask ordinary text, and are no secrets worth the name

_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None

# A URI's userinfo: from "scheme://" to the last "@" before any query. An unencoded "@" or "/"
# in a password leaves libpq unsure where the host starts: it may show the rest as the host
# or the port, so everything up to the last "@" is taken for the secret.
_URI_USERINFO = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://([^?#]*)@")
# password=value in a key/value DSN: quoted, or every word up to the next "key=".
_KV_PASSWORD = re.compile(
    r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+(?:\s+(?![A-Za-z_]+\s*=)\S+)*)", re.IGNORECASE
)
_URI_PASSWORD_SHAPE = re.compile(r"(://[^:/@\s]*:)[^\s/]*@")
_KV_PASSWORD_SHAPE = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def remember(*values: str | None) -> None:
    """Never show these strings again (nor their percent-decoded forms)."""
    global _pattern
    with _lock:
        for value in values:
            if not value:
                continue
            for form in {value.strip(), urllib.parse.unquote(value.strip())}:
                if len(form) >= _MIN_LENGTH:
                    _known.add(form)
        ordered = sorted(_known, key=len, reverse=True)  # longest first: no partial leftovers
        _pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None


@dataclasses.dataclass(frozen=True)
class Found:
    """Secrets a loader found: values as they are, DSNs and URLs to take apart."""

    values: tuple[str, ...] = ()
    dsns: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()


def learn(found: Found) -> None:
    """Mask everything in ``found`` from here on, in errors, logs and the process title."""
    remember(*found.values)
    for dsn in found.dsns:
        remember_dsn(dsn)
    for url in found.urls:
        remember_url(url)


def remember_dsn(dsn: str | None) -> None:
    """The password of a DSN, found by shape even when the DSN does not parse."""
    if not dsn:
        return
    found: list[str] = []
    userinfo = _URI_USERINFO.match(dsn)
    if userinfo and ":" in userinfo.group(1):
        found.append(userinfo.group(1).split(":", 1)[1])
    found += [match.group(1).strip("'") for match in _KV_PASSWORD.finditer(dsn)]
    remember(*found)


def remember_url(url: str) -> None:
    """The parts of a URL that carry tokens: credentials, the query's values, the fragment, the
    last path segment (Slack's and Discord's tokens end the path) and any long segment. Short
    words such as ``/hook`` are no tokens, and masking them would mask every ``webhook``."""
    parts = urllib.parse.urlsplit(url)
    remember(parts.password, parts.username if parts.password else None)
    segments = [segment for segment in parts.path.split("/") if segment]
    if segments and len(segments[-1]) >= 6:
        remember(segments[-1])
    remember(*(segment for segment in segments if len(segment) >= 20))
    remember(*(value for _, value in urllib.parse.parse_qsl(parts.query)), parts.fragment)


def scrub(text: str) -> str:
    """``text`` with every remembered secret, and anything shaped like a password, masked."""
    with _lock:
        pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _URI_PASSWORD_SHAPE.sub(rf"\1{MASK}@", text)
    return _KV_PASSWORD_SHAPE.sub(rf"\1{MASK}", text)


def forget_all() -> None:
    """For tests: start with nothing remembered."""
    global _pattern
    with _lock:
        _known.clear()
        _pattern = None


class ScrubFilter(logging.Filter):
    """Masks secrets in every record a handler emits, arguments and tracebacks included."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def hide_from_process_title(argv: list[str]) -> None:
    """Rewrite the process title (``ps``, ``/proc/PID/cmdline``) with secrets masked, so a
    ``--dsn`` typed with its password does not stay readable by every local user."""
    shown = [scrub(arg) for arg in argv]
    if shown == argv:
        return
    try:
        import setproctitle
    except ImportError:  # pragma: no cover - a dependency; absent only in odd installs
        return
    setproctitle.setproctitle(" ".join(shown))
