"""Alerts raised on the edge (``alert`` events) reach the dashboard's feed and WebSocket, not re-evaluated."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

from fastapi.testclient import TestClient
from gateway_env import fresh_database, seed_tenants, settings_for

from gateway.app import create_app
from gateway.auth import JwtVerifier
from rva.core.events import Event, EventType


def test_an_edge_alert_reaches_the_live_socket_and_the_feed(pg_server: Any, redis_server: Any) -> None:
    with fresh_database(pg_server) as dsn:
        seed_tenants(dsn)
        settings = settings_for(dsn, redis_server.url, None)
        assert settings.alerts_source == "edge"
        with TestClient(create_app(settings)) as client:
            admin = {"Authorization": f"Bearer {JwtVerifier(settings).mint('t', 'acme', 'admin')}"}
            assert client.post("/v1/stores", json={"id": "ea1", "name": "EA"}, headers=admin).status_code == 201
            key = client.post("/v1/stores/ea1/api-keys", json={"name": "edge"}, headers=admin).json()["token"]
            alert = Event(EventType.ALERT, "till-cam", time.time() - 5, queue="till_1", attrs={
                "rule": "long_queue", "kind": "queue_length", "severity": "critical", "value": 6.0,
                "threshold": 4.0, "message": "queue length at till-cam/till_1: 6 > 4"})
            body = {"batch_id": "alerts-1", "store": "ea1", "events": [{**alert.to_dict(),
                                                                        "event_id": alert.event_id("ea1")}]}
            with client.websocket_connect("/v1/stores/ea1/live/ws", headers=admin) as ws:
                assert ws.receive_json()["type"] == "hello"
                r = client.post("/v1/ingest/events", content=gzip.compress(json.dumps(body).encode()), headers={
                    "Authorization": f"Bearer {key}", "Content-Type": "application/json", "Content-Encoding": "gzip"})
                assert r.status_code == 200, r.text
                got = ws.receive_json()
                while got["type"] != "alert":
                    got = ws.receive_json()
            assert got["alert"]["rule"] == "long_queue" and got["alert"]["target"] == "till_1"
            assert got["alert"]["severity"] == "critical" and got["alert"]["value"] == 6.0
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                feed = client.get("/v1/stores/ea1/alerts", headers=admin).json()
                if feed:
                    break
                time.sleep(0.1)
            assert [a["rule"] for a in feed] == ["long_queue"]
