"""ClickHouse: one SQL layer over two drivers (``chdb`` in-process, ``clickhouse-connect`` for a server).

Tables (in one database, default ``rva``):

- ``events``: ReplacingMergeTree partitioned by day, ordered by ``(tenant, store, camera, ts,
  event_id)``; a replayed event has the same sorting key, so it collapses, and every read uses
  ``FINAL`` so duplicates are never visible, merged or not.
- ``hourly_counts``: AggregatingMergeTree fed by a materialized view; counts are
  ``uniqExact(event_id)`` states, so a replayed block adds nothing to any hour.

Parameters travel as ClickHouse ``{name:Type}`` placeholders, which both drivers bind server-side.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa

from rva.stores import faults
from rva.stores.errors import StoreRejected, StoreUnavailable
from rva.stores.records import ID_PATTERN, StoredEvent
from rva.stores.results import FunnelStep, HourlyCount, Journey, Scope

_EVENT_COLUMNS = """
    tenant     LowCardinality(String),
    store      LowCardinality(String),
    camera     LowCardinality(String),
    ts         DateTime64(6, 'UTC'),
    event_id   UUID,
    type       LowCardinality(String),
    track_id   Nullable(Int64),
    zone       LowCardinality(String),
    line       LowCardinality(String),
    queue      LowCardinality(String),
    direction  LowCardinality(String),
    dwell_s    Nullable(Float64),
    enter_ts   Nullable(DateTime64(6, 'UTC')),
    wait_s     Nullable(Float64),
    attrs      String"""

_ARROW_SCHEMA = pa.schema([
    ("tenant", pa.string()), ("store", pa.string()), ("camera", pa.string()),
    ("ts", pa.timestamp("us", tz="UTC")), ("event_id", pa.string()), ("type", pa.string()),
    ("track_id", pa.int64()), ("zone", pa.string()), ("line", pa.string()), ("queue", pa.string()),
    ("direction", pa.string()), ("dwell_s", pa.float64()), ("enter_ts", pa.timestamp("us", tz="UTC")),
    ("wait_s", pa.float64()), ("attrs", pa.string()),
])


def schema_sql(db: str, raw_days: int = 400) -> list[str]:
    """DDL of the database, idempotent (``IF NOT EXISTS`` throughout).

    Args:
        db: Database name.
        raw_days: TTL of raw events (hourly counts are kept five times as long).

    """
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"""CREATE TABLE IF NOT EXISTS {db}.events ({_EVENT_COLUMNS}
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (tenant, store, camera, ts, event_id)
TTL toDateTime(ts) + INTERVAL {raw_days} DAY""",
        f"""CREATE TABLE IF NOT EXISTS {db}.hourly_counts (
    tenant LowCardinality(String), store LowCardinality(String), camera LowCardinality(String),
    hour DateTime('UTC'), type LowCardinality(String), name LowCardinality(String),
    direction LowCardinality(String), events AggregateFunction(uniqExact, UUID)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, store, hour, camera, type, name, direction)
TTL hour + INTERVAL {raw_days * 5} DAY""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hourly_counts_mv TO {db}.hourly_counts AS
SELECT tenant, store, camera, toStartOfHour(ts) AS hour, type, concat(zone, line, queue) AS name, direction,
       uniqExactState(event_id) AS events
FROM {db}.events
GROUP BY tenant, store, camera, hour, type, name, direction""",
    ]


class ClickHouseDriver(ABC):
    """What the SQL layer needs from a connection: statements, row queries, Arrow inserts."""

    @abstractmethod
    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing."""

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a SELECT; rows as tuples of plain Python values (numbers, strings, lists, None)."""

    @abstractmethod
    def insert_arrow(self, table: str, data: pa.Table) -> None:
        """Insert an Arrow table (columns in the table's order)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""


class ChdbDriver(ClickHouseDriver):
    """ClickHouse in-process via chdb: data under ``path`` (one path per process, a chdb rule).

    Args:
        path: Data directory (None: in memory).

    """

    _lock = threading.Lock()

    def __init__(self, path: str | None) -> None:
        from chdb.session import Session

        try:
            self._session = Session(path) if path else Session()
        except RuntimeError as err:
            raise StoreUnavailable(f"chdb: {err}") from None
        self._session.query("SET output_format_json_quote_64bit_integers = 0")
        self._session.query("SET output_format_json_quote_denormals = 0")

    def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
        try:
            return self._session.query(sql, fmt, params=dict(params) if params else None)
        except Exception as err:  # chdb raises ChdbError/RuntimeError for everything
            raise StoreRejected(f"chdb: {err}") from None

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:  # noqa: D102
        self._run(sql, "CSV", params)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:  # noqa: D102
        out = self._run(sql, "JSONCompact", params)
        text = out.bytes() if hasattr(out, "bytes") else bytes(out)
        return [tuple(r) for r in json.loads(text)["data"]] if text.strip() else []

    def insert_arrow(self, table: str, data: pa.Table) -> None:  # noqa: D102
        self._run(f"INSERT INTO {table} SELECT * FROM Python(data)", "CSV", None)

    def close(self) -> None:  # noqa: D102
        self._session.close()


class ServerDriver(ClickHouseDriver):
    """A ClickHouse server over HTTP via clickhouse-connect.

    Args:
        url: ``http(s)://user:password@host:port``.
        timeout_s: Connect and send/receive timeout.

    """

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        import clickhouse_connect

        u = urlparse(url)
        try:
            self._client = clickhouse_connect.get_client(
                host=u.hostname or "localhost", port=u.port or (8443 if u.scheme == "https" else 8123),
                username=u.username or "default", password=u.password or "", secure=u.scheme == "https",
                connect_timeout=timeout_s, send_receive_timeout=timeout_s,
            )
        except Exception as err:
            raise StoreUnavailable(f"clickhouse {u.hostname}: {err}") from None

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:  # noqa: D102
        self._client.command(sql, parameters=dict(params) if params else None)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:  # noqa: D102
        return [tuple(r) for r in self._client.query(sql, parameters=dict(params) if params else None).result_rows]

    def insert_arrow(self, table: str, data: pa.Table) -> None:  # noqa: D102
        self._client.insert_arrow(table, data)

    def close(self) -> None:  # noqa: D102
        self._client.close()


def open_driver(url: str) -> ClickHouseDriver:
    """A driver for ``chdb:`` (in memory), ``chdb:///data/dir``, or ``http(s)://user:pw@host:port``.

    Raises:
        ValueError: Unknown scheme.
        StoreUnavailable: The server or data directory cannot be opened.

    """
    u = urlparse(url)
    if u.scheme == "chdb":
        return ChdbDriver(u.path or None)
    if u.scheme in ("http", "https"):
        return ServerDriver(url)
    raise ValueError(f"clickhouse url: expected chdb:///path or http(s)://host:port, got {url!r}")


def to_arrow(batch: Sequence[StoredEvent]) -> pa.Table:
    """The Arrow table of a batch, in the ``events`` column order."""
    cols: dict[str, list[Any]] = {name: [] for name in _ARROW_SCHEMA.names}
    for r in batch:
        e = r.event
        values = (
            r.tenant, r.store, e.camera, round(e.ts * 1e6), r.event_id.hex, str(e.type), e.track_id,
            e.zone or "", e.line or "", e.queue or "", "" if e.direction is None else str(e.direction),
            e.dwell_s, None if e.enter_ts is None else round(e.enter_ts * 1e6), e.wait_s,
            json.dumps(e.attrs, separators=(",", ":")) if e.attrs else "",
        )
        for name, value in zip(_ARROW_SCHEMA.names, values, strict=True):
            cols[name].append(value)
    return pa.table(cols, schema=_ARROW_SCHEMA)


class ClickHouseWriter:
    """Writes batches into ``<db>.events``; duplicates collapse (ReplacingMergeTree + ``FINAL`` reads).

    Args:
        driver: An open driver.
        database: Database name (created with the tables if missing).
        raw_days: TTL of raw events.

    """

    name = "clickhouse"

    def __init__(self, driver: ClickHouseDriver, database: str = "rva", raw_days: int = 400) -> None:
        if not ID_PATTERN.match(database):
            raise ValueError(f"clickhouse database: expected {ID_PATTERN.pattern}, got {database!r}")
        self.driver = driver
        self.db = database
        for stmt in schema_sql(database, raw_days):
            driver.command(stmt)

    def write(self, batch: Sequence[StoredEvent]) -> int:
        """Insert a batch (one insert; two when a ``mid`` crash point is armed); return its size.

        Raises:
            StoreRejected: ClickHouse refused the rows.
            StoreUnavailable: The server cannot be reached.

        """
        if not batch:
            return 0
        parts = [batch]
        if faults.armed(self.name, "mid"):
            parts = [batch[: len(batch) // 2], batch[len(batch) // 2 :]]
        for i, part in enumerate(parts):
            self.driver.insert_arrow(f"{self.db}.events", to_arrow(part))
            if i == 0:
                faults.crash_point(self.name, "mid")
        return len(batch)

    def close(self) -> None:
        """Close the driver."""
        self.driver.close()


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

    def count_events(self, tenant: str) -> int:
        """Distinct events stored for a tenant (``FINAL``: what every query sees)."""
        sql = f"SELECT count() FROM {self.db}.events FINAL WHERE tenant = {{t:String}}"
        rows = self.driver.query(sql, {"t": tenant})
        return int(rows[0][0])
