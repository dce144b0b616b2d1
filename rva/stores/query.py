"""The query layer the gateway calls: no SQL outside this package.

History (occupancy, footfall, dwell, queue waits, heatmaps) comes from PostgreSQL, paths and
funnels from ClickHouse, the live view from Redis. Every query takes a :class:`Scope`, whose
tenant is required, and returns frozen results with ``to_dict()``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import psycopg

from rva.core.events import Direction, Event, EventType
from rva.stores.clickhouse import ClickHouseDriver
from rva.stores.clickhouse_queries import ClickHouseQueries
from rva.stores.errors import StoreUnavailable
from rva.stores.postgres import connect
from rva.stores.records import ID_PATTERN, StoredEvent
from rva.stores.redis_live import QueueLive, RedisLive
from rva.stores.results import (
    DwellDistribution,
    FootfallHour,
    FunnelStep,
    HeatmapGrid,
    HourlyCount,
    Journey,
    OccupancyPoint,
    QueueWaits,
    Scope,
)

#: Default dwell histogram bin edges, seconds (the last bin is open-ended).
DWELL_EDGES = (0.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_SCOPE_SQL = (
    "tenant = %(tenant)s AND (%(store)s::text IS NULL OR store = %(store)s) "
    "AND (%(camera)s::text IS NULL OR camera = %(camera)s)"
)
T = TypeVar("T")

_OCCUPANCY_SQL = f"""
WITH v AS (
    SELECT camera, zone, enter_ts, exit_ts FROM rva.visits
    WHERE {_SCOPE_SQL} AND (%(zone)s::text IS NULL OR zone = %(zone)s)
      AND enter_ts >= %(lookback)s AND enter_ts < %(end)s AND (exit_ts IS NULL OR exit_ts >= %(start)s)
), keys AS (SELECT DISTINCT camera, zone FROM v),
samples AS (
    SELECT generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 microsecond',
                           make_interval(secs => %(step)s)) AS ts
), pts AS (
    SELECT camera, zone, enter_ts AS ts, 0 AS ord, 1 AS d FROM v
    UNION ALL SELECT camera, zone, exit_ts, 2, -1 FROM v WHERE exit_ts IS NOT NULL
    UNION ALL SELECT k.camera, k.zone, s.ts, 1, 0 FROM keys k CROSS JOIN samples s
), run AS (
    SELECT camera, zone, ts, ord,
           sum(d) OVER (PARTITION BY camera, zone ORDER BY ts, ord ROWS UNBOUNDED PRECEDING) AS occ
    FROM pts
)
SELECT camera, zone, floor(extract(epoch FROM ts - %(start)s::timestamptz) / %(step)s)::bigint AS k,
       max(occ) FILTER (WHERE ord = 1), max(occ) FILTER (WHERE ord <= 1)
FROM run WHERE ts >= %(start)s AND ts < %(end)s
GROUP BY camera, zone, k ORDER BY camera, zone, k"""

_FOOTFALL_SQL = f"""
WITH hours AS (
    SELECT generate_series(date_trunc('hour', %(start)s::timestamptz, %(tz)s),
                           %(end)s::timestamptz - interval '1 microsecond', interval '1 hour') AS hour
), c AS (
    SELECT date_trunc('hour', bucket, %(tz)s) AS hour, sum(in_count)::bigint AS i, sum(out_count)::bigint AS o
    FROM rva.line_counts_30s
    WHERE {_SCOPE_SQL} AND (%(line)s::text IS NULL OR line = %(line)s)
      AND bucket >= %(start)s AND bucket < %(end)s
    GROUP BY 1
)
SELECT h.hour, coalesce(c.i, 0), coalesce(c.o, 0) FROM hours h LEFT JOIN c USING (hour) ORDER BY h.hour"""

_DWELL_WHERE = f"""FROM rva.visits
    WHERE {_SCOPE_SQL} AND (%(zone)s::text IS NULL OR zone = %(zone)s) AND dwell_s IS NOT NULL
      AND enter_ts >= %(lookback)s AND enter_ts < %(end)s AND exit_ts >= %(start)s AND exit_ts < %(end)s"""

_DWELL_SQL = f"""
SELECT camera, zone, count(*), avg(dwell_s),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY dwell_s), percentile_cont(0.9) WITHIN GROUP (ORDER BY dwell_s),
       max(dwell_s)
{_DWELL_WHERE}
GROUP BY camera, zone ORDER BY camera, zone"""

_DWELL_BINS_SQL = f"""
SELECT camera, zone, width_bucket(dwell_s, %(edges)s::float8[]) AS b, count(*)
{_DWELL_WHERE}
GROUP BY camera, zone, b"""

_QUEUE_SQL = f"""
SELECT camera, queue,
       count(*) FILTER (WHERE type = 'queue_join'), count(*) FILTER (WHERE type = 'queue_served'),
       count(*) FILTER (WHERE type = 'queue_abandon'),
       avg(wait_s) FILTER (WHERE type = 'queue_served'), max(wait_s) FILTER (WHERE type = 'queue_served'),
       percentile_cont(%(qs)s::float8[]) WITHIN GROUP (ORDER BY wait_s) FILTER (WHERE type = 'queue_served')
FROM rva.events
WHERE {_SCOPE_SQL} AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND type IN ('queue_join', 'queue_served', 'queue_abandon') AND ts >= %(start)s AND ts < %(end)s
GROUP BY camera, queue ORDER BY camera, queue"""

_HEATMAP_SQL = f"""
SELECT attrs FROM rva.events
WHERE {_SCOPE_SQL} AND type = 'heatmap_snapshot' AND ts >= %(start)s AND ts < %(end)s
ORDER BY ts"""

_EVENTS_SQL = f"""
SELECT store, camera, extract(epoch FROM ts)::float8, event_id, track_id, zone, line, queue, direction, dwell_s,
       extract(epoch FROM enter_ts)::float8, wait_s, attrs
FROM rva.events
WHERE {_SCOPE_SQL} AND type = %(type)s AND ts >= %(start)s AND ts < %(end)s
ORDER BY ts DESC, event_id LIMIT %(limit)s"""


def _pct_name(q: float) -> str:
    return "p" + f"{q * 100:.6g}".replace(".", "_")


class EventQueries:
    """Read side of the event stores.

    Args:
        postgres_dsn: PostgreSQL connection string (for the history queries).
        clickhouse: ClickHouse driver (for journeys, funnels, hourly counts).
        clickhouse_db: ClickHouse database name.
        redis_url: Redis URL (for the live view).
        max_visit_s: Visits that began more than this long before a window are not looked at.

    """

    def __init__(
        self,
        postgres_dsn: str | None = None,
        clickhouse: ClickHouseDriver | None = None,
        clickhouse_db: str = "rva",
        redis_url: str | None = None,
        max_visit_s: float = 86_400.0,
    ) -> None:
        self.postgres_dsn = postgres_dsn
        self.max_visit_s = max_visit_s
        self._ch = ClickHouseQueries(clickhouse, clickhouse_db) if clickhouse is not None else None
        self._live = RedisLive(redis_url) if redis_url else None
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    # -- PostgreSQL ------------------------------------------------------------------------------

    def _pg(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if self.postgres_dsn is None:
            raise StoreUnavailable("this EventQueries has no PostgreSQL (postgres_dsn=None)")
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.postgres_dsn)
                    self._conn.autocommit = True
                try:
                    return self._conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
                except psycopg.OperationalError as err:
                    self._conn.close()
                    if attempt == 2:
                        raise StoreUnavailable(f"postgres: {err}") from None
        raise AssertionError("unreachable")

    def _params(self, scope: Scope, **extra: Any) -> dict[str, Any]:
        return {
            "tenant": scope.tenant, "store": scope.store, "camera": scope.camera, "start": scope.start,
            "end": scope.end, "lookback": scope.start - timedelta(seconds=self.max_visit_s), **extra,
        }

    def occupancy(self, scope: Scope, *, step_s: float = 30.0, zone: str | None = None) -> list[OccupancyPoint]:
        """Zone occupancy sampled every ``step_s`` from ``start``, from the visits (zone enters and exits).

        Occupancy at ``t`` = visits entered at or before ``t`` and not exited before ``t``. Zones
        with no visit overlapping the window are absent.

        Args:
            scope: Tenant, stores, cameras and window.
            step_s: Sampling step (at most 100,000 samples per zone).
            zone: One zone, or None for all.

        Returns:
            Points by camera, zone, time.

        """
        span = (scope.end - scope.start).total_seconds()
        if step_s <= 0 or span / step_s > 100_000:
            raise ValueError(f"occupancy step_s: expected > 0 and <= 100,000 samples, got {step_s} over {span} s")
        rows = self._pg(_OCCUPANCY_SQL, self._params(scope, zone=zone, step=float(step_s)))
        step = timedelta(seconds=step_s)
        return [OccupancyPoint(cam, z, scope.start + k * step, int(occ), int(peak)) for cam, z, k, occ, peak in rows]

    def footfall_per_hour(self, scope: Scope, *, line: str | None = None, tz: str = "UTC") -> list[FootfallHour]:
        """Line crossings per hour, every hour of the window (zeros included), from the 30 s rollup.

        Args:
            scope: Tenant, stores, cameras and window (30 s buckets starting in it are counted).
            line: One line, or None for all lines in scope.
            tz: IANA time zone whose hours are counted (a store's local hours).

        """
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"footfall tz: expected an IANA time zone, got {tz!r}") from None
        rows = self._pg(_FOOTFALL_SQL, self._params(scope, line=line, tz=tz))
        return [FootfallHour(h, int(i), int(o)) for h, i, o in rows]

    def dwell_distribution(
        self, scope: Scope, *, zone: str | None = None, edges: Sequence[float] = DWELL_EDGES
    ) -> list[DwellDistribution]:
        """Histogram and percentiles of the dwell of visits that ended in the window, per zone.

        Args:
            scope: Tenant, stores, cameras and window.
            zone: One zone, or None for all.
            edges: Increasing bin lower edges in seconds, starting at 0.

        """
        edges = tuple(float(e) for e in edges)
        if not edges or edges[0] != 0 or any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError(f"dwell edges: expected increasing values starting at 0, got {edges}")
        params = self._params(scope, zone=zone, edges=list(edges))
        bins: dict[tuple[str, str], list[int]] = {}
        for cam, z, b, n in self._pg(_DWELL_BINS_SQL, params):
            bins.setdefault((cam, z), [0] * len(edges))[int(b) - 1] += int(n)
        return [
            DwellDistribution(
                cam, z, edges, tuple(bins[(cam, z)]), int(n), float(mean), float(p50), float(p90), float(mx)
            )
            for cam, z, n, mean, p50, p90, mx in self._pg(_DWELL_SQL, params)
        ]

    def queue_waits(
        self, scope: Scope, *, queue: str | None = None, percentiles: Sequence[float] = (0.5, 0.9, 0.99)
    ) -> list[QueueWaits]:
        """Joined/served/abandoned counts and wait percentiles of the served, per queue.

        Args:
            scope: Tenant, stores, cameras and window (events in it).
            queue: One queue, or None for all.
            percentiles: Fractions in ``[0, 1]``; keys come out as ``p50``, ``p90``, ``p99``, ``p99_9``.

        """
        qs = [float(q) for q in percentiles]
        if not qs or not all(0 <= q <= 1 for q in qs):
            raise ValueError(f"queue percentiles: expected fractions in [0, 1], got {percentiles}")
        out = []
        for cam, q, joined, served, abandoned, mean, mx, pcts in self._pg(
            _QUEUE_SQL, self._params(scope, queue=queue, qs=qs)
        ):
            values = pcts or [None] * len(qs)
            out.append(QueueWaits(
                cam, q, int(joined), int(served), int(abandoned), None if mean is None else float(mean),
                None if mx is None else float(mx), {_pct_name(p): v for p, v in zip(qs, values, strict=True)},
            ))
        return out

    def heatmap(self, scope: Scope) -> HeatmapGrid:
        """Person-seconds per cell for one camera over the window (snapshots whose time lies in it).

        Raises:
            ValueError: The scope does not name one store and one camera.

        """
        if scope.store is None or scope.camera is None:
            raise ValueError("heatmap: the scope must name a store and a camera (grids are per camera)")
        snaps = [a for (a,) in self._pg(_HEATMAP_SQL, self._params(scope))]
        if not snaps:
            return HeatmapGrid(scope.camera, 0, np.zeros((0, 0)), 0, 0)
        latest = snaps[-1]
        shape, cell_px = tuple(latest["shape"]), int(latest["cell_px"])
        flat = np.zeros(shape[0] * shape[1], np.float64)
        used = 0
        for a in snaps:
            if tuple(a["shape"]) == shape and int(a["cell_px"]) == cell_px:
                np.add.at(flat, np.asarray(a["cells"], np.int64), np.asarray(a["seconds"], np.float64))
                used += 1
        return HeatmapGrid(scope.camera, cell_px, flat.reshape(shape), used, len(snaps) - used)

    def events(self, scope: Scope, *, event_type: str, limit: int = 100) -> list[StoredEvent]:
        """The newest events of one kind in the window, newest first (e.g. ``alert_undelivered`` dead letters).

        Raises:
            ValueError: ``event_type`` is not an event type, or ``limit`` is not in 1..10000.

        """
        kind = EventType(event_type)
        if not 1 <= limit <= 10_000:
            raise ValueError(f"limit: expected 1..10000, got {limit}")
        rows = self._pg(_EVENTS_SQL, self._params(scope, type=str(kind), limit=limit))
        return [
            StoredEvent(scope.tenant, store, event_id, Event(
                kind, camera, ts, track_id, zone, line, queue, None if direction is None else Direction(direction),
                dwell_s, enter_ts, wait_s, attrs or {}))
            for store, camera, ts, event_id, track_id, zone, line, queue, direction, dwell_s, enter_ts, wait_s, attrs
            in rows
        ]

    # -- ClickHouse ------------------------------------------------------------------------------

    def _clickhouse(self, call: Callable[[ClickHouseQueries], T]) -> T:
        if self._ch is None:
            raise StoreUnavailable("this EventQueries has no ClickHouse (clickhouse=None)")
        return call(self._ch)

    def top_journeys(
        self, scope: Scope, *, limit: int = 10, min_zones: int = 1, ends_at: str | None = None
    ) -> list[Journey]:
        """Most common zone paths (see :meth:`ClickHouseQueries.top_journeys`)."""
        return self._clickhouse(lambda ch: ch.top_journeys(scope, limit=limit, min_zones=min_zones, ends_at=ends_at))

    def funnel(self, scope: Scope, steps: Sequence[str], *, window_s: float = 3600.0) -> list[FunnelStep]:
        """Conversion through zones in order (see :meth:`ClickHouseQueries.funnel`)."""
        return self._clickhouse(lambda ch: ch.funnel(scope, steps, window_s=window_s))

    def hourly_counts(self, scope: Scope, *, event_type: str | None = None) -> list[HourlyCount]:
        """Distinct events per hour (see :meth:`ClickHouseQueries.hourly_counts`)."""
        return self._clickhouse(lambda ch: ch.hourly_counts(scope, event_type=event_type))

    # -- Redis -----------------------------------------------------------------------------------

    def live(self, tenant: str, store: str, *, recent: int = 50) -> dict[str, Any]:
        """The live view of a store, JSON-ready: occupancy, queues and the latest events.

        Returns:
            ``{"occupancy": [{camera, zone, count}], "queues": [{camera, queue, waiting, served,
            abandoned, last_wait_s}], "recent": [event, ...]}``.

        """
        for key, value in (("tenant", tenant), ("store", store)):
            if not ID_PATTERN.match(value):
                raise ValueError(f"live {key}: expected {ID_PATTERN.pattern}, got {value!r}")
        if self._live is None:
            raise StoreUnavailable("this EventQueries has no Redis (redis_url=None)")
        queues: dict[tuple[str, str], QueueLive] = self._live.queues(tenant, store)
        occupancy = sorted(self._live.occupancy(tenant, store).items())
        return {
            "occupancy": [{"camera": c, "zone": z, "count": n} for (c, z), n in occupancy],
            "queues": [
                {"camera": c, "queue": q, "waiting": s.waiting, "served": s.served, "abandoned": s.abandoned,
                 "last_wait_s": s.last_wait_s}
                for (c, q), s in queues.items()
            ],
            "recent": self._live.recent(tenant, store, recent),
        }

    def close(self) -> None:
        """Close every connection."""
        if self._conn is not None:
            self._conn.close()
        if self._live is not None:
            self._live.close()
