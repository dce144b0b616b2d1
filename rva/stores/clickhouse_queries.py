"""ClickHouse reads: journeys (ordered zone paths), funnels (``windowFunnel``), hourly counts (the MV).

Written once for both drivers of :mod:`rva.stores.clickhouse`; every read of ``events`` uses ``FINAL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rva.stores.clickhouse import ClickHouseDriver
from rva.stores.records import ID_PATTERN
from rva.stores.results import FunnelStep, HourlyCount, Journey, Scope


class ClickHouseQueries:
    """Journeys, funnels and hourly counts, written once for both drivers.

    Args:
        driver: An open driver.
        database: Database name.

    """

    def __init__(self, driver: ClickHouseDriver, database: str = "rva") -> None:
        if not ID_PATTERN.match(database):
            raise ValueError(f"clickhouse database: expected {ID_PATTERN.pattern}, got {database!r}")
        self.driver = driver
        self.db = database

    @staticmethod
    def _where(scope: Scope, params: dict[str, Any]) -> str:
        params.update(tenant=scope.tenant, start_us=scope.start_us, end_us=scope.end_us)
        sql = (
            "tenant = {tenant:String} AND ts >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC') "
            "AND ts < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')"
        )
        for key in ("store", "camera"):
            value = getattr(scope, key)
            if value is not None:
                params[key] = value
                sql += f" AND {key} = {{{key}:String}}"
        return sql

    def top_journeys(
        self, scope: Scope, *, limit: int = 10, min_zones: int = 1, ends_at: str | None = None
    ) -> list[Journey]:
        """The most common zone paths: per visitor (store, camera, track), zones in order of entry.

        Args:
            scope: Tenant, stores, cameras and window (zone entries inside it).
            limit: How many paths.
            min_zones: Leave out paths shorter than this.
            ends_at: Only paths whose last zone is this one ("which paths end at the fitting rooms").

        Returns:
            Paths by visitors, most first (ties by path).

        """
        if not 1 <= limit <= 1000 or min_zones < 1:
            raise ValueError(f"top_journeys: expected 1 <= limit <= 1000 and min_zones >= 1, got {limit}, {min_zones}")
        params: dict[str, Any] = {"limit": limit, "min_zones": min_zones}
        having = "length(path) >= {min_zones:UInt32}"
        if ends_at is not None:
            params["ends_at"] = ends_at
            having += " AND path[-1] = {ends_at:String}"
        sql = f"""
SELECT path, count() AS visitors FROM (
    SELECT arrayCompact(arrayMap(x -> x.2, arraySort(groupArray((ts, zone))))) AS path
    FROM {self.db}.events FINAL
    WHERE {self._where(scope, params)} AND type = 'zone_enter'
    GROUP BY store, camera, track_id
) WHERE {having}
GROUP BY path ORDER BY visitors DESC, path ASC LIMIT {{limit:UInt32}}"""
        return [Journey(tuple(path), int(n)) for path, n in self.driver.query(sql, params)]

    def funnel(self, scope: Scope, steps: Sequence[str], *, window_s: float = 3600.0) -> list[FunnelStep]:
        """Conversion through zones entered in order, each within ``window_s`` of the first step.

        Uses ClickHouse's ``windowFunnel`` per visitor (store, camera, track) over zone entries.

        Args:
            scope: Tenant, stores, cameras and window.
            steps: 2 to 10 zone names, in funnel order.
            window_s: Longest time from entering the first step to entering the last one counted.

        Returns:
            One :class:`FunnelStep` per step.

        """
        if not 2 <= len(steps) <= 10 or window_s <= 0:
            raise ValueError(f"funnel: expected 2-10 steps and window_s > 0, got {len(steps)} steps, {window_s}")
        params: dict[str, Any] = {"window_us": round(window_s * 1e6)}
        conds = []
        for i, zone in enumerate(steps):
            params[f"s{i}"] = zone
            conds.append(f"zone = {{s{i}:String}}")
        in_list = ", ".join(f"{{s{i}:String}}" for i in range(len(steps)))
        sql = f"""
SELECT level, count() FROM (
    SELECT windowFunnel({{window_us:UInt64}})(toUInt64(toUnixTimestamp64Micro(ts)), {", ".join(conds)}) AS level
    FROM {self.db}.events FINAL
    WHERE {self._where(scope, params)} AND type = 'zone_enter' AND zone IN ({in_list})
    GROUP BY store, camera, track_id
) GROUP BY level"""
        by_level = {int(level): int(n) for level, n in self.driver.query(sql, params)}
        reached = [sum(n for level, n in by_level.items() if level > i) for i in range(len(steps))]
        return [
            FunnelStep(
                zone, reached[i],
                reached[i] / reached[0] if reached[0] else 0.0,
                reached[i] / reached[i - 1] if i and reached[i - 1] else (1.0 if i == 0 and reached[0] else 0.0),
            )
            for i, zone in enumerate(steps)
        ]

    def hourly_counts(self, scope: Scope, *, event_type: str | None = None) -> list[HourlyCount]:
        """Distinct events per hour, camera, type, name and direction, from the materialized view.

        Hours whose start lies in ``[start, end)`` are returned (align the window to hours for exact totals).
        """
        params: dict[str, Any] = {}
        where = self._where(scope, params).replace("ts >=", "hour >=").replace("ts <", "hour <")
        if event_type is not None:
            params["type"] = event_type
            where += " AND type = {type:String}"
        sql = f"""
SELECT toUnixTimestamp(hour) AS h, camera, type, name, direction, uniqExactMerge(events) AS n
FROM {self.db}.hourly_counts WHERE {where}
GROUP BY h, camera, type, name, direction ORDER BY h, camera, type, name, direction"""
        return [
            HourlyCount(datetime.fromtimestamp(int(h), UTC), cam, typ, name, direction, int(n))
            for h, cam, typ, name, direction, n in self.driver.query(sql, params)
        ]

    def count_hourly(self, tenant: str) -> int:
        """Events counted by the hourly materialized view for a tenant (replays must not add any)."""
        sql = (
            "SELECT sum(n) FROM (SELECT uniqExactMerge(events) AS n FROM "
            f"{self.db}.hourly_counts WHERE tenant = {{t:String}} GROUP BY store, camera, hour, type, name, direction)"
        )
        rows = self.driver.query(sql, {"t": tenant})
        return int(rows[0][0] or 0)

    def count_events(self, tenant: str) -> int:
        """Distinct events stored for a tenant (``FINAL``: what every query sees)."""
        sql = f"SELECT count() FROM {self.db}.events FINAL WHERE tenant = {{t:String}}"
        rows = self.driver.query(sql, {"t": tenant})
        return int(rows[0][0])
