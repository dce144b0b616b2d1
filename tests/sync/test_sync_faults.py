"""Edge -> cloud delivery under faults, with real processes (bench/faults.py's scenarios).

Each scenario runs nats-server, the sync service and the gateway as processes on a fixture-started
PostgreSQL, breaks something, and counts what the cloud stored: every event once, except what the
disk-full policy dropped, which must be exactly what the sync service reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import faults
from bench.fault_harness import Harness

pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def harness(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    yield Harness(tmp_path_factory.mktemp("faults"), pg_server.url, down_s=60.0, drain_timeout_s=180.0)


def _exactly_once(r: faults.Result) -> None:
    assert r.sent > 0
    assert (r.lost, r.duplicated, r.dropped_reported) == (0, 0, 0), r
    assert r.received == r.sent


def test_gateway_down_for_60_s(harness: Harness) -> None:
    r = faults.gateway_down(harness)
    _exactly_once(r)
    assert r.name == "gateway_down_60s"
    assert "outbox peak" in r.notes and "~0 " not in r.notes  # the outbox really held events meanwhile


def test_sync_sigkill_mid_batch_and_restarts(harness: Harness) -> None:
    r = faults.sync_sigkill(harness)
    _exactly_once(r)
    assert r.resent > 0  # the batch the cloud committed before the kill came again and was de-duplicated


def test_connections_cut_by_a_proxy(harness: Harness) -> None:
    r = faults.proxy_cuts(harness)
    _exactly_once(r)
    cuts = int(r.notes.split("cuts ")[1].split(" ")[0])
    assert cuts >= 5, r.notes
    assert r.resent > 0  # some replies were cut after the cloud committed: re-sent, de-duplicated


def test_disk_full_drops_exactly_what_it_reports(harness: Harness) -> None:
    r = faults.disk_full(harness)
    assert r.duplicated == 0
    assert r.dropped_reported > 0
    assert r.lost == r.dropped_reported, r
    assert r.received == r.sent - r.dropped_reported


def test_edge_clock_two_hours_ahead(harness: Harness) -> None:
    r = faults.clock_skew(harness)
    _exactly_once(r)
    if "libfaketime" in r.notes:
        assert "+7200 s off" in r.notes or "+7199 s off" in r.notes or "+7201 s off" in r.notes, r.notes


def test_bench_writes_the_json_contract(pg_server: Any, tmp_path: Path) -> None:
    out = tmp_path / "faults.json"
    code = faults.main(["--scenarios", "baseline", "--postgres-dsn", pg_server.url, "--json", str(out),
                        "--work", str(tmp_path / "work")])
    assert code == 0
    import json

    body = json.loads(out.read_text())
    (row,) = body["scenarios"]
    assert {"name", "sent", "received", "lost", "duplicated"} <= set(row)
    assert row["name"] == "baseline" and row["sent"] == row["received"] == 2000
