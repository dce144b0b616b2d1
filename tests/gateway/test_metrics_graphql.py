"""Metrics over REST and GraphQL on the stores' known scenario: the query layer's answers, tenant-filtered."""

from __future__ import annotations

import gzip
import json
from typing import Any

import cv2
import numpy as np
import pytest
from gateway_env import Env, load_stores_scenario

from rva.stores.clickhouse import ClickHouseWriter
from rva.stores.postgres import PostgresWriter
from rva.stores.query import EventQueries
from rva.stores.records import StoredEvent
from rva.stores.results import Scope
from rva.sync.v1 import sync_pb2

sc = load_stores_scenario()
SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]
CAMERAS = [
    {"id": "cam1", "source": {"type": "file", "path": "x.mp4"},
     "zones": [{"name": z, "polygon": SQUARE} for z in "ABC"],
     "lines": [{"name": "door", "start": [0, 0], "end": [0, 50]}, {"name": "staff", "start": [9, 0], "end": [9, 50]}]},
    {"id": "cam2", "source": {"type": "file", "path": "y.mp4"},
     "queues": [{"name": "till", "queue_polygon": SQUARE, "service_polygon": [[200, 0], [300, 0], [300, 90]]}]},
]


def iso(seconds: float) -> str:
    return sc.at(seconds).isoformat()


@pytest.fixture(scope="module")
def s1(env: Env) -> Env:
    h = env.auth("acme", "admin")
    # the scenario is a day in March 2026: acme keeps its data long enough to see it
    r = env.client.patch("/v1/tenants/acme", json={"retention": {"raw_days": 3650, "rollup_days": 3650}}, headers=h)
    assert r.status_code == 200, r.text
    key = env.store("s1", cameras=CAMERAS, funnel=["A", "B", "C"])
    events = sc.ACME_S1
    half = len(events) // 2
    body = {"batch_id": "scenario-1", "store": "s1", "events": [e.to_dict() for e in events[:half]]}
    r = env.client.post("/v1/ingest/events", content=gzip.compress(json.dumps(body).encode()), headers={
        "X-API-Key": key, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["new_events"] == half, r.text
    pb = sync_pb2.EventBatch(batch_id="scenario-2", store="s1", events=[e.to_proto("s1") for e in events[half:]])
    r = env.client.post("/v1/ingest/events", content=gzip.compress(pb.SerializeToString()), headers={
        "X-API-Key": key, "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["new_events"] == len(events) - half, r.text
    # Another tenant's data under the same store id (the scenario's "other"), written behind the gateway's back
    # into the same stores: the query layer must keep it out of acme's answers.
    other = [StoredEvent.of("other", "s1", e) for e in sc.OTHER_S1]
    PostgresWriter(env.dsn).write(other)
    ClickHouseWriter(env.gw.clickhouse, env.settings.clickhouse_db).write(other)
    return env


def get(env: Env, path: str, role: str = "viewer", **params: Any) -> Any:
    r = env.client.get(path, params=params, headers=env.auth("acme", role))
    assert r.status_code == 200, r.text
    return r.json()


def test_occupancy_matches_the_hand_worked_answers(s1: Env) -> None:
    rows = get(s1, "/v1/stores/s1/metrics/occupancy", start=iso(0), end=iso(180), camera="cam1", step_s=30)
    got = {z: [(round((np.datetime64(r["ts"][:19]) - np.datetime64(sc.T0.isoformat()[:19])).astype(int)),
                r["occupancy"], r["peak"]) for r in rows if r["zone"] == z] for z in "ABC"}
    assert got == sc.OCCUPANCY


@pytest.mark.parametrize(("path", "params", "call"), [
    ("footfall", {"line": "door"}, lambda q, s: q.footfall_per_hour(s, line="door")),
    ("footfall", {}, lambda q, s: q.footfall_per_hour(s)),
    ("dwell", {"zone": "A"}, lambda q, s: q.dwell_distribution(s, zone="A")),
    ("queues", {}, lambda q, s: q.queue_waits(s)),
    ("journeys", {}, lambda q, s: q.top_journeys(s)),
    ("hourly", {"event_type": "line_cross"}, lambda q, s: q.hourly_counts(s, event_type="line_cross")),
    ("funnel", {}, lambda q, s: q.funnel(s, ["A", "B", "C"])),
])
def test_rest_returns_the_query_layers_results(s1: Env, path: str, params: dict[str, str], call: Any) -> None:
    got = get(s1, f"/v1/stores/s1/metrics/{path}", start=iso(0), end=iso(7200), **params)
    q = EventQueries(s1.dsn, s1.gw.clickhouse, s1.settings.clickhouse_db)
    expected = [r.to_dict() for r in call(q, Scope("acme", sc.at(0), sc.at(7200), "s1"))]
    q.close()
    assert got == json.loads(json.dumps(expected)) and got


def test_other_tenants_rows_never_count(s1: Env) -> None:
    # door crossings of acme: in at 5, 15, 25, 35 (hour 10) and 3605 (hour 11); "other" holds copies of them all
    rows = get(s1, "/v1/stores/s1/metrics/footfall", start=iso(0), end=iso(7200), line="door")
    assert [(r["in_count"], r["out_count"]) for r in rows] == [(4, 1), (1, 1)]
    funnel = get(s1, "/v1/stores/s1/metrics/funnel", start=iso(0), end=iso(7200))  # the config's funnel: A, B, C
    assert [(s["zone"], s["visitors"]) for s in funnel] == [("A", 6), ("B", 3), ("C", 2)]
    # and "other" cannot even name the store
    r = s1.client.get("/v1/stores/s1/metrics/footfall", headers=s1.auth("other", "admin"))
    assert r.status_code == 404


def test_heatmap_grid_and_png(s1: Env) -> None:
    grid = get(s1, "/v1/stores/s1/cameras/cam1/heatmap", start=iso(0), end=iso(7200))
    assert grid["grid"] == [[1.5, 0.0, 0.0], [0.0, 3.0, 0.5]] and (grid["rows"], grid["cols"]) == (2, 3)
    assert (grid["snapshots"], grid["skipped"], grid["cell_px"]) == (2, 1, 16)
    r = s1.client.get("/v1/stores/s1/cameras/cam1/heatmap.png", params={"start": iso(0), "end": iso(7200)},
                      headers=s1.auth("acme", "viewer"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (32, 48, 3)  # 2 x 3 cells of 16 px, over grey (no snapshot uploaded)


def test_live_view(s1: Env) -> None:
    live = get(s1, "/v1/stores/s1/live")
    assert {"occupancy", "queues", "lines", "recent", "store", "ts"} <= set(live)
    assert {(ln["camera"], ln["line"]) for ln in live["lines"]} == {("cam1", "door"), ("cam1", "staff")}
    (till,) = live["queues"]
    assert till["queue"] == "till" and till["served"] == 3 and till["abandoned"] == 1
    assert "wait_estimate_s" in till
    assert len(live["recent"]) == 20


def test_windows_are_validated(s1: Env) -> None:
    for params in ({"start": "2026-03-07T10:00:00"}, {"start": iso(100), "end": iso(0)},
                   {"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, {"step_s": "-5"}):
        r = s1.client.get("/v1/stores/s1/metrics/occupancy", params=params, headers=s1.auth())
        assert r.status_code == 422, (params, r.text)


GQL = """query($start: DateTime!, $end: DateTime!) {
  store(id: "s1") {
    id configVersion cameras { id zones lines queues }
    occupancy(start: $start, end: $end, camera: "cam1", stepS: 60) { zone ts occupancy peak }
    footfall(start: $start, end: $end, line: "door") { hour inCount outCount }
    queueWaits(start: $start, end: $end) { queue served abandoned meanWaitS percentiles }
    funnel(steps: ["A", "B", "C"], start: $start, end: $end) { zone visitors conversion }
    journeys(start: $start, end: $end, limit: 2) { path visitors }
  }
}"""


def gql(env: Env, query: str, variables: dict[str, Any] | None = None, tenant: str = "acme") -> Any:
    r = env.client.post("/graphql", json={"query": query, "variables": variables or {}},
                        headers=env.auth(tenant, "viewer"))
    assert r.status_code == 200, r.text
    return r.json()


def test_graphql_reads_the_same_numbers(s1: Env) -> None:
    out = gql(s1, GQL, {"start": iso(0), "end": iso(7200)})
    assert "errors" not in out, out
    store = out["data"]["store"]
    assert store["cameras"][0] == {"id": "cam1", "zones": ["A", "B", "C"], "lines": ["door", "staff"], "queues": []}
    assert [(f["inCount"], f["outCount"]) for f in store["footfall"]] == [(4, 1), (1, 1)]
    assert [(s["zone"], s["visitors"]) for s in store["funnel"]] == [("A", 6), ("B", 3), ("C", 2)]
    assert store["journeys"][0] == {"path": ["A", "B", "C"], "visitors": 2}
    rest = get(s1, "/v1/stores/s1/metrics/occupancy", start=iso(0), end=iso(7200), camera="cam1", step_s=60)
    assert [o["occupancy"] for o in store["occupancy"]] == [r["occupancy"] for r in rest]
    (till,) = store["queueWaits"]
    assert (till["served"], till["abandoned"]) == (3, 1)


def test_graphql_is_tenant_filtered(s1: Env) -> None:
    out = gql(s1, '{ store(id: "s1") { id } stores { id } tenant { id } }', tenant="other")
    assert out["data"] == {"store": None, "stores": [], "tenant": {"id": "other"}}
    r = s1.client.post("/graphql", json={"query": "{ stores { id } }"})
    assert r.status_code == 401


@pytest.mark.parametrize(("query", "needle"), [
    # store > tenant > stores > tenant > stores > tenant > stores > id: deeper than 6
    ('{ store(id: "s1") { tenant { stores { tenant { stores { tenant { stores { id } } } } } } } }',
     "exceeds maximum"),
    ("{ stores { occupancy { zone } footfall { hour } dwell { zone } queueWaits { queue } live } }", "cost"),
    ("{ " + " ".join(f'a{i}: store(id: "s1") {{ id }}' for i in range(16)) + " }", "aliases"),
])
def test_graphql_limits(s1: Env, query: str, needle: str) -> None:
    out = gql(s1, query)
    assert out.get("data") is None and needle in json.dumps(out["errors"]), out


def test_graphql_introspection_is_not_depth_limited(s1: Env) -> None:
    deep = ("{ __schema { types { name fields { name type { name ofType { name ofType { name ofType { name } } } } }"
            " } } }")
    out = gql(s1, deep)
    assert "errors" not in out and out["data"]["__schema"]["types"]


def test_retention_window_is_enforced_on_reads(s1: Env) -> None:
    h = s1.auth("acme", "admin")
    try:
        assert s1.client.patch("/v1/tenants/acme", json={"retention": {"raw_days": 30, "rollup_days": 400}},
                               headers=h).status_code == 200
        s1.gw.tenancy.forget("acme")
        r = s1.client.get("/v1/stores/s1/metrics/footfall", params={"start": iso(0), "end": iso(7200)}, headers=h)
        assert r.status_code == 422 and "retention" in r.json()["detail"]
    finally:
        s1.client.patch("/v1/tenants/acme", json={"retention": {"raw_days": 3650, "rollup_days": 3650}}, headers=h)
        s1.gw.tenancy.forget("acme")
