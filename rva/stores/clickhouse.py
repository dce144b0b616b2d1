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
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa

from rva.stores import faults
from rva.stores.errors import StoreRejected, StoreUnavailable
from rva.stores.records import ID_PATTERN, StoredEvent

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

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from clickhouse_connect.driver.exceptions import OperationalError

        try:
            return fn(*args, **kwargs)
        except OperationalError as err:  # connection refused, timeouts: retry later
            raise StoreUnavailable(f"clickhouse: {err}") from None
        except Exception as err:  # the server refused the statement or the data
            raise StoreRejected(f"clickhouse: {err}") from None

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:  # noqa: D102
        self._call(self._client.command, sql, parameters=dict(params) if params else None)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:  # noqa: D102
        result = self._call(self._client.query, sql, parameters=dict(params) if params else None)
        return [tuple(r) for r in result.result_rows]

    def insert_arrow(self, table: str, data: pa.Table) -> None:  # noqa: D102
        self._call(self._client.insert_arrow, table, data)

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
    ev = [r.event for r in batch]
    cols: dict[str, list[Any]] = {
        "tenant": [r.tenant for r in batch],
        "store": [r.store for r in batch],
        "camera": [e.camera for e in ev],
        "ts": [round(e.ts * 1e6) for e in ev],
        "event_id": [r.event_id.hex for r in batch],
        "type": [e.type.value for e in ev],
        "track_id": [e.track_id for e in ev],
        "zone": [e.zone or "" for e in ev],
        "line": [e.line or "" for e in ev],
        "queue": [e.queue or "" for e in ev],
        "direction": ["" if e.direction is None else e.direction.value for e in ev],
        "dwell_s": [e.dwell_s for e in ev],
        "enter_ts": [None if e.enter_ts is None else round(e.enter_ts * 1e6) for e in ev],
        "wait_s": [e.wait_s for e in ev],
        "attrs": [json.dumps(e.attrs, separators=(",", ":")) if e.attrs else "" for e in ev],
    }
    return pa.table(cols, schema=_ARROW_SCHEMA)


class ClickHouseWriter:
    """Writes batches into ``<db>.events``; duplicates collapse (ReplacingMergeTree + ``FINAL`` reads).

    Args:
        driver: An open driver (the caller keeps owning it; see :meth:`open`).
        database: Database name (created with the tables if missing).
        raw_days: TTL of raw events.

    """

    name = "clickhouse"
    _owns_driver = False

    @classmethod
    def open(cls, url: str, database: str = "rva", raw_days: int = 400) -> ClickHouseWriter:
        """A writer on its own driver (see :func:`open_driver`), closed with the writer."""
        writer = cls(open_driver(url), database, raw_days)
        writer._owns_driver = True
        return writer

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
        """Close the driver if this writer opened it."""
        if self._owns_driver:
            self.driver.close()

