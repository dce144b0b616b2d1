"""PostgreSQL writer: COPY into a staging table, one idempotent statement, commit; migrations and retention."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from rva.stores import faults
from rva.stores.errors import StoreRejected, StoreUnavailable
from rva.stores.postgres_schema import (
    DEFAULT_RETENTION,
    MIGRATIONS,
    ROLLUPS,
    SCHEMA,
    Retention,
    bootstrap_sql,
    ingest_sql,
    partition_sql,
)
from rva.stores.records import StoredEvent

log = logging.getLogger(__name__)

_STAGE = "pg_temp.rva_stage"
_STAGE_COLUMNS = (
    ("tenant", "text"), ("store", "text"), ("camera", "text"), ("ts", "float8"), ("event_id", "uuid"),
    ("type", "text"), ("track_id", "int8"), ("zone", "text"), ("line", "text"), ("queue", "text"),
    ("direction", "text"), ("dwell_s", "float8"), ("enter_ts", "float8"), ("wait_s", "float8"), ("attrs", "text"),
)
_LOCK_ID = 0x5256_4153  # advisory lock key of migrations and partition DDL ("RVAS")
_PARTITION_RE = re.compile(r"^(events|visits)_p(\d{8})$")


def connect(dsn: str, *, timeout_s: float = 10.0) -> psycopg.Connection[Any]:
    """Open a connection in UTC (rollup hours and buckets are UTC unless a query names a zone).

    Raises:
        StoreUnavailable: The server cannot be reached in ``timeout_s``.

    """
    try:
        return psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s)), options="-c TimeZone=UTC")
    except psycopg.OperationalError as err:
        raise StoreUnavailable(f"postgres: cannot connect: {err}") from None


def timescale_available(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server can ``CREATE EXTENSION timescaledb``."""
    row = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return bool(row and row[0])


def migrate(
    conn: psycopg.Connection[Any], *, timescale: bool | None = None, retention: Retention = DEFAULT_RETENTION
) -> str:
    """Bring the schema up to date from any state, empty included; safe to run concurrently.

    Args:
        conn: A connection (its transaction state is committed on return).
        timescale: Force the mode; None picks TimescaleDB when the extension is available. Once a
            database is migrated its mode is kept.
        retention: Horizons for the TimescaleDB policies.

    Returns:
        The mode in force: ``"native"`` or ``"timescaledb"``.

    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        for stmt in bootstrap_sql():
            conn.execute(stmt)  # type: ignore[arg-type]
        applied = dict(conn.execute(f"SELECT version, mode FROM {SCHEMA}.schema_migrations").fetchall())
        if applied:
            mode = next(iter(applied.values()))
        else:
            use = timescale_available(conn) if timescale is None else timescale
            mode = "timescaledb" if use else "native"
        for version, name, render in MIGRATIONS:
            if version in applied:
                continue
            for stmt in render(mode == "timescaledb", retention):
                conn.execute(stmt)  # type: ignore[arg-type]
            conn.execute(
                f"INSERT INTO {SCHEMA}.schema_migrations (version, name, mode) VALUES (%s, %s, %s)",
                (version, name, mode),
            )
            log.info("postgres: applied migration %d (%s, %s)", version, name, mode)
    return str(mode)


def _partitions(conn: psycopg.Connection[Any]) -> set[tuple[str, date]]:
    """The native day partitions that exist, as ``(table, day)``."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s", (SCHEMA,),
    ).fetchall()
    out = set()
    for (name,) in rows:
        m = _PARTITION_RE.match(name)
        if m:
            out.add((m.group(1), datetime.strptime(m.group(2), "%Y%m%d").date()))
    return out


def _day(ts: float) -> date:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=ts)).date()


def _row(r: StoredEvent) -> tuple[Any, ...]:
    e = r.event
    return (
        r.tenant, r.store, e.camera, e.ts, r.event_id, str(e.type), e.track_id, e.zone, e.line, e.queue,
        None if e.direction is None else str(e.direction), e.dwell_s, e.enter_ts, e.wait_s,
        json.dumps(e.attrs, separators=(",", ":")) if e.attrs else None,
    )


def _visit_enter(r: StoredEvent) -> float | None:
    e = r.event
    if e.zone is None:
        return None
    if e.enter_ts is not None:
        return e.enter_ts
    return e.ts - e.dwell_s if e.dwell_s is not None else e.ts


class PostgresWriter:
    """Writes batches of events into PostgreSQL, exactly once in effect.

    Each batch: COPY (binary) into a temporary staging table, then one statement inserts the events
    (``ON CONFLICT DO NOTHING`` on the event id), upserts the visits and, on native PostgreSQL,
    increments the 30 s rollups from the rows that were new, then COMMIT. A crash before the commit
    leaves nothing; a batch replayed after the commit inserts and adds nothing.

    Args:
        dsn: libpq connection string or URL.
        timescale: Force the schema mode (None: TimescaleDB when available).
        retention: Retention horizons.

    Raises:
        StoreUnavailable: The server cannot be reached.

    """

    name = "postgres"

    def __init__(self, dsn: str, *, timescale: bool | None = None, retention: Retention = DEFAULT_RETENTION) -> None:
        self.dsn = dsn
        self.retention = retention
        self._timescale_pref = timescale
        self._conn: psycopg.Connection[Any] | None = None
        self._days: set[tuple[str, date]] = set()
        self.mode = ""
        self._open()

    def _open(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = connect(self.dsn)
        try:
            self.mode = migrate(conn, timescale=self._timescale_pref, retention=self.retention)
            cols = ", ".join(f"{n} {t}" for n, t in _STAGE_COLUMNS)
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS rva_stage ({cols}) ON COMMIT DELETE ROWS")
            conn.commit()
            self._days = set() if self.mode == "timescaledb" else _partitions(conn)
            conn.commit()
        except psycopg.OperationalError as err:
            conn.close()
            raise StoreUnavailable(f"postgres: {err}") from None
        self._conn = conn
        self._sql = ingest_sql(self.mode == "timescaledb", _STAGE)
        return conn

    def _ensure_partitions(self, conn: psycopg.Connection[Any], batch: Sequence[StoredEvent]) -> None:
        if self.mode == "timescaledb":
            return
        need: set[tuple[str, date]] = set()
        for r in batch:
            need.add(("events", _day(r.event.ts)))
            enter = _visit_enter(r)
            if enter is not None:
                need.add(("visits", _day(max(enter, 0.0))))
        missing = sorted(need - self._days)
        if not missing:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            for table, day in missing:
                conn.execute(partition_sql(table, day))  # type: ignore[arg-type]
        self._days.update(missing)

    def write(self, batch: Sequence[StoredEvent]) -> int:
        """Store a batch atomically; return how many events were new.

        Raises:
            StoreUnavailable: Connection lost or the server failed transiently (retry the batch).
            StoreRejected: The server refused the data (split the batch to find the culprit).

        """
        if not batch:
            return 0
        try:
            conn = self._open()
            self._ensure_partitions(conn, batch)
            halves = [batch[: len(batch) // 2], batch[len(batch) // 2 :]] if faults.armed(self.name, "mid") else [batch]
            with conn.transaction(), conn.cursor() as cur:
                for i, part in enumerate(halves):
                    with cur.copy(f"COPY {_STAGE} FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types([t for _, t in _STAGE_COLUMNS])
                        for r in part:
                            copy.write_row(_row(r))
                    if i == 0:
                        faults.crash_point(self.name, "mid")
                row = cur.execute(self._sql).fetchone()  # type: ignore[arg-type]
            return int(row[0]) if row else 0
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as err:
            raise StoreRejected(f"postgres: {err}") from None
        except psycopg.Error as err:
            self.close()
            raise StoreUnavailable(f"postgres: {err}") from None

    def apply_retention(self, now: datetime | None = None) -> list[str]:
        """Drop expired day partitions and rollup rows (native mode; TimescaleDB has policies).

        Args:
            now: Reference time (default: the wall clock).

        Returns:
            What was dropped or deleted, one line each.

        """
        if self.mode == "timescaledb":
            return []
        now = now or datetime.now(UTC)
        raw_cut = (now - timedelta(days=self.retention.raw_days)).date()
        rollup_cut = now - timedelta(days=self.retention.rollup_days)
        conn = self._open()
        done = []
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            for table, day in sorted(_partitions(conn)):
                if day < raw_cut:  # a day partition is dropped once all of it is past the horizon
                    conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{table}_p{day:%Y%m%d}")  # type: ignore[arg-type]
                    self._days.discard((table, day))
                    done.append(f"dropped {table} {day.isoformat()}")
            for name in ROLLUPS:
                cur = conn.execute(f"DELETE FROM {SCHEMA}.{name} WHERE bucket < %s", (rollup_cut,))  # type: ignore[arg-type]
                if cur.rowcount:
                    done.append(f"deleted {cur.rowcount} rows of {name}")
        return done

    def close(self) -> None:
        """Close the connection (the next write reconnects)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
