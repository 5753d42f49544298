"""cbmon: exact callback metrics, SLO alerts and reports for callback systems in PostgreSQL."""

from __future__ import annotations

# The one place the version is written: pyproject.toml reads it from here (dynamic), and the
# CLI, cbmon_build_info and the status API show it.
__version__ = "0.3.0"

__all__ = ["__version__"]
