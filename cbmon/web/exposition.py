"""The ``/metrics`` body, rendered once per poll instead of once per scrape.

Formatting a few thousand samples takes tens of milliseconds in Python, while the numbers
change only when a poll lands. So the poll thread renders the poll-fed metrics into a cache
(in each format scrapers have asked for), and a scrape appends only the few samples that move
between polls (queue age, delivery counters, process metrics) to the cached bytes.

A fleet's databases poll each on their own: a poll re-renders its own database's part alone,
and the next scrape merges the parts family by family (one ``# HELP`` and ``# TYPE`` per
family, every database's samples under it), so a poll costs the same with one database as
with fifty.
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
        polled: CollectorRegistry | Mapping[str, CollectorRegistry],
        live: CollectorRegistry,
        process: CollectorRegistry | None = None,
    ) -> None:
        """``polled``: a registry exported as it is, or each database's registry by its
        name (each sample then labelled ``database``), rendered apart; ``process``: what the
        process exports once, whatever databases it watches."""
        self.live = live
        self.process = process
        self._lock = threading.Lock()
        self._version = 0
        self._parts: dict[str, CollectorRegistry] = {}
        # Per format: each part's latest rendering with the version it was rendered at, and
        # the merged body with the version it is of.
        self._rendered: dict[str, dict[str, tuple[int, bytes]]] = {}
        self._merged: dict[str, tuple[int, bytes]] = {}
        self._encoders: dict[str, Encoder] = {}
        self.set_polled(polled)

    def set_polled(self, polled: CollectorRegistry | Mapping[str, CollectorRegistry]) -> None:
        """What the polls feed, from now on (a fleet's databases come and go)."""
        if isinstance(polled, CollectorRegistry):
            parts = {"": polled}
        else:
            parts = {name: by_database({name: registry}) for name, registry in polled.items()}
        with self._lock:
            self._parts = parts
            for rendered in self._rendered.values():
                for name in set(rendered) - set(parts):
                    del rendered[name]
        self.refresh()

    def refresh(self, database: str | None = None) -> None:
        """Called after each poll: re-render, in every format a scraper has asked for, the
        part of ``database`` (a fleet's), else every part."""
        with self._lock:
            self._version += 1
            version, encoders = self._version, dict(self._encoders)
            parts = dict(self._parts)
        names = list(parts) if database is None or database not in parts else [database]
        for content_type, encoder in encoders.items():
            for name in names:
                self._store(content_type, name, version, encoder(parts[name]))

    def render(self, accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        with self._lock:
            fresh = content_type not in self._encoders
            self._encoders.setdefault(content_type, encoder)
            self._rendered.setdefault(content_type, {})
            version, parts = self._version, dict(self._parts)
        if fresh:  # this format's parts have never been rendered
            for name, registry in parts.items():
                self._store(content_type, name, version, encoder(registry))
        polled = self._merge(content_type, parts)
        live = encoder(self.live)
        if self.process is not None:
            live = _join(live, encoder(self.process))
        if polled.endswith(_EOF):  # OpenMetrics: one EOF marker, at the very end
            polled = polled[: -len(_EOF)]
        return polled + live, content_type

    def _merge(self, content_type: str, parts: Mapping[str, CollectorRegistry]) -> bytes:
        """The parts as one body, merged again only when a part changed since."""
        with self._lock:
            rendered = self._rendered[content_type]
            bodies = [rendered[name] for name in parts if name in rendered]
            version = max((v for v, _ in bodies), default=0)
            cached = self._merged.get(content_type)
            if cached is not None and cached[0] == version and len(bodies) == len(parts):
                return cached[1]
        body = bodies[0][1] if len(bodies) == 1 else merge_families([b for _, b in bodies])
        with self._lock:
            current = self._merged.get(content_type)
            if current is None or current[0] <= version:
                self._merged[content_type] = (version, body)
        return body

    def _store(self, content_type: str, name: str, version: int, body: bytes) -> None:
        with self._lock:
            rendered = self._rendered.setdefault(content_type, {})
            current = rendered.get(name)
            if name in self._parts and (current is None or current[0] <= version):
                rendered[name] = (version, body)


def merge_families(bodies: list[bytes]) -> bytes:
    """Several renderings in one format as one: each family once, with its comment lines
    from the first body that has it, then every body's samples in the order given. Families
    keep the order in which they first appear (the order one registry of them all gives)."""
    families: dict[bytes, tuple[list[bytes], list[bytes]]] = {}
    for body in bodies:
        if body.endswith(_EOF):
            body = body[: -len(_EOF)]
        name: bytes | None = None
        comments: list[bytes] | None = None  # None: the first body's comments stand
        samples: list[bytes] | None = None
        for line in body.splitlines(keepends=True):
            if line.startswith(b"# "):
                # "# HELP name ...", "# TYPE name ...", "# UNIT name ...": a family begins
                # with the first comment line that names another family.
                said = line.split(b" ", 3)[2].rstrip(b"\n")
                if said != name:
                    name = said
                    family = families.get(name)
                    if family is None:
                        family = families[name] = ([], [])
                        comments = family[0]
                    else:
                        comments = None
                    samples = family[1]
                if comments is not None:
                    comments.append(line)
            elif samples is not None:
                samples.append(line)
    merged = [b"".join(comments) + b"".join(samples) for comments, samples in families.values()]
    eof = _EOF if bodies and bodies[0].endswith(_EOF) else b""
    return b"".join(merged) + eof


def _join(first: bytes, second: bytes) -> bytes:
    if first.endswith(_EOF):
        first = first[: -len(_EOF)]
    return first + second
