"""The one error hierarchy users can meet; the CLI turns each into one line and an exit code."""

from __future__ import annotations


class CbmonError(Exception):
    """Base of every error cbmon raises on purpose. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(CbmonError):
    """A configuration value, flag or environment variable is wrong. The message names the key."""

    exit_code = 2


class DatabaseError(CbmonError):
    """The database could not be reached or refused a query. The message never holds a password."""

    exit_code = 1
