"""``cbmon demo``: a callback system on an embedded PostgreSQL, with cbmon watching it.

:mod:`~cbmon.demo.scenario` says how receivers behave over time, :mod:`~cbmon.demo.receivers`
serves the callback and alert endpoints, :mod:`~cbmon.demo.traffic` places and ships orders,
:mod:`~cbmon.demo.view` draws the live view, :mod:`~cbmon.demo.summary` the closing figures,
and :mod:`~cbmon.demo.run` puts them together.
"""

from __future__ import annotations

from cbmon.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
