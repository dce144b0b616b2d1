"""ClickHouse layer on chdb (the real engine in-process): schema from empty, replays collapse, URL handling."""

from __future__ import annotations

import pytest
import stores_scenario as sc

from rva.stores.clickhouse import ChdbDriver, ClickHouseWriter, open_driver
from rva.stores.clickhouse_queries import ClickHouseQueries
from rva.stores.errors import StoreUnavailable
from rva.stores.results import Scope
from rva.stores.servers import free_port


def test_schema_from_empty_and_replays_collapse(chdb_driver: ChdbDriver, ch_db: str) -> None:
    assert chdb_driver.query(f"SELECT count() FROM system.databases WHERE name = '{ch_db}'") == [(0,)]
    writer = ClickHouseWriter(chdb_driver, ch_db)
    ClickHouseWriter(chdb_driver, ch_db)  # a second writer: DDL is idempotent
    tables = {t for (t,) in chdb_driver.query(f"SELECT name FROM system.tables WHERE database = '{ch_db}'")}
    assert tables == {"events", "hourly_counts", "hourly_counts_mv"}
    rows = sc.records()
    q = ClickHouseQueries(chdb_driver, ch_db)
    scope = Scope("acme", sc.at(0), sc.at(86_400))
    writer.write(rows)
    first = (q.count_events("acme"), q.count_hourly("acme"), q.top_journeys(scope), q.hourly_counts(scope))
    for _ in range(2):
        writer.write(rows)
        writer.write(rows[3:17])
    raw = chdb_driver.query(f"SELECT count() FROM {ch_db}.events")[0][0]
    assert raw > len(rows)  # the copies are on disk until a merge...
    assert (q.count_events("acme"), q.count_hourly("acme"), q.top_journeys(scope), q.hourly_counts(scope)) == first
    chdb_driver.command(f"OPTIMIZE TABLE {ch_db}.events FINAL")
    assert chdb_driver.query(f"SELECT count() FROM {ch_db}.events")[0][0] == len(rows)  # ...and merged away
    assert first[0] == sum(r.tenant == "acme" for r in rows) == first[1]


@pytest.mark.parametrize("url", ["mysql://x", "clickhouse://host"])
def test_unknown_url_scheme(url: str) -> None:
    with pytest.raises(ValueError, match="chdb:///path or http"):
        open_driver(url)


def test_server_driver_reports_an_unreachable_server_as_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="clickhouse"):
        open_driver(f"http://127.0.0.1:{free_port()}")
