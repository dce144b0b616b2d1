"""Metrics for one caller and store, through the stores' query layer (REST, GraphQL and WebSocket share it).

No SQL here: every number comes from :class:`rva.stores.query.EventQueries`, called with a
:class:`~rva.stores.results.Scope` built by :class:`~gateway.tenancy.Tenancy` from the caller.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.auth import Principal
from gateway.registry import Registry
from gateway.tenancy import QueryPool, Tenancy
from rva.stores.results import HeatmapGrid, Scope, to_jsonable


def _is_chdb(pool: QueryPool) -> bool:
    from rva.stores.clickhouse import ChdbDriver

    return isinstance(pool.clickhouse, ChdbDriver)


def wait_estimate_s(waiting: int, served_in_window: int, window_s: float) -> float | None:
    """Seconds a person joining now can expect to wait: people ahead / service rate (Little's law).

    The same rule as the analytics' ``QueueMonitor.wait_time_estimate``, over the stored events.

    Returns:
        0 with nobody waiting; None while people wait and nobody was served in the window.

    """
    if waiting <= 0:
        return 0.0
    if served_in_window <= 0 or window_s <= 0:
        return None
    return waiting * window_s / served_in_window


def local_midnight(tz: str, now: datetime | None = None) -> datetime:
    """Start of today in a store's time zone (the dashboard's 'today')."""
    now = (now or datetime.now(UTC)).astimezone(ZoneInfo(tz))
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class MetricsService:
    """Every metric the gateway serves, scoped to the caller.

    Args:
        tenancy: Access checks and scopes.
        pool: Query-layer objects.
        registry: Store configs (for line names, queue windows).
        lines_ttl_s: Line counts are recomputed at most this often per store (they come from 30 s rollups).

    """

    def __init__(self, tenancy: Tenancy, pool: QueryPool, registry: Registry, lines_ttl_s: float = 5.0) -> None:
        self.tenancy = tenancy
        self.pool = pool
        self.registry = registry
        self.lines_ttl_s = lines_ttl_s
        self._lines: dict[tuple[str, str], tuple[float, list[dict[str, Any]], dict[Any, Any]]] = {}
        self._lock = threading.Lock()
        # chdb runs in-process and its session is not safe for concurrent parameterized queries: one at a time.
        self._clickhouse_lock: threading.Lock | contextlib.nullcontext[None] = (
            threading.Lock() if _is_chdb(pool) else contextlib.nullcontext())

    def scope(self, p: Principal, store: str, start: datetime | None, end: datetime | None,
              camera: str | None = None) -> Scope:
        """See :meth:`Tenancy.scope`."""
        return self.tenancy.scope(p, store, start, end, camera)

    def occupancy(self, p: Principal, store: str, start: datetime | None = None, end: datetime | None = None, *,
                  camera: str | None = None, zone: str | None = None, step_s: float = 300.0) -> list[dict[str, Any]]:
        """Zone occupancy sampled every ``step_s``."""
        scope = self.scope(p, store, start, end, camera)
        with self.pool.get() as q:
            return [r.to_dict() for r in q.occupancy(scope, step_s=step_s, zone=zone)]

    def footfall(self, p: Principal, store: str, start: datetime | None = None, end: datetime | None = None, *,
                 camera: str | None = None, line: str | None = None, tz: str | None = None) -> list[dict[str, Any]]:
        """Line crossings per hour in the store's time zone (or ``tz``)."""
        scope = self.scope(p, store, start, end, camera)
        tz = tz or self.tenancy.store(p, store, "read").timezone
        with self.pool.get() as q:
            return [r.to_dict() for r in q.footfall_per_hour(scope, line=line, tz=tz)]

    def dwell(self, p: Principal, store: str, start: datetime | None = None, end: datetime | None = None, *,
              camera: str | None = None, zone: str | None = None) -> list[dict[str, Any]]:
        """Dwell histograms and percentiles per zone."""
        scope = self.scope(p, store, start, end, camera)
        with self.pool.get() as q:
            return [r.to_dict() for r in q.dwell_distribution(scope, zone=zone)]

    def queues(self, p: Principal, store: str, start: datetime | None = None, end: datetime | None = None, *,
               camera: str | None = None, queue: str | None = None) -> list[dict[str, Any]]:
        """Joined/served/abandoned and wait percentiles per queue."""
        scope = self.scope(p, store, start, end, camera)
        with self.pool.get() as q:
            return [r.to_dict() for r in q.queue_waits(scope, queue=queue)]

    def funnel(self, p: Principal, store: str, steps: Sequence[str], start: datetime | None = None,
               end: datetime | None = None, *, window_s: float = 3600.0) -> list[dict[str, Any]]:
        """Conversion through zones in order (ClickHouse)."""
        scope = self.scope(p, store, start, end)
        with self._clickhouse_lock, self.pool.get() as q:
            return [r.to_dict() for r in q.funnel(scope, steps, window_s=window_s)]

    def journeys(self, p: Principal, store: str, start: datetime | None = None, end: datetime | None = None, *,
                 limit: int = 10, min_zones: int = 1, ends_at: str | None = None) -> list[dict[str, Any]]:
        """Most common zone paths (ClickHouse)."""
        scope = self.scope(p, store, start, end)
        with self._clickhouse_lock, self.pool.get() as q:
            return [r.to_dict() for r in q.top_journeys(scope, limit=limit, min_zones=min_zones, ends_at=ends_at)]

    def hourly(self, p: Principal, store: str, start: datetime | None = None, end: datetime | None = None, *,
               camera: str | None = None, event_type: str | None = None) -> list[dict[str, Any]]:
        """Distinct events per hour and kind (ClickHouse)."""
        scope = self.scope(p, store, start, end, camera)
        with self._clickhouse_lock, self.pool.get() as q:
            return [r.to_dict() for r in q.hourly_counts(scope, event_type=event_type)]

    def heatmap(self, p: Principal, store: str, camera: str, start: datetime | None = None,
                end: datetime | None = None) -> HeatmapGrid:
        """Person-seconds per cell of one camera over the window."""
        scope = self.scope(p, store, start, end, camera)
        with self.pool.get() as q:
            return q.heatmap(scope)

    def live(self, p: Principal, store: str, *, recent: int = 20) -> dict[str, Any]:
        """The store now: occupancy per zone, queues with a wait estimate, today's line counts, latest events.

        Returns:
            ``{"store", "ts", "occupancy": [...], "queues": [{..., "wait_estimate_s"}], "lines": [{camera, line,
            in, out}], "recent": [...]}``.

        """
        record = self.tenancy.store(p, store, "read")
        with self.pool.get() as q:
            view = q.live(p.tenant, store, recent=recent)
        lines, queue_stats = self._today(p, store, record.timezone)
        for item in view["queues"]:
            stats = queue_stats.get((item["camera"], item["queue"]), {})
            window = float(stats.get("window_s", 600.0))
            item["served_in_window"] = int(stats.get("served", 0))
            item["wait_estimate_s"] = wait_estimate_s(int(item["waiting"]), item["served_in_window"], window)
        return {"store": store, "ts": time.time(), **view, "lines": lines}

    def _today(self, p: Principal, store: str, tz: str) -> tuple[list[dict[str, Any]], dict[Any, Any]]:
        """Line counts since local midnight and served counts per queue window, cached for ``lines_ttl_s``."""
        key = (p.tenant, store)
        now = time.monotonic()
        with self._lock:
            hit = self._lines.get(key)
        if hit and now - hit[0] < self.lines_ttl_s:
            return hit[1], hit[2]
        _, doc, _, _ = self.registry.config(p.tenant, store)
        end = datetime.now(UTC)
        day = Scope(p.tenant, local_midnight(tz, end).astimezone(UTC), end + timedelta(seconds=1), store)
        lines: list[dict[str, Any]] = []
        queues: dict[tuple[str, str], dict[str, Any]] = {}
        with self.pool.get() as q:
            for cam in doc.get("cameras", []):
                cam_scope = Scope(day.tenant, day.start, day.end, store, cam["id"])
                for ln in cam.get("lines", []):
                    hours = q.footfall_per_hour(cam_scope, line=ln["name"], tz=tz)
                    lines.append({"camera": cam["id"], "line": ln["name"], "in": sum(h.in_count for h in hours),
                                  "out": sum(h.out_count for h in hours)})
                for qc in cam.get("queues", []):
                    window = float(qc.get("service_window_s", 600.0))
                    win_scope = Scope(day.tenant, end - timedelta(seconds=window), day.end, store, cam["id"])
                    waits = q.queue_waits(win_scope, queue=qc["name"])
                    served = sum(w.served for w in waits)
                    queues[(cam["id"], qc["name"])] = {"served": served, "window_s": window}
        with self._lock:
            self._lines[key] = (now, lines, queues)
        return lines, queues


def grid_dict(grid: HeatmapGrid) -> dict[str, Any]:
    """A heatmap grid as JSON: ``{"camera", "cell_px", "rows", "cols", "grid": [[...]], "snapshots", "skipped"}``."""
    out: dict[str, Any] = to_jsonable(grid)
    out["rows"], out["cols"] = (int(grid.grid.shape[0]), int(grid.grid.shape[1])) if grid.grid.ndim == 2 else (0, 0)
    return out
