"""CSV: one flat table, the summary rows first (empty ``bucket``), then the series rows.

Overall rows have an empty ``event_type``. Figures are written at full precision.
"""

from __future__ import annotations

import pandas as pd

from cbmon.report.frame import series_frame, summary_frame
from cbmon.report.model import Report


def render_csv(report: Report) -> str:
    summary = summary_frame(report)
    summary.insert(0, "bucket", "")
    frames = [summary]
    if report.series is not None:
        series = series_frame(report)
        series["bucket"] = series["bucket"].map(lambda t: t.isoformat().replace("+00:00", "Z"))
        frames.append(series)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else summary
    text: str = frame.to_csv(index=False, lineterminator="\n", float_format=None)
    return text
