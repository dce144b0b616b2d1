"""Helpers and fixtures of the gateway tests (conftest.py imports the fixtures from here).

The gateway runs against real servers: PostgreSQL, Redis, NATS (the stores' fixtures) and chdb, no mocks.

One gateway app per test module (its own PostgreSQL database, ClickHouse database, flushed Redis and
fresh event stream); tests isolate themselves with their own store ids. Tokens are signed with a
secret made for this session.
"""

from __future__ import annotations

import contextlib
import importlib.util
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import JwtVerifier
from gateway.models import PrivacyPolicy, RetentionPolicy, dump
from gateway.registry import Registry
from gateway.settings import GatewaySettings, RateLimit
from rva.stores.servers import LocalServer

# The stores' server fixtures, reused as they are (tests/stores/conftest.py).
_STORES = Path(__file__).parents[1] / "stores"
_spec = importlib.util.spec_from_file_location("rva_store_fixtures", _STORES / "conftest.py")
assert _spec is not None and _spec.loader is not None
_stores = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_stores)
nats_server = _stores.nats_server
redis_server = _stores.redis_server
pg_server = _stores.pg_server
reset_stream = _stores.reset_stream

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "out" / "test-artifacts"
JWT_SECRET = secrets.token_urlsafe(48)
TENANTS = ("operator", "acme", "other")
CAMERA = {
    "id": "cam1", "source": {"type": "file", "path": "x.mp4"}, "frame_size": [768, 576],
    "zones": [{"name": "entrance", "polygon": [[0, 0], [300, 0], [300, 300], [0, 300]], "capacity": 5},
              {"name": "till", "polygon": [[400, 0], [700, 0], [700, 300], [400, 300]]}],
    "lines": [{"name": "door", "start": [350, 0], "end": [350, 500]}],
    "queues": [{"name": "checkout", "queue_polygon": [[0, 350], [300, 350], [300, 570], [0, 570]],
                "service_polygon": [[400, 350], [700, 350], [700, 570], [400, 570]]}],
}


def settings_for(dsn: str, redis_url: str | None, nats_url: str | None, **overrides: Any) -> GatewaySettings:
    """Test settings: generous rate limits unless a test asks otherwise, no person detector unless asked."""
    base: dict[str, Any] = {
        "postgres_dsn": dsn, "redis_url": redis_url, "nats_url": nats_url, "jwt_secret": JWT_SECRET,
        "rate_limit_user": RateLimit(rate=5000, burst=50000), "rate_limit_device": RateLimit(rate=5000, burst=50000),
        "privacy_detector": "off", "ws_live_interval_s": 0.3,
    }
    base.update(overrides)
    return GatewaySettings.model_validate(base)


@contextlib.contextmanager
def fresh_database(pg: LocalServer) -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    name = f"g_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    try:
        yield pg.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]




def seed_tenants(dsn: str) -> None:
    """The tenants every test module starts with."""
    reg = Registry(dsn)
    reg.migrate()
    for t in TENANTS:
        reg.create_tenant(t, t.title(), dump(PrivacyPolicy()), dump(RetentionPolicy()))
    reg.close()


@dataclass
class Env:
    """A running gateway app and helpers to call it as different people."""

    settings: GatewaySettings
    client: TestClient
    dsn: str
    redis_url: str
    nats_url: str
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def gw(self) -> Any:
        return self.client.app.state.gateway  # type: ignore[attr-defined]

    def token(self, tenant: str = "acme", role: str = "admin", stores: list[str] | None = None, *,
              subject: str = "tester", **extra: Any) -> str:
        return JwtVerifier(self.settings).mint(subject, tenant, role, stores=stores, **extra)

    def auth(self, tenant: str = "acme", role: str = "admin", stores: list[str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(tenant, role, stores)}"}

    def store(self, store: str, tenant: str = "acme", cameras: list[dict[str, Any]] | None = None,
              funnel: list[str] | None = None) -> str:
        """Create a store with a config; return a device API key for it."""
        h = self.auth(tenant)
        r = self.client.post("/v1/stores", json={"id": store, "name": f"Store {store}"}, headers=h)
        assert r.status_code == 201, r.text
        doc = {"cameras": cameras if cameras is not None else [CAMERA], "alert_rules": [], "funnel": funnel or []}
        r = self.client.put(f"/v1/stores/{store}/config", json=doc, headers=h)
        assert r.status_code == 200, r.text
        r = self.client.post(f"/v1/stores/{store}/api-keys", json={"name": "edge"}, headers=h)
        assert r.status_code == 201, r.text
        self.keys[store] = r.json()["token"]
        return str(r.json()["token"])


@pytest.fixture(scope="module")
def env(pg_server: LocalServer, redis_server: LocalServer, nats_server: LocalServer, chdb_driver: Any) -> Iterator[Env]:
    with redis.Redis.from_url(redis_server.url) as r:
        r.flushall()
    reset_stream(nats_server.url)
    ch_db = f"g_{uuid.uuid4().hex[:12]}"
    with fresh_database(pg_server) as dsn:
        seed_tenants(dsn)
        settings = settings_for(dsn, redis_server.url, nats_server.url, clickhouse_db=ch_db)
        with TestClient(create_app(settings, clickhouse=chdb_driver)) as client:
            yield Env(settings, client, dsn, redis_server.url, nats_server.url)
    chdb_driver.command(f"DROP DATABASE IF EXISTS {ch_db}")


def save_artifact(path: Path, name: str) -> Path:
    """Copy a test output to out/test-artifacts/ (kept after the run for people to look at)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / name
    shutil.copyfile(path, target)
    return target


def load_stores_scenario() -> Any:
    """tests/stores/stores_scenario.py: a known store day with hand-worked answers."""
    spec = importlib.util.spec_from_file_location("stores_scenario", _STORES / "stores_scenario.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run an app under a real uvicorn server in a thread; yield its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
