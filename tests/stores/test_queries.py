"""Every query on the known scenario returns the answer worked out by hand (tests/stores/scenario.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
import stores_scenario as sc
from stores_scenario import at

from rva.stores.clickhouse import ChdbDriver, ClickHouseWriter
from rva.stores.postgres import PostgresWriter
from rva.stores.query import EventQueries
from rva.stores.results import Scope
from rva.stores.servers import LocalServer


@pytest.fixture(scope="module")
def queries(pg_server: LocalServer, chdb_driver: ChdbDriver) -> Iterator[EventQueries]:
    name = f"q_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    dsn = pg_server.url.rsplit("/", 1)[0] + f"/{name}"
    pg = PostgresWriter(dsn)
    ch = ClickHouseWriter(chdb_driver, name)
    rows = sc.records()
    for half in (rows[: len(rows) // 2], rows[len(rows) // 2 :]):  # two batches, like a consumer would
        pg.write(half)
        ch.write(half)
    pg.close()
    q = EventQueries(dsn, chdb_driver, name)
    yield q
    q.close()
    chdb_driver.command(f"DROP DATABASE IF EXISTS {name}")


def scope(start: float = 0, end: float = 7200, store: str | None = "s1", camera: str | None = None,
          tenant: str = "acme") -> Scope:
    return Scope(tenant, at(start), at(end), store, camera)


def test_occupancy_every_30s(queries: EventQueries) -> None:
    points = queries.occupancy(scope(0, 180, camera="cam1"))
    got = {z: [((p.ts - sc.T0).total_seconds(), p.occupancy, p.peak) for p in points if p.zone == z] for z in "ABC"}
    assert got == sc.OCCUPANCY


@pytest.mark.parametrize(
    ("zone", "step", "start", "end", "expected"),
    [
        ("A", 60.0, 0, 180, [(0, 0, 3), (60, 2, 2), (120, 1, 1)]),  # the 3 at t=40 is the peak of [0, 60)
        ("A", 45.0, 0, 90, [(0, 0, 3), (45, 2, 2)]),  # at 45: t1, t2, t4 entered, t1 left at 40 -> 2
        ("C", 30.0, 100, 160, [(100, 0, 1), (130, 2, 2)]),  # samples start at `start`, not on a grid
    ],
)
def test_occupancy_steps(queries: EventQueries, zone: str, step: float, start: float, end: float,
                         expected: list[tuple[float, int, int]]) -> None:
    points = queries.occupancy(scope(start, end), step_s=step, zone=zone)
    assert [((p.ts - sc.T0).total_seconds(), p.occupancy, p.peak) for p in points] == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # door in at 5, 15, 25, 35 and 3605; out at 3590 and 3700; staff in at 50; in at 7300 is past the window.
        ({}, [(10, 5, 1), (11, 1, 1)]),
        ({"line": "door"}, [(10, 4, 1), (11, 1, 1)]),
        ({"line": "staff"}, [(10, 1, 0), (11, 0, 0)]),
        ({"store": None}, [(10, 6, 1), (11, 1, 1)]),  # s2's door crossing at 100 joins in
        ({"tenant": "other"}, [(10, 5, 1), (11, 1, 1)]),  # same events (and ids) under another tenant: not doubled
    ],
)
def test_footfall_per_hour(
    queries: EventQueries, kwargs: dict[str, object], expected: list[tuple[int, int, int]]
) -> None:
    line = kwargs.pop("line", None)
    rows = queries.footfall_per_hour(scope(**kwargs), line=line)  # type: ignore[arg-type]
    assert [(r.hour.astimezone(UTC).hour, r.in_count, r.out_count) for r in rows] == expected


def test_footfall_in_a_half_hour_time_zone(queries: EventQueries) -> None:
    rows = queries.footfall_per_hour(scope(), line="door", tz="Asia/Kolkata")  # UTC+5:30: hours start at :30 UTC
    assert [(r.hour.astimezone(UTC).strftime("%H:%M"), r.in_count, r.out_count) for r in rows] == [
        ("09:30", 4, 0), ("10:30", 1, 2), ("11:30", 0, 0)
    ]
    with pytest.raises(ValueError, match="IANA"):
        queries.footfall_per_hour(scope(), tz="Mars/Olympus")


EDGES = (0.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@pytest.mark.parametrize(
    ("end", "zone", "expected"),
    [
        # A dwells 30, 75, 10, 300 (ended in the window); sorted 10, 30, 75, 300: p50 = 30 + .5 * 45,
        # p90 at rank 2.7 = 75 + .7 * 225.
        (7200, "A", [("A", (0, 0, 1, 1, 1, 0, 1, 0), 4, 103.75, 52.5, 232.5, 300.0)]),
        (300, "A", [("A", (0, 0, 1, 1, 1, 0, 0, 0), 3, 115 / 3, 30.0, 66.0, 75.0)]),  # t3 leaves A at 360
        (7200, None, [
            ("A", (0, 0, 1, 1, 1, 0, 1, 0), 4, 103.75, 52.5, 232.5, 300.0),
            ("B", (1, 0, 0, 1, 0, 0, 0, 0), 2, 28.75, 28.75, 49.75, 55.0),  # 2.5 and 55
            ("C", (0, 0, 1, 0, 0, 0, 0, 0), 1, 10.0, 10.0, 10.0, 10.0),
        ]),
    ],
)
def test_dwell_distribution(queries: EventQueries, end: float, zone: str | None, expected: list[tuple]) -> None:
    got = queries.dwell_distribution(scope(0, end), zone=zone, edges=EDGES)
    assert [(d.zone, d.counts, d.visits) for d in got] == [(e[0], e[1], e[2]) for e in expected]
    for d, e in zip(got, expected, strict=True):
        assert (d.mean_s, d.p50_s, d.p90_s, d.max_s) == pytest.approx(e[3:])
        assert d.edges == EDGES and d.camera == "cam1"


def test_queue_waits(queries: EventQueries) -> None:
    # Served waits 60, 20, 300 (sorted 20, 60, 300): p50 60, p90 at rank 1.8 = 60 + .8 * 240, p99 = 60 + .98 * 240.
    (q,) = queries.queue_waits(scope(), percentiles=(0.5, 0.9, 0.99))
    assert (q.camera, q.queue, q.joined, q.served, q.abandoned) == ("cam2", "till", 4, 3, 1)
    assert q.mean_wait_s == pytest.approx(380 / 3) and q.max_wait_s == 300.0
    assert q.percentiles == pytest.approx({"p50": 60.0, "p90": 252.0, "p99": 295.2})
    (early,) = queries.queue_waits(scope(0, 85), queue="till", percentiles=(0.5,))  # served at 70, 80 only
    assert (early.joined, early.served, early.abandoned, early.percentiles) == (3, 2, 0, {"p50": 40.0})
    assert queries.queue_waits(scope(), queue="nope") == []


def test_heatmap_window(queries: EventQueries) -> None:
    grid = queries.heatmap(scope(0, 7200, camera="cam1"))
    # Snapshots at 60 and 120 on the 2x3 grid add up; the 1x1 one at 30 has another shape; 7300 is outside.
    np.testing.assert_allclose(grid.grid, [[1.5, 0.0, 0.0], [0.0, 3.0, 0.5]])
    assert (grid.cell_px, grid.snapshots, grid.skipped) == (16, 2, 1)
    assert queries.heatmap(scope(0, 60, camera="cam1")).grid.tolist() == [[5.0]]  # only the 1x1 one
    assert queries.heatmap(scope(0, 20, camera="cam1")).snapshots == 0
    with pytest.raises(ValueError, match="camera"):
        queries.heatmap(scope())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # Paths by track: 1 ABC, 2 AC, 3 BA, 4 A, 6 ABC, 11 A A B -> AB (repeats collapse).
        ({}, [(("A", "B", "C"), 2), (("A",), 1), (("A", "B"), 1), (("A", "C"), 1), (("B", "A"), 1)]),
        ({"ends_at": "C"}, [(("A", "B", "C"), 2), (("A", "C"), 1)]),
        ({"min_zones": 3}, [(("A", "B", "C"), 2)]),
        ({"limit": 2}, [(("A", "B", "C"), 2), (("A",), 1)]),
    ],
)
def test_top_journeys(queries: EventQueries, kwargs: dict[str, object], expected: list[tuple]) -> None:
    got = queries.top_journeys(scope(camera="cam1"), **kwargs)  # type: ignore[arg-type]
    assert [(j.path, j.visitors) for j in got] == expected


def test_journeys_respect_the_window(queries: EventQueries) -> None:
    got = queries.top_journeys(scope(0, 100))  # entries before 100: t1 A B, t2 A, t3 B A, t4 A
    assert [(j.path, j.visitors) for j in got] == [(("A",), 2), (("A", "B"), 1), (("B", "A"), 1)]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        # Levels: t1 3 (A10 B45 C110), t2 1, t3 1 (B before A), t4 1, t6 3, t11 2.
        (3600.0, [("A", 6, 1.0, 1.0), ("B", 3, 0.5, 0.5), ("C", 2, 2 / 6, 2 / 3)]),
        (100.0, [("A", 6, 1.0, 1.0), ("B", 3, 0.5, 0.5), ("C", 2, 2 / 6, 2 / 3)]),  # t1's C is 100 s after A
        (99.0, [("A", 6, 1.0, 1.0), ("B", 2, 2 / 6, 2 / 6), ("C", 1, 1 / 6, 1 / 2)]),  # and t11's A400 -> B500
    ],
)
def test_funnel(queries: EventQueries, window: float, expected: list[tuple]) -> None:
    got = queries.funnel(scope(camera="cam1"), ["A", "B", "C"], window_s=window)
    assert [(s.zone, s.visitors) for s in got] == [(e[0], e[1]) for e in expected]
    assert [v for s in got for v in (s.conversion, s.step_conversion)] == pytest.approx(
        [v for e in expected for v in e[2:]]
    )


def test_hourly_counts_match_the_postgres_rollup(queries: EventQueries) -> None:
    got = queries.hourly_counts(scope(), event_type="line_cross")
    assert [(h.hour.hour, h.name, h.direction, h.count) for h in got] == [
        (10, "door", "in", 4), (10, "door", "out", 1), (10, "staff", "in", 1),
        (11, "door", "in", 1), (11, "door", "out", 1),
    ]
    by_hour: dict[int, int] = {}
    for h in got:
        by_hour[h.hour.hour] = by_hour.get(h.hour.hour, 0) + h.count
    assert by_hour == {f.hour.hour: f.in_count + f.out_count for f in queries.footfall_per_hour(scope())}


def test_tenant_is_required_and_isolates(queries: EventQueries) -> None:
    assert queries.top_journeys(scope(tenant="nobody")) == []
    assert queries.dwell_distribution(scope(tenant="other")) == []  # other holds no exits
    with pytest.raises(ValueError, match="tenant"):
        Scope("", at(0), at(1))
    with pytest.raises(ValueError, match="timezone-aware"):
        Scope("acme", datetime(2026, 3, 7), datetime(2026, 3, 8))
    with pytest.raises(ValueError, match="start < end"):
        Scope("acme", at(10), at(0))


def test_results_are_json_ready(queries: EventQueries) -> None:
    import json

    payload = {
        "occupancy": [p.to_dict() for p in queries.occupancy(scope(0, 60))],
        "heatmap": queries.heatmap(scope(camera="cam1")).to_dict(),
        "funnel": [s.to_dict() for s in queries.funnel(scope(), ["A", "B"])],
    }
    back = json.loads(json.dumps(payload))
    assert back["occupancy"][0]["ts"] == "2026-03-07T10:00:00+00:00"
    assert back["heatmap"]["grid"] == [[1.5, 0.0, 0.0], [0.0, 3.0, 0.5]]
