"""Edge-to-cloud delivery under faults, with real processes: does every event arrive once?

Each scenario runs the real pieces as separate processes: a nats-server with JetStream on the edge,
the sync service (``python -m services.sync``), the cloud gateway (``python -m gateway serve``, HTTPS
with a self-signed certificate the edge trusts) on PostgreSQL, and for one scenario the chaos proxy
(``bench/chaos_proxy.py``) in between. This process publishes the events (what the analytics service
does in production), breaks things on a schedule, waits for the outbox to drain, then reads the
cloud's PostgreSQL:

* ``sent``: events published on the edge; ``received``: distinct sent event ids stored in the cloud;
* ``lost`` = sent - received; ``duplicated``: rows stored beyond one per event id;
* ``dropped_reported``: what the sync service says its full policy dropped (``GetSyncStatus``);
* ``resent``: events the cloud received again and de-duplicated (whole batches it already had, counted
  by the outbox, plus events re-cut into a new batch, counted by the gateway's ingest bookkeeping):
  the retries that batch ids and event ids made harmless.

Scenarios: ``baseline``, ``burst`` (no fault: an outbox of 20,000 events drained, the upload rate),
``gateway_down_60s``, ``sync_sigkill`` (killed right after the cloud committed a batch, then four more
SIGKILLs at random moments), ``proxy_cuts`` (30 % of reply chunks cut, a third as many requests),
``disk_full`` (a 64 KiB outbox while the cloud is away: drops exactly what it reports), ``clock_skew``
(the edge's clock 2 h ahead, through libfaketime when installed).

Run: ``python bench/faults.py --json out/faults.json`` (all, ~4 min) or ``--scenarios proxy_cuts``.
PostgreSQL: ``--postgres-dsn`` (a database is created per scenario) or a private server is started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psycopg
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rva.stores.servers import free_port  # noqa: E402
from services.common.servers import NatsServer  # noqa: E402

JWT_SECRET = "bench-faults-" + "x" * 40
TENANT = "bench"


@dataclass
class Result:
    """One scenario's outcome."""

    name: str
    sent: int
    received: int
    lost: int
    duplicated: int
    dropped_reported: int = 0
    resent: int = 0
    seconds: float = 0.0
    notes: str = ""

    @property
    def ok(self) -> bool:
        """0 lost and 0 duplicated, or (disk full) lost exactly what was reported dropped."""
        if self.duplicated:
            return False
        return self.lost == self.dropped_reported


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


def _wait(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _port_open(port: int) -> bool:
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
        _wait(lambda: _port_open(self.port) or self._died(), 60, "the gateway to listen")

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
        _wait(lambda: self.status() is not None or self._died(), 60, "the sync service")

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


# -- scenarios --------------------------------------------------------------------------------------


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
                _wait(lambda: _port_open(port), 30, "the chaos proxy")
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


def _outbox_resent(edge: Edge) -> int:
    """Events of batches the cloud already had (answer lost, batch re-sent), from the outbox's counters."""
    import sqlite3

    paths = list(edge.work.rglob("outbox.sqlite3"))
    total = 0
    for path in paths:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM counters WHERE name = 'resent'").fetchone()
            total += int(row[0]) if row else 0
    return total


def _result(name: str, sent: list[str], rows: int, ids: set[str], status: Any, cloud: Cloud, edge: Edge,
            t0: float, notes: str = "") -> Result:
    received = len(ids & set(sent))
    return Result(name, len(sent), received, len(sent) - received, rows - len(ids),
                  int(status.events_dropped) if status is not None else 0, cloud.resent() + _outbox_resent(edge),
                  round(time.monotonic() - t0, 1), notes)


def baseline(h: Harness) -> Result:
    with h.stack("baseline") as (cloud, edge):
        cloud.start()
        edge.start_sync()
        t0 = time.monotonic()
        sent = Producer(edge.nats.url, edge.store, 2000, 400).join()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        return _result("baseline", sent, rows, ids, status, cloud, edge, t0)


def burst(h: Harness) -> Result:
    """No fault: 20,000 events wait in the outbox, then the cloud comes up; how fast does the edge drain?"""
    with h.stack("burst") as (cloud, edge):
        edge.start_sync()
        t0 = time.monotonic()
        sent = Producer(edge.nats.url, edge.store, 20_000, 1e9).join()
        _wait(lambda: (s := edge.status()) is not None and s.outbox_events >= len(sent), 120, "the outbox to fill")
        cloud.start()
        drain0 = time.monotonic()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        took = time.monotonic() - drain0
        return _result("burst", sent, rows, ids, status, cloud, edge, t0,
                       f"outbox of {len(sent)} drained in {took:.1f} s = {len(sent) / took:,.0f} events/s "
                       f"(batches of 100, HTTPS, gzip, one uploader)")


def gateway_down(h: Harness) -> Result:
    name = f"gateway_down_{h.down_s:.0f}s"
    with h.stack(name) as (cloud, edge):
        cloud.start()
        edge.start_sync()
        t0 = time.monotonic()
        rate = 50.0
        producer = Producer(edge.nats.url, edge.store, int(rate * (h.down_s + 20)), rate)
        time.sleep(5)
        cloud.gateway.kill()
        h.log(f"{name}: gateway killed; down for {h.down_s:.0f} s while events keep coming")
        time.sleep(h.down_s)
        backlog = edge.status()
        cloud.start()
        h.log(f"{name}: gateway back; outbox held {backlog.outbox_events if backlog else '?'} events")
        sent = producer.join()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        return _result(name, sent, rows, ids, status, cloud, edge, t0,
                        f"outbox peak ~{backlog.outbox_events if backlog else '?'} events while down")


def sync_sigkill(h: Harness) -> Result:
    with h.stack("sync_sigkill") as (cloud, edge):
        cloud.start()
        rng = random.Random(7)
        edge.start_sync({"RVA_STORES_FAULT": "sync:committed:3"})
        t0 = time.monotonic()
        producer = Producer(edge.nats.url, edge.store, 3000, 150)
        _wait(lambda: not edge.sync.alive(), 60, "the armed SIGKILL after the 3rd committed batch")
        kills = 1
        edge.start_sync()
        for _ in range(4):
            time.sleep(rng.uniform(1.0, 3.0))
            edge.sync.kill()
            kills += 1
            time.sleep(0.3)
            edge.start_sync()
        sent = producer.join()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        return _result("sync_sigkill", sent, rows, ids, status, cloud, edge, t0,
                       f"{kills} SIGKILLs, the first right after the cloud committed a batch")


def proxy_cuts(h: Harness) -> Result:
    args = ["--cut-prob", "0.3", "--seed", "3"]
    with h.stack("proxy_cuts", proxy=args) as (cloud, edge):
        cloud.start()
        edge.start_sync()
        t0 = time.monotonic()
        sent = Producer(edge.nats.url, edge.store, 3000, 300).join()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        assert edge.proxy is not None
        edge.proxy.stop()
        return _result("proxy_cuts", sent, rows, ids, status, cloud, edge, t0, f"proxy: {edge.proxy.tail(1)}")


def disk_full(h: Harness) -> Result:
    with h.stack("disk_full", outbox_max_bytes=1 << 16, outbox_full_policy="drop_oldest") as (cloud, edge):
        edge.start_sync()  # the cloud is away from the start
        t0 = time.monotonic()
        sent = Producer(edge.nats.url, edge.store, 1500, 500).join()
        _wait(lambda: (s := edge.status()) is not None and s.events_dropped > 0, 60, "the outbox to fill")
        time.sleep(2)
        cloud.start()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        return _result("disk_full", sent, rows, ids, status, cloud, edge, t0,
                       "64 KiB outbox, drop_oldest, cloud away while all events were produced")


def clock_skew(h: Harness) -> Result:
    faketime = shutil.which("faketime")
    with h.stack("clock_skew") as (cloud, edge):
        cloud.start()
        if faketime:
            edge.start_sync(wrap=[faketime, "-f", "+2h"])
            notes = "sync under libfaketime +2h"
        else:
            edge.start_sync()
            notes = "faketime not installed: ran without skew"
        t0 = time.monotonic()
        sent = Producer(edge.nats.url, edge.store, 1000, 300).join()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        warned = [ln for ln in edge.sync.log.read_text().splitlines() if "clock skew:" in ln]
        if warned:
            notes += "; sync: " + warned[0].split("clock skew: ", 1)[1].split(";")[0]
        return _result("clock_skew", sent, rows, ids, status, cloud, edge, t0, notes)


SCENARIOS: dict[str, Callable[[Harness], Result]] = {
    "baseline": baseline, "burst": burst, "gateway_down": gateway_down, "sync_sigkill": sync_sigkill,
    "proxy_cuts": proxy_cuts, "disk_full": disk_full, "clock_skew": clock_skew,
}


def _table(results: list[Result]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Edge -> cloud delivery under faults")
    for col in ("scenario", "sent", "received", "lost", "duplicated", "dropped (reported)", "resent (deduped)",
                "s", "ok", "notes"):
        table.add_column(col, justify="right" if col not in ("scenario", "notes") else "left")
    for r in results:
        table.add_row(r.name, str(r.sent), str(r.received), str(r.lost), str(r.duplicated), str(r.dropped_reported),
                      str(r.resent), f"{r.seconds:.0f}", "yes" if r.ok else "NO", r.notes)
    Console(width=200).print(table)


@contextlib.contextmanager
def postgres(dsn: str | None) -> Iterator[str]:
    """The given admin DSN, or a private PostgreSQL for the run."""
    if dsn:
        yield dsn
        return
    from rva.stores.servers import start_postgres

    server = start_postgres(durable=False)
    try:
        yield server.url
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write {'scenarios': [...]} here")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {list(SCENARIOS)}")
    parser.add_argument("--down-s", type=float, default=60.0, help="how long the gateway stays down")
    parser.add_argument("--postgres-dsn", default=os.environ.get("RVA_FAULTS_POSTGRES_DSN"),
                        help="admin DSN of a PostgreSQL to create databases in (default: start a private one)")
    parser.add_argument("--work", type=Path, help="where logs and outboxes go (default: a temporary directory)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {list(SCENARIOS)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="rva-faults-"))
    results: list[Result] = []
    with postgres(args.postgres_dsn) as dsn:
        h = Harness(work, dsn, down_s=args.down_s)
        for name in names:
            print(f"== {name}", flush=True)
            result = SCENARIOS[name](h)
            print(json.dumps(asdict(result)), flush=True)
            results.append(result)
    _table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"scenarios": [asdict(r) for r in results]}, indent=2) + "\n")
        print(f"wrote {args.json}")
    print(f"logs: {work}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
