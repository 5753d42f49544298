"""A reference worker that can be stopped mid-delivery, for the demo's "worker lost" phase.

A worker killed between the receiver's answer and its own record leaves its claims leased:
they stick in flight until the lease runs out, then another worker claims and delivers them
again. A killed worker records nothing, so the receiver's duplicate would go unseen in the
log; this one is frozen instead, and records its delivery when it comes back, so the duplicate
the receiver got is one cbmon counts (``cbmon_callback_duplicate_deliveries_total``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from cbmon.reference.worker import Claim, Outcome, Route, Worker, WorkerOptions


@dataclasses.dataclass(frozen=True)
class LeasedOptions(WorkerOptions):
    """Worker options with a lease of its own (the reference worker derives it)."""

    lease: float = 8.0

    @property
    def lease_seconds(self) -> float:
        return self.lease


class FreezingWorker(Worker):
    """Stops after a successful delivery while ``frozen()`` holds, before recording it."""

    def __init__(
        self,
        dsn: str,
        *,
        frozen: Callable[[], bool],
        schema: str,
        options: LeasedOptions,
        stop: threading.Event,
        name: str,
    ) -> None:
        super().__init__(dsn, schema=schema, options=options, stop=stop, name=name)
        self.frozen = frozen
        self.stalls = 0  # deliveries held back past their lease
        self.holding: int | None = None  # the callback delivered and not recorded, while frozen

    def deliver(self, claim: Claim, route: Route) -> Outcome:
        outcome = super().deliver(claim, route)
        if outcome.ok and self.frozen():
            self.stalls += 1
            self.holding = claim.queue_id
            while self.frozen() and not self.stop.wait(0.1):
                pass
            self.holding = None
        return outcome
