"""The ``/metrics`` body, rendered once per poll instead of once per scrape.

Formatting a few thousand samples takes tens of milliseconds in Python, while the numbers
change only when a poll lands. So the poll thread renders the poll-fed metrics into a cache
(in each format scrapers have asked for), and a scrape appends only the few samples that move
between polls (queue age, delivery counters, process metrics) to the cached bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

Encoder = Callable[[CollectorRegistry], bytes]
_EOF = b"# EOF\n"


DATABASE = "database"


class ByDatabase(Collector):
    """The families of several databases' registries as one: every sample gains the
    ``database`` label of its registry, and a family that several registries hold is one
    family with all their samples (an exposition may name a family only once).

    The one place the label is added: the collectors know nothing of it."""

    def __init__(self, registries: Mapping[str, CollectorRegistry]) -> None:
        self.registries = dict(registries)

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for name, registry in self.registries.items():
            for family in registry.collect():
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                into.samples.extend(
                    sample._replace(labels={**sample.labels, DATABASE: name})
                    for sample in family.samples
                )
        yield from merged.values()


def by_database(registries: Mapping[str, CollectorRegistry]) -> CollectorRegistry:
    """A registry of the databases' registries, each sample labelled with its database."""
    registry = CollectorRegistry()
    registry.register(ByDatabase(registries))
    return registry


class Exposition:
    def __init__(
        self,
        polled: CollectorRegistry,
        live: CollectorRegistry,
        process: CollectorRegistry | None = None,
    ) -> None:
        """``process``: what the process exports once, whatever databases it watches."""
        self.polled = polled
        self.live = live
        self.process = process
        self._lock = threading.Lock()
        self._version = 0
        self._cache: dict[str, tuple[int, bytes]] = {}
        self._encoders: dict[str, Encoder] = {}

    def refresh(self) -> None:
        """Called after each poll: re-render every format a scraper has asked for."""
        with self._lock:
            self._version += 1
            version, encoders = self._version, dict(self._encoders)
        for content_type, encoder in encoders.items():
            self._store(content_type, version, encoder(self.polled))

    def render(self, accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        with self._lock:
            self._encoders.setdefault(content_type, encoder)
            version = self._version
            cached = self._cache.get(content_type)
        if cached is None or cached[0] != version:
            cached = (version, encoder(self.polled))
            self._store(content_type, *cached)
        polled = cached[1]
        live = encoder(self.live)
        if self.process is not None:
            live = _join(live, encoder(self.process))
        if polled.endswith(_EOF):  # OpenMetrics: one EOF marker, at the very end
            polled = polled[: -len(_EOF)]
        return polled + live, content_type

    def _store(self, content_type: str, version: int, body: bytes) -> None:
        with self._lock:
            current = self._cache.get(content_type)
            if current is None or current[0] <= version:
                self._cache[content_type] = (version, body)


def _join(first: bytes, second: bytes) -> bytes:
    if first.endswith(_EOF):
        first = first[: -len(_EOF)]
    return first + second
