"""The gateway's Prometheus endpoint: its own port, requests per route template, ingest counters, WS clients."""

from __future__ import annotations

import gzip
import json
import time
import urllib.request
from typing import Any

from fastapi.testclient import TestClient
from gateway_env import fresh_database, seed_tenants, settings_for
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.auth import JwtVerifier
from rva.core.events import Event, EventType


def _samples(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def test_metrics_port_counts_requests_by_route_and_ingest(pg_server: Any, redis_server: Any) -> None:
    with fresh_database(pg_server) as dsn:
        seed_tenants(dsn)
        settings = settings_for(dsn, redis_server.url, None, metrics_port=0, metrics_host="127.0.0.1")
        with TestClient(create_app(settings)) as client:
            gw = client.app.state.gateway  # type: ignore[attr-defined]
            port = gw.prometheus.port
            assert port
            admin = {"Authorization": f"Bearer {JwtVerifier(settings).mint('t', 'acme', 'admin')}"}
            assert client.post("/v1/stores", json={"id": "p1", "name": "P1"}, headers=admin).status_code == 201
            key = client.post("/v1/stores/p1/api-keys", json={"name": "edge"}, headers=admin).json()["token"]
            for store in ("p1", "p1", "nope"):
                client.get(f"/v1/stores/{store}/metrics/occupancy", headers=admin)
            ts = time.time() - 60
            events = [Event(EventType.ZONE_ENTER, "cam1", ts + i, i + 1, zone="entrance") for i in range(5)]
            body = {"batch_id": "b1", "store": "p1",
                    "events": [{**e.to_dict(), "event_id": e.event_id("p1")} for e in events]}
            for _ in range(2):  # the second is a duplicate batch
                r = client.post("/v1/ingest/events", content=gzip.compress(json.dumps(body).encode()), headers={
                    "Authorization": f"Bearer {key}", "Content-Type": "application/json", "Content-Encoding": "gzip"})
                assert r.status_code == 200, r.text
            with client.websocket_connect("/v1/stores/p1/live/ws", headers=admin) as ws:
                ws.receive_json()  # the first message: the client is registered by then
                clients = {s[1] for s in _samples(port)["rva_gateway_ws_clients"]}
            samples = _samples(port)

    requests = {(lab["method"], lab["route"], lab["status"]): v for lab, v in samples["rva_gateway_requests_total"]}
    assert requests[("GET", "/v1/stores/{store}/metrics/occupancy", "200")] == 2  # templates, not paths
    assert requests[("GET", "/v1/stores/{store}/metrics/occupancy", "404")] == 1
    assert requests[("POST", "/v1/ingest/events", "200")] == 2
    assert not any("p1" in route for _, route, _ in requests)
    ops = {lab["operation"]: v for lab, v in samples["rva_gateway_operations_total"]}
    assert ops["ingest_batches"] == 1 and ops["ingest_events"] == 5 and ops["ingest_duplicate_batches"] == 1
    counts = {lab["route"]: v for lab, v in samples["rva_gateway_request_seconds_count"]}
    assert counts["/v1/ingest/events"] == 2
    assert clients == {1.0}
