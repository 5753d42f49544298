"""The service's poll loop run in a thread of the test, as ``cbmon serve`` runs it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cbmon.sidecar.service import Service


@contextmanager
def polling(service: Service) -> Iterator[Service]:
    """``service`` started and its loop running; stopped (every wait cut short), joined and
    closed when the block ends."""
    service.start()
    thread = threading.Thread(target=service.run, name="test poller", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.stop()
        thread.join(10)
        service.close()
    assert not thread.is_alive()  # stop() cut every wait short, the listener's too
