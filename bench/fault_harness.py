"""The fault bench's moving parts: child processes, the cloud (gateway on PostgreSQL, HTTPS), the edge
(nats-server + the sync service), the event producer and the harness that wires one scenario.

Used by ``bench/faults.py`` (the scenarios) and the tests that run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psycopg
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rva.stores.servers import free_port  # noqa: E402
from services.common.servers import NatsServer  # noqa: E402

JWT_SECRET = "bench-faults-" + "x" * 40
TENANT = "bench"


# -- processes --------------------------------------------------------------------------------------


class Proc:
    """A child process with its log file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.cmd, self.env = name, cmd, env
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, extra_env: dict[str, str] | None = None, wrap: list[str] | None = None) -> Proc:
        env = {**os.environ, **self.env, **(extra_env or {})}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*(wrap or []), *self.cmd], env=env, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=REPO, start_new_session=True)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 30) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])


def wait(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- the cloud --------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the edge trusts it as its CA bundle)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=3))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cloud-cert.pem", directory / "cloud-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


class Cloud:
    """The gateway process (HTTPS, a self-signed certificate) on its own PostgreSQL database, with one
    tenant, one store and its device key."""

    def __init__(self, admin_dsn: str, store: str, work: Path) -> None:
        self.admin_dsn = admin_dsn
        self.db = f"faults_{uuid.uuid4().hex[:10]}"
        self.dsn = admin_dsn.rsplit("/", 1)[0] + f"/{self.db}"
        self.store = store
        self.port = free_port()
        env = {
            "RVA_POSTGRES_DSN": self.dsn, "RVA_GATEWAY_JWT_SECRET": JWT_SECRET, "RVA_GATEWAY_INGEST_SINKS": "writers",
            "RVA_GATEWAY_PRIVACY_DETECTOR": "off",
            "RVA_GATEWAY_RATE_LIMIT_DEVICE": json.dumps({"rate": 10000, "burst": 100000}),
        }
        for var in ("RVA_REDIS_URL", "RVA_NATS_URL", "RVA_CLICKHOUSE_URL"):
            os.environ.pop(var, None)
        self.ca, key = self_signed(work)
        self.gateway = Proc("gateway", [sys.executable, "-m", "gateway", "serve", "--port", str(self.port),
                                        "--ssl-certfile", str(self.ca), "--ssl-keyfile", str(key),
                                        "--log-level", "warning"], env, work)
        self.key = ""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def setup(self) -> None:
        from gateway.auth import new_api_key
        from gateway.models import PrivacyPolicy, RetentionPolicy, dump
        from gateway.registry import Registry

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.db}")  # type: ignore[arg-type]
        subprocess.run([sys.executable, "-m", "gateway", "migrate"], env={**os.environ, **self.gateway.env},
                       cwd=REPO, check=True, capture_output=True)
        reg = Registry(self.dsn)
        reg.create_tenant(TENANT, "Bench", dump(PrivacyPolicy()), dump(RetentionPolicy()))
        reg.create_store(TENANT, self.store, "Fault bench store", "UTC", "bench")
        key_id, self.key, key_hash = new_api_key()
        reg.create_api_key(TENANT, self.store, key_id, "edge", key_hash)
        reg.close()

    def start(self) -> None:
        self.gateway.start()
        wait(lambda: port_open(self.port) or self._died(), 60, "the gateway to listen")

    def _died(self) -> bool:
        if not self.gateway.alive():
            raise RuntimeError(f"the gateway exited:\n{self.gateway.tail()}")
        return False

    def events(self) -> tuple[int, set[str]]:
        """(rows, distinct event ids) stored for the store."""
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute("SELECT replace(event_id::text, '-', '') FROM rva.events WHERE store = %s",
                                (self.store,)).fetchall()
        return len(rows), {r[0] for r in rows}

    def resent(self) -> int:
        """Events that arrived again in a later batch and were de-duplicated by event id."""
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT COALESCE(SUM(events - new_events), 0) FROM gateway.ingest_batches "
                               "WHERE store = %s", (self.store,)).fetchone()
        return int(row[0]) if row else 0

    def drop(self) -> None:
        self.gateway.stop()
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")  # type: ignore[arg-type]


# -- the edge ---------------------------------------------------------------------------------------


class Edge:
    """nats-server + the sync service, pointed at ``cloud_url``."""

    def __init__(self, store: str, cloud_url: str, api_key: str, work: Path, ca_file: Path, **sync: Any) -> None:
        self.store = store
        self.work = work
        self.proxy: Proc | None = None
        self.nats = NatsServer(log_dir=work / "nats").start()
        self.port = free_port()
        config = {
            "store": store,
            "cameras": [{"id": f"cam{i}", "source": {"type": "file", "path": "sample"}} for i in range(2)],
            "services": {
                "nats": {"url": self.nats.url},
                "sync": {"cloud_url": cloud_url, "outbox_path": str(work / "outbox.sqlite3"), "batch_events": 100,
                         "batch_linger_s": 0.3, "backoff_initial_s": 0.2, "backoff_max_s": 2.0,
                         "poll_interval_s": 3600, "request_timeout_s": 5.0, "state_dir": str(work / "sync"),
                         "ca_file": str(ca_file), **sync},
                "telemetry": {"log_format": "text", "log_level": "INFO"},
            },
        }
        self.config_path = work / "edge.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.sync = Proc("sync", [sys.executable, "-m", "services.sync", "--config", str(self.config_path),
                                  "--port", str(self.port)], {"RVA_SYNC_API_KEY": api_key}, work)

    def start_sync(self, extra_env: dict[str, str] | None = None, wrap: list[str] | None = None) -> None:
        self.sync.start(extra_env, wrap)
        wait(lambda: self.status() is not None or self._died(), 60, "the sync service")

    def _died(self) -> bool:
        if not self.sync.alive():
            raise RuntimeError(f"the sync service exited:\n{self.sync.tail()}")
        return False

    def status(self) -> Any:
        from rva.sync.v1 import sync_pb2, sync_pb2_grpc

        try:
            with grpc.insecure_channel(f"127.0.0.1:{self.port}") as ch:
                return sync_pb2_grpc.SyncServiceStub(ch).GetSyncStatus(sync_pb2.GetSyncStatusRequest(), timeout=2)
        except grpc.RpcError:
            return None

    def stop(self) -> None:
        self.sync.stop()
        self.nats.stop()


# -- the producer -----------------------------------------------------------------------------------


async def _produce(nats_url: str, store: str, n: int, rate: float, seed: int) -> list[str]:
    """Publish ``n`` events at ``rate``/s to the edge's JetStream (what analytics does); return their ids."""
    import nats

    from rva.bus.jetstream import EventPublisher, ensure_stream
    from rva.stores.synthetic import synthetic_events

    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=-1)
    js = nc.jetstream(timeout=10)
    await ensure_stream(js)
    publisher = EventPublisher(js, store, timeout_s=10)
    events = synthetic_events(n, start_ts=time.time() - 3600, cameras=2, seed=seed)
    ids: list[str] = []
    start = time.monotonic()
    for i, ev in enumerate(events):
        await publisher.publish(ev)
        ids.append(ev.event_id(store))
        ahead = (i + 1) / rate - (time.monotonic() - start)
        if ahead > 0:
            await asyncio.sleep(ahead)
    await nc.drain()
    return ids


class Producer:
    """Runs :func:`_produce` in a thread so the scenario can break things meanwhile."""

    def __init__(self, nats_url: str, store: str, n: int, rate: float, seed: int = 0) -> None:
        import threading

        self.ids: list[str] = []
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.ids = asyncio.run(_produce(nats_url, store, n, rate, seed))
            except BaseException as err:  # reported by join()
                self.error = err

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 600) -> list[str]:
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.ids


# -- one scenario's stack --------------------------------------------------------------------------------------


@dataclass
class Harness:
    """What a scenario needs: where to put things, the PostgreSQL admin DSN, the timings."""

    work: Path
    admin_dsn: str
    down_s: float = 60.0
    drain_timeout_s: float = 180.0
    log: Callable[[str], None] = print
    extra: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def stack(self, name: str, proxy: list[str] | None = None, **sync: Any) -> Iterator[tuple[Cloud, Edge]]:
        """A cloud and an edge for one scenario (``proxy``: chaos proxy arguments; the edge goes through it)."""
        work = self.work / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        store = f"s{uuid.uuid4().hex[:8]}"
        cloud = Cloud(self.admin_dsn, store, work)
        cloud.setup()
        edge: Edge | None = None
        chaos: Proc | None = None
        try:
            url = cloud.url
            if proxy is not None:
                port = free_port()
                chaos = Proc("proxy", [sys.executable, str(REPO / "bench" / "chaos_proxy.py"), "--listen",
                                       f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{cloud.port}", *proxy], {},
                             work).start()
                wait(lambda: port_open(port), 30, "the chaos proxy")
                url = f"https://127.0.0.1:{port}"
            edge = Edge(store, url, cloud.key, work, cloud.ca, **sync)
            edge.proxy = chaos
            yield cloud, edge
        finally:
            if edge is not None:
                edge.stop()
            if chaos is not None:
                chaos.stop()
            cloud.drop()


def settle(cloud: Cloud, edge: Edge, sent: list[str], timeout: float) -> tuple[int, set[str], Any]:
    """Wait until the outbox is empty and the cloud holds every event it will get; return its view."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = edge.status()
        rows, ids = cloud.events()
        dropped = int(status.events_dropped) if status is not None else 0
        if status is not None and status.outbox_events == 0 and len(ids & set(sent)) + dropped >= len(sent):
            return rows, ids, status
        time.sleep(0.5)
    rows, ids = cloud.events()
    return rows, ids, status


def outbox_resent(edge: Edge) -> int:
    """Events of batches the cloud already had (answer lost, batch re-sent), from the outbox's counters."""

    paths = list(edge.work.rglob("outbox.sqlite3"))
    total = 0
    for path in paths:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM counters WHERE name = 'resent'").fetchone()
            total += int(row[0]) if row else 0
    return total


