"""Status snapshots made the way ``cbmon serve`` makes them, in process: polls fed by hand into
a store and an evaluator on a clock the test moves, then :func:`cbmon.web.status.build`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cbmon.config import Config, load_config
from cbmon.domain import Figures
from cbmon.ingest.store import Store
from cbmon.sidecar.evaluator import Evaluator
from cbmon.web import status
from tests.support.sidecar import ManualClock, feed, poll_result

NO_WEBHOOKS = status.LeaderStatus(
    webhooks=0, alertmanagers=0, sends_webhooks=False, sender=None, foreign_holder=None
)


class Pipeline:
    """A store and an evaluator fed poll by poll, as the service feeds them."""

    def __init__(self, **overrides: Any) -> None:
        settings: dict[str, Any] = {"slo": {"for": "0s", "min_events": 10}}
        settings.update(overrides)
        self.config: Config = load_config(overrides=settings, environ={})
        self.clock = ManualClock()
        self.store = Store(self.config.file.max_event_types, clock=self.clock)
        self.evaluator = Evaluator(self.config, clock=self.clock)

    def poll(
        self, figures: Mapping[str | None, Figures] | None = None, *, backlog: int = 0
    ) -> None:
        result = poll_result(figures, backlog=backlog, db_now=self.clock.now)
        labeled = feed(self.store, result)
        self.evaluator.observe(result, labeled)

    def snapshot(
        self,
        *,
        leader: status.LeaderStatus = NO_WEBHOOKS,
        wake: str = "notify",
        database_up: bool | None = None,
    ) -> status.Snapshot:
        view = self.store.view()
        if database_up is False:
            self.store.poll_failed()
            view = self.store.view()
        return status.build(
            now=self.clock.now,
            config=self.config,
            view=view,
            indicators=self.evaluator.indicators(),
            trend=self.evaluator.trend,
            active=self.evaluator.tracker.active(),
            transitions=self.evaluator.tracker.transitions(),
            leader=leader,
            wake=wake,
            budgets=self.evaluator.budgets(),
        )
