"""CSV: one flat table, the summary rows first (empty ``bucket``), then the series rows.

Every row names the period it covers (``period_from``, ``period_to``), so a file read on its
own still says when; with ``--compare`` the previous period's summary rows follow the
current ones. Overall rows have an empty ``event_type``. Figures are at full precision.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from cbmon.report.frame import rows_frame, series_frame, summary_frame
from cbmon.report.model import Period, Report


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _stamped(frame: pd.DataFrame, period: Period, bucket: bool = False) -> pd.DataFrame:
    if not bucket:
        frame.insert(0, "bucket", "")
    frame.insert(0, "period_to", _time(period.end))
    frame.insert(0, "period_from", _time(period.start))
    return frame


def render_csv(report: Report) -> str:
    frames = [_stamped(summary_frame(report), report.period)]
    previous = report.previous
    if previous is not None:
        rows = rows_frame([previous.overall, *previous.event_types])
        frames.append(_stamped(rows, previous.period))
    if report.series is not None:
        series = series_frame(report)
        series["bucket"] = series["bucket"].map(_time)
        frames.append(_stamped(series, report.period, bucket=True))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    text: str = frame.to_csv(index=False, lineterminator="\n", float_format=None)
    return text
