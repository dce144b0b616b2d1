"""PostgreSQL writer on a real server: migrations from an empty database, idempotent replays, retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
import stores_scenario as sc

from rva.core.events import Event, EventType
from rva.stores.errors import StoreUnavailable
from rva.stores.postgres import PostgresWriter, migrate
from rva.stores.postgres_schema import ROLLUPS, Retention
from rva.stores.records import StoredEvent
from rva.stores.servers import free_port

TABLES = ("events", "visits", *ROLLUPS)


def dump(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: two dumps are equal iff the stores hold the same data."""
    with psycopg.connect(dsn) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM rva.{t}").fetchall(), key=repr) for t in TABLES}  # type: ignore[arg-type]


def test_migrations_from_an_empty_database(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'rva'").fetchone() == (0,)
        assert migrate(conn) == "native"  # no timescaledb here
        assert migrate(conn) == "native"  # second run: nothing to do
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'rva'"
        ).fetchall()}
        assert set(TABLES) | {"schema_migrations"} <= tables
        parted = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"
        ).fetchall()}
        assert parted == {"events", "visits"}
        assert conn.execute("SELECT version, mode FROM rva.schema_migrations").fetchall() == [(1, "native")]


def test_write_then_replay_changes_nothing(pg_dsn: str) -> None:
    writer = PostgresWriter(pg_dsn)
    rows = sc.records()
    assert writer.write(rows) == len(rows)
    first = dump(pg_dsn)
    assert writer.write(rows) == 0  # same batch again
    assert writer.write(rows[::-1][:10] + rows[5:30]) == 0  # overlapping, reordered, with in-batch duplicates
    assert dump(pg_dsn) == first
    assert len(first["events"]) == len(rows)
    in_door = sum(r[5] for r in first["line_counts_30s"] if r[0] == "acme" and r[1] == "s1" and r[4] == "door")
    assert in_door == 6  # door ins at 5, 15, 25, 35, 3605, 7300
    writer.close()


def test_visits_do_not_depend_on_arrival_order(pg_dsn: str) -> None:
    enter = Event(EventType.ZONE_ENTER, "cam1", sc.t0 + 10, 1, zone="A")
    exit_ = Event(EventType.ZONE_EXIT, "cam1", sc.t0 + 40, 1, zone="A", dwell_s=30.0, enter_ts=sc.t0 + 10)
    writer = PostgresWriter(pg_dsn)
    writer.write([StoredEvent.of("acme", "s1", exit_)])  # the exit first, in its own batch
    writer.write([StoredEvent.of("acme", "s1", enter)])
    with psycopg.connect(pg_dsn) as conn:
        visits = conn.execute("SELECT track_id, enter_ts, exit_ts, dwell_s FROM rva.visits").fetchall()
    assert visits == [(1, sc.at(10), sc.at(40), 30.0)]
    writer.close()


def test_retention_drops_whole_expired_days(pg_dsn: str) -> None:
    writer = PostgresWriter(pg_dsn, retention=Retention(raw_days=2, rollup_days=3))
    days = [Event(EventType.LINE_CROSS, "c", sc.t0 + d * 86400, 1, line="l", direction=sc.IN) for d in range(5)]
    writer.write([StoredEvent.of("acme", "s1", e) for e in days])
    done = writer.apply_retention(now=sc.T0 + timedelta(days=4, hours=1))
    # raw horizon: day 4 - 2 = day 2 -> partitions of days 0 and 1 go; rollups older than day 1 01:00 go.
    assert done[:2] == ["dropped events 2026-03-07", "dropped events 2026-03-08"]
    assert done[2] == "deleted 2 rows of line_counts_30s"
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM rva.events").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM rva.line_counts_30s").fetchone() == (3,)
    late = Event(EventType.LINE_CROSS, "c", sc.t0 + 60, 2, line="l", direction=sc.IN)
    assert writer.write([StoredEvent.of("acme", "s1", late)]) == 1  # a dropped day's partition comes back
    writer.close()


def test_unreachable_server_is_unavailable_not_fatal() -> None:
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        PostgresWriter(f"postgresql://postgres@127.0.0.1:{free_port()}/x?connect_timeout=1")
