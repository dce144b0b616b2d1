"""Prometheus counters kept level with totals counted elsewhere (a stats object, an SQLite table).

Counters only go up by increments; a total read periodically is turned into the increment since the
last read, per counter and label set.
"""

from __future__ import annotations

from typing import Any


class CounterMirror:
    """Raises counters to totals (one instance per set of counters it keeps)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[Any, ...], float] = {}

    def total(self, counter: Any, labels: tuple[str, ...], total: float) -> float:
        """Raise ``counter{labels}`` (a ``prometheus_client.Counter``) to ``total``; return what it added."""
        key = (id(counter), *labels)
        new = total - self._seen.get(key, 0.0)
        if new > 0:
            (counter.labels(*labels) if labels else counter).inc(new)
            self._seen[key] = total
        return new if new > 0 else 0.0
