"""``cbmon report``: exact callback figures for a period, judged against the baseline.

The database computes every figure (:mod:`cbmon.report.query`); the rest shapes and renders
frozen values (:mod:`cbmon.report.model`) in one of :data:`FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable

from cbmon.config import Config
from cbmon.db.connect import connect
from cbmon.report.model import Report
from cbmon.report.progress import Progress
from cbmon.report.query import ReportRequest, read_report, snapshot

FORMATS = ("table", "markdown", "csv", "json", "html")


def build_report(
    config: Config, request: ReportRequest, *, progress: Progress, statement_timeout: float
) -> Report:
    """Connect with the configured DSN, read the report, and close the connection."""
    conn = connect(
        config.require_dsn(),
        statement_timeout=statement_timeout,
        connect_timeout=config.file.database.connect_timeout,
        autocommit=False,
        application_name="cbmon report",
        using=config.file.database.driver,
    )
    try:
        with snapshot(conn):
            return read_report(conn, config, request, progress=progress, timeout=statement_timeout)
    finally:
        conn.close()


def renderer(output_format: str) -> Callable[[Report], str]:
    """The function writing ``output_format``; pandas and the HTML code load only when used."""
    if output_format == "json":
        from cbmon.report.jsonout import render_json

        return render_json
    if output_format == "csv":
        from cbmon.report.csvout import render_csv

        return render_csv
    if output_format == "html":
        from cbmon.report.html import render_html

        return render_html
    if output_format == "markdown":
        from cbmon.report.text import render_markdown

        return render_markdown
    from cbmon.report.text import render_table

    return render_table
