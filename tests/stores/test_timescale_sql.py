"""The TimescaleDB rendering cannot run here (no extension on Debian 12 or PyPI): generate it and parse it
with PostgreSQL's own parser (pglast wraps libpg_query), and check it has what the native rendering has."""

from __future__ import annotations

import re

import pglast
import pytest

from rva.stores.postgres_schema import ROLLUPS, Retention, bootstrap_sql, ingest_sql, schema_v1


def _parse_all(statements: list[str]) -> list[str]:
    kinds = []
    for stmt in statements:
        (raw,) = pglast.parse_sql(stmt)
        kinds.append(type(raw.stmt).__name__)
    return kinds


@pytest.mark.parametrize("timescale", [True, False], ids=["timescaledb", "native"])
def test_every_statement_parses(timescale: bool) -> None:
    kinds = _parse_all(bootstrap_sql() + schema_v1(timescale) + [ingest_sql(timescale, "pg_temp.rva_stage")])
    # schema_migrations, events, visits; the three rollups are tables natively, continuous aggregates otherwise
    assert kinds.count("CreateStmt") == (3 if timescale else 6)
    assert kinds.count("CreateTableAsStmt") == (3 if timescale else 0)
    assert kinds[-1] == "SelectStmt"


def test_timescale_rendering_has_hypertables_aggregates_and_policies() -> None:
    sql = "\n".join(schema_v1(True, Retention(raw_days=30, rollup_days=365, compress_after_days=3)))
    assert sql.index("CREATE EXTENSION IF NOT EXISTS timescaledb") < sql.index("create_hypertable")
    hypertables = re.findall(r"create_hypertable\('rva\.(\w+)', by_range\('(\w+)'", sql)
    assert hypertables == [("events", "ts"), ("visits", "enter_ts")]
    assert "PARTITION BY" not in sql
    for name in ROLLUPS:
        view = re.search(rf"CREATE MATERIALIZED VIEW rva\.{name}\n(.*?)WITH NO DATA", sql, re.S)
        assert view and "timescaledb.continuous" in view.group(1)
        assert "time_bucket(INTERVAL '30 seconds', ts)" in view.group(1)
        assert f"add_continuous_aggregate_policy('rva.{name}'" in sql
        assert f"add_retention_policy('rva.{name}', INTERVAL '365 days')" in sql
    for table in ("events", "visits"):
        assert f"add_retention_policy('rva.{table}', INTERVAL '30 days')" in sql
        assert f"add_compression_policy('rva.{table}', INTERVAL '3 days')" in sql


def test_both_renderings_expose_the_same_rollup_columns() -> None:
    """The query layer reads rollups by name and column: views and tables must agree."""
    for name, (key, _, aggs) in ROLLUPS.items():
        cols = ["tenant", "store", "bucket", "camera", key] + [c for c, _, _ in aggs]
        native = next(s for s in schema_v1(False) if f"TABLE rva.{name} " in s)
        view = next(s for s in schema_v1(True) if f"VIEW rva.{name}\n" in s)
        (n,) = pglast.parse_sql(native)
        (v,) = pglast.parse_sql(view)
        assert [e.colname for e in n.stmt.tableElts if hasattr(e, "colname")] == cols
        targets = v.stmt.query.targetList
        assert [t.name or t.val.fields[-1].sval for t in targets] == cols


def test_native_ingest_maintains_rollups_and_timescale_does_not() -> None:
    native, timescale = ingest_sql(False, "s"), ingest_sql(True, "s")
    for name in ROLLUPS:
        assert f"INSERT INTO rva.{name}" in native and f"INSERT INTO rva.{name}" not in timescale
