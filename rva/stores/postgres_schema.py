"""PostgreSQL schema: one migration list, two renderings (native partitions, or TimescaleDB).

Native PostgreSQL: ``events`` and ``visits`` are partitioned by day (the writer creates partitions
and drops expired ones), and the 30 s rollups are tables the writer maintains in the same
transaction as the rows they count. TimescaleDB: the same tables become hypertables with
compression and retention policies, and the rollups become continuous aggregates of the same name
and columns, so the query layer reads either without knowing which it got.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

SCHEMA = "rva"
ROLLUP_S = 30


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of row is kept.

    Attributes:
        raw_days: Events, visits and heatmap snapshots.
        rollup_days: The 30 s rollups.
        compress_after_days: TimescaleDB only: compress chunks older than this.

    """

    raw_days: int = 90
    rollup_days: int = 400
    compress_after_days: int = 7


DEFAULT_RETENTION = Retention()

_EVENT_COLUMNS = """
    tenant     text             NOT NULL,
    store      text             NOT NULL,
    camera     text             NOT NULL,
    ts         timestamptz      NOT NULL,
    event_id   uuid             NOT NULL,
    type       text             NOT NULL,
    track_id   bigint,
    zone       text,
    line       text,
    queue      text,
    direction  text,
    dwell_s    double precision,
    enter_ts   timestamptz,
    wait_s     double precision,
    attrs      jsonb,
    PRIMARY KEY (tenant, ts, event_id)"""

_VISIT_COLUMNS = """
    tenant     text             NOT NULL,
    store      text             NOT NULL,
    camera     text             NOT NULL,
    zone       text             NOT NULL,
    track_id   bigint           NOT NULL,
    enter_ts   timestamptz      NOT NULL,
    exit_ts    timestamptz,
    dwell_s    double precision,
    PRIMARY KEY (tenant, store, enter_ts, camera, zone, track_id)"""

#: Rollup name -> (name column, source event types, aggregate columns as (name, SQL type, expression)).
ROLLUPS: dict[str, tuple[str, tuple[str, ...], tuple[tuple[str, str, str], ...]]] = {
    "line_counts_30s": ("line", ("line_cross",), (
        ("in_count", "bigint", "sum(CASE WHEN direction = 'in' THEN 1 ELSE 0 END)"),
        ("out_count", "bigint", "sum(CASE WHEN direction = 'out' THEN 1 ELSE 0 END)"),
    )),
    "zone_counts_30s": ("zone", ("zone_enter", "zone_exit"), (
        ("enters", "bigint", "sum(CASE WHEN type = 'zone_enter' THEN 1 ELSE 0 END)"),
        ("exits", "bigint", "sum(CASE WHEN type = 'zone_exit' THEN 1 ELSE 0 END)"),
        ("dwell_sum_s", "double precision", "coalesce(sum(dwell_s), 0)"),
    )),
    "queue_stats_30s": ("queue", ("queue_join", "queue_served", "queue_abandon"), (
        ("joined", "bigint", "sum(CASE WHEN type = 'queue_join' THEN 1 ELSE 0 END)"),
        ("served", "bigint", "sum(CASE WHEN type = 'queue_served' THEN 1 ELSE 0 END)"),
        ("abandoned", "bigint", "sum(CASE WHEN type = 'queue_abandon' THEN 1 ELSE 0 END)"),
        ("wait_sum_s", "double precision", "coalesce(sum(wait_s) FILTER (WHERE type = 'queue_served'), 0)"),
        ("wait_max_s", "double precision", "max(wait_s) FILTER (WHERE type = 'queue_served')"),
    )),
}
#: Event kinds the query layer reads from ``events`` itself (the partial index covers only these).
RAW_READ = ("queue_join", "queue_served", "queue_abandon", "heatmap_snapshot")
#: How a rollup column merges with a new partial row (native mode).
_MERGE = {"wait_max_s": "greatest(r.{c}, EXCLUDED.{c})"}


def _types_sql(types: tuple[str, ...]) -> str:
    return ", ".join(f"'{t}'" for t in types)


def schema_v1(timescale: bool, retention: Retention = DEFAULT_RETENTION) -> list[str]:
    """Statements of migration 1 (everything), one string each.

    Args:
        timescale: Render the TimescaleDB form (hypertables, continuous aggregates, policies).
        retention: Retention and compression horizons baked into the TimescaleDB policies.

    """
    s = SCHEMA
    part = "" if timescale else " PARTITION BY RANGE (ts)"
    vpart = "" if timescale else " PARTITION BY RANGE (enter_ts)"
    out = ["CREATE EXTENSION IF NOT EXISTS timescaledb"] if timescale else []
    out += [
        f"CREATE TABLE {s}.events ({_EVENT_COLUMNS}\n){part}",
        # Partial: only the kinds queries read from raw events (queue waits, heatmaps); the rest are read
        # through visits and rollups, and indexing them would cost every insert.
        f"CREATE INDEX events_scope_idx ON {s}.events (tenant, store, type, ts) WHERE type IN ({_types_sql(RAW_READ)})",
        f"CREATE TABLE {s}.visits ({_VISIT_COLUMNS}\n){vpart}",
    ]
    if timescale:
        out += [
            f"SELECT create_hypertable('{s}.events', by_range('ts', INTERVAL '1 day'))",
            f"SELECT create_hypertable('{s}.visits', by_range('enter_ts', INTERVAL '1 day'))",
        ]
        for table, order in (("events", "ts"), ("visits", "enter_ts")):
            out += [
                f"ALTER TABLE {s}.{table} SET (timescaledb.compress, "
                f"timescaledb.compress_segmentby = 'tenant, store, camera', timescaledb.compress_orderby = '{order}')",
                f"SELECT add_compression_policy('{s}.{table}', INTERVAL '{retention.compress_after_days} days')",
                f"SELECT add_retention_policy('{s}.{table}', INTERVAL '{retention.raw_days} days')",
            ]
    for name, (key, types, aggs) in ROLLUPS.items():
        if timescale:
            cols = ",\n    ".join(f"{expr}::{typ} AS {col}" for col, typ, expr in aggs)
            out += [
                f"CREATE MATERIALIZED VIEW {s}.{name}\n"
                "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS\n"
                f"SELECT tenant, store, time_bucket(INTERVAL '{ROLLUP_S} seconds', ts) AS bucket, camera, {key},\n"
                f"    {cols}\n"
                f"FROM {s}.events WHERE type IN ({_types_sql(types)})\n"
                f"GROUP BY tenant, store, bucket, camera, {key} WITH NO DATA",
                f"SELECT add_continuous_aggregate_policy('{s}.{name}', start_offset => INTERVAL '2 days', "
                f"end_offset => INTERVAL '{ROLLUP_S} seconds', schedule_interval => INTERVAL '1 minute')",
                f"SELECT add_retention_policy('{s}.{name}', INTERVAL '{retention.rollup_days} days')",
            ]
        else:
            cols = ",\n    ".join(f"{col} {typ}" for col, typ, _ in aggs)
            out.append(
                f"CREATE TABLE {s}.{name} (\n"
                "    tenant text NOT NULL, store text NOT NULL, bucket timestamptz NOT NULL,\n"
                f"    camera text NOT NULL, {key} text NOT NULL,\n    {cols},\n"
                f"    PRIMARY KEY (tenant, store, bucket, camera, {key})\n)"
            )
    return out


#: Versioned migrations: (version, name, renderer). Append only; never edit an applied one.
MIGRATIONS = ((1, "events, visits, 30 s rollups", schema_v1),)


def bootstrap_sql() -> list[str]:
    """What exists before any migration: the schema and the migrations ledger."""
    return [
        f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
        f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations (\n    version integer PRIMARY KEY,\n"
        "    name text NOT NULL,\n    mode text NOT NULL CHECK (mode IN ('native', 'timescaledb')),\n"
        "    applied_at timestamptz NOT NULL DEFAULT now()\n)",
    ]


def ingest_sql(timescale: bool, stage: str) -> str:
    """The one statement that moves a staged batch into the tables, idempotently.

    New rows (``ON CONFLICT DO NOTHING`` on the event id) feed the visits upsert and, natively, the
    rollup increments in the same statement: a replayed event inserts nothing, so it adds nothing.
    Returns the number of new events.
    """
    s = SCHEMA
    ctes = [
        f"""ins AS (
    INSERT INTO {s}.events (tenant, store, camera, ts, event_id, type, track_id, zone, line, queue, direction,
                            dwell_s, enter_ts, wait_s, attrs)
    SELECT tenant, store, camera, to_timestamp(ts), event_id, type, track_id, zone, line, queue, direction,
           dwell_s, to_timestamp(enter_ts), wait_s, attrs::jsonb
    FROM {stage}
    ON CONFLICT DO NOTHING
    RETURNING tenant, store, camera, ts, type, track_id, zone, line, queue, direction, dwell_s, enter_ts, wait_s)""",
        f"""visits AS (
    INSERT INTO {s}.visits AS v (tenant, store, camera, zone, track_id, enter_ts, exit_ts, dwell_s)
    SELECT tenant, store, camera, zone, track_id,
           CASE WHEN type = 'zone_enter' THEN ts
                ELSE coalesce(enter_ts, ts - make_interval(secs => dwell_s)) END AS visit_enter,
           max(ts) FILTER (WHERE type = 'zone_exit'),
           max(coalesce(dwell_s, extract(epoch FROM ts - enter_ts))) FILTER (WHERE type = 'zone_exit')
    FROM ins WHERE type IN ('zone_enter', 'zone_exit')
    GROUP BY tenant, store, camera, zone, track_id, visit_enter
    ON CONFLICT (tenant, store, enter_ts, camera, zone, track_id) DO UPDATE
        SET exit_ts = coalesce(v.exit_ts, EXCLUDED.exit_ts), dwell_s = coalesce(v.dwell_s, EXCLUDED.dwell_s)
    RETURNING 1)""",
    ]
    if not timescale:
        for name, (key, types, aggs) in ROLLUPS.items():
            cols = ", ".join(col for col, _, _ in aggs)
            exprs = ", ".join(expr for _, _, expr in aggs)
            merge = ", ".join(f"{c} = " + _MERGE.get(c, "r.{c} + EXCLUDED.{c}").format(c=c) for c, _, _ in aggs)
            ctes.append(
                f"""{name} AS (
    INSERT INTO {s}.{name} AS r (tenant, store, bucket, camera, {key}, {cols})
    SELECT tenant, store, date_bin(INTERVAL '{ROLLUP_S} seconds', ts, TIMESTAMPTZ 'epoch') AS b, camera, {key}, {exprs}
    FROM ins WHERE type IN ({_types_sql(types)})
    GROUP BY tenant, store, b, camera, {key}
    ON CONFLICT (tenant, store, bucket, camera, {key}) DO UPDATE SET {merge}
    RETURNING 1)"""
            )
    return "WITH " + ",\n".join(ctes) + "\nSELECT count(*) FROM ins"


def partition_name(table: str, day: date) -> str:
    """Name of a native day partition, e.g. ``events_p20260131``."""
    return f"{table}_p{day:%Y%m%d}"


def partition_sql(table: str, day: date) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for one day partition of ``events`` or ``visits``."""
    nxt = date.fromordinal(day.toordinal() + 1)
    return (
        f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{partition_name(table, day)} PARTITION OF {SCHEMA}.{table} "
        f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') TO ('{nxt.isoformat()} 00:00:00+00')"
    )


