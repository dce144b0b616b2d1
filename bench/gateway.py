"""Gateway throughput: metrics queries under concurrent load, and WebSocket fan-out to hundreds of clients.

    python bench/gateway.py [--duration 10] [--workers 16] [--clients 500] [--events 40] [--json FILE]

Starts its own PostgreSQL, Redis and nats-server on free ports, fills one store with a day of
synthetic events (rva.stores.synthetic: door crossings, zone visits, queues), then runs
``python -m gateway serve`` (uvicorn, one process) and measures from this process:

- metrics: ``--workers`` keep-alive HTTP clients for ``--duration`` seconds over a mix of
  occupancy (5 min steps over 6 h), footfall per hour, queue waits and the live view;
  ``metrics_rps`` and the p50/p99 latency of each request;
- fan-out: ``--clients`` WebSocket clients on the store's live feed, then ``--events`` events
  published to NATS at ``--rate`` per second, each stamped with its send time; ``ws_fanout_p99_ms`` is the p99 over
  every (client, event) delivery of receive time minus send time (clients and publisher share this
  process, so client-side parsing is included).

Writes ``{"metrics_rps", "metrics_p99_ms", "ws_clients", "ws_fanout_p99_ms", ...}`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.auth import JwtVerifier
from gateway.models import PrivacyPolicy, RetentionPolicy, StoreDocument, dump
from gateway.registry import Registry
from gateway.settings import GatewaySettings
from rva.config import CameraConfig
from rva.core.events import Event, EventType
from rva.stores.postgres import PostgresWriter
from rva.stores.publish import publish_fast
from rva.stores.records import StoredEvent
from rva.stores.redis_live import RedisLiveWriter
from rva.stores.servers import free_port, start_nats, start_postgres, start_redis
from rva.stores.synthetic import ZONES, synthetic_events

SECRET = "bench-" + "x" * 40
STORE = "bench"
SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


def seed(dsn: str, redis_url: str, events: int) -> None:
    """One tenant and store, with the synthetic generator's cameras, filled with a day of events."""
    reg = Registry(dsn)
    reg.migrate()
    reg.create_tenant("bench", "Bench", dump(PrivacyPolicy()), dump(RetentionPolicy()))
    reg.create_store("bench", STORE, "Bench store", "UTC", "bench")
    cams = [CameraConfig.model_validate({
        "id": f"cam{i}", "source": {"type": "file", "path": "x.mp4"},
        "zones": [{"name": z, "polygon": SQUARE} for z in ZONES],
        "lines": [{"name": "door", "start": [0, 0], "end": [0, 50]}],
        "queues": [{"name": "till", "queue_polygon": SQUARE, "service_polygon": [[200, 0], [300, 0], [300, 90]]}],
    }) for i in range(4)]
    reg.update_config("bench", STORE, lambda _: dump(StoreDocument(cameras=cams, funnel=list(ZONES[:3]))), "bench")
    reg.close()
    start = time.time() - 6 * 3600
    records = [StoredEvent.of("bench", STORE, e) for e in synthetic_events(events, start_ts=start)]
    pg, live = PostgresWriter(dsn), RedisLiveWriter(redis_url)
    for i in range(0, len(records), 5000):
        pg.write(records[i : i + 5000])
        live.write(records[i : i + 5000])
    pg.close()
    live.close()


def start_gateway(dsn: str, redis_url: str, nats_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RVA_POSTGRES_DSN": dsn, "RVA_REDIS_URL": redis_url, "RVA_NATS_URL": nats_url,
           "RVA_GATEWAY_JWT_SECRET": SECRET, "RVA_GATEWAY_RATE_LIMIT_USER": '{"rate": 1000000, "burst": 1000000}',
           "RVA_GATEWAY_QUERY_POOL_SIZE": "8", "RVA_GATEWAY_WS_LIVE_INTERVAL_S": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--port", str(port), "--log-level", "warning"],
                            cwd=Path(__file__).resolve().parents[1], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"gateway did not start: {log.read_text()[-2000:]}")


async def metrics_load(base: str, token: str, duration: float, workers: int) -> dict[str, Any]:
    """Keep-alive clients hammering a mix of metric endpoints; latency of every request."""
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 6 * 3600))
    window = f"start={start}&end={end}"
    paths = [f"/v1/stores/{STORE}/metrics/occupancy?{window}&step_s=300&zone=grocery",
             f"/v1/stores/{STORE}/metrics/footfall?{window}", f"/v1/stores/{STORE}/metrics/queues?{window}",
             f"/v1/stores/{STORE}/live?recent=10"]
    latencies: list[float] = []
    by_path: dict[str, list[float]] = {p.split("?")[0].rsplit("/", 1)[-1]: [] for p in paths}
    errors = 0
    stop_at = time.monotonic() + duration

    async def worker(i: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            k = i
            while time.monotonic() < stop_at:
                t = time.perf_counter()
                path = paths[k % len(paths)]
                r = await c.get(path)
                latencies.append(time.perf_counter() - t)
                by_path[path.split("?")[0].rsplit("/", 1)[-1]].append(latencies[-1])
                errors += r.status_code != 200
                k += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    return {"metrics_rps": round(len(ms) / wall, 1), "metrics_p50_ms": round(float(np.percentile(ms, 50)), 1),
            "metrics_p99_ms": round(float(np.percentile(ms, 99)), 1), "metrics_requests": len(ms),
            "metrics_errors": errors, "metrics_workers": workers,
            "metrics_p50_ms_by_endpoint": {k: round(float(np.median(v)) * 1000, 1) for k, v in by_path.items() if v}}


async def fanout(base: str, token: str, nats_url: str, clients: int, events: int, rate: float) -> dict[str, Any]:
    """``clients`` WebSockets on one store; ``events`` events through NATS; delivery latency of each."""
    import nats

    url = base.replace("http", "ws", 1) + f"/v1/stores/{STORE}/live/ws?types=track_start"
    headers = {"Authorization": f"Bearer {token}"}
    sem = asyncio.Semaphore(50)

    async def connect() -> Any:
        async with sem:
            ws = await websockets.connect(url, additional_headers=headers, open_timeout=60, max_queue=None)
            await ws.recv()  # hello
            return ws

    t0 = time.perf_counter()
    sockets = await asyncio.gather(*(connect() for _ in range(clients)))
    connect_s = time.perf_counter() - t0
    delays: list[float] = []
    received = [0]

    async def listen(ws: Any) -> None:
        got = 0
        while got < events:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if msg["type"] == "event":
                delays.append(time.time() - msg["event"]["attrs"]["sent"])
                got += 1
        received[0] += got

    listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
    nc = await nats.connect(nats_url)
    for i in range(events):
        e = Event(EventType.TRACK_START, "cam0", time.time(), 1_000_000 + i, attrs={"sent": time.time()})
        await publish_fast(nc, STORE, [e])
        await asyncio.sleep(1.0 / rate)
    await nc.close()
    await asyncio.wait_for(asyncio.gather(*listeners), 120)
    await asyncio.gather(*(ws.close() for ws in sockets))
    ms = np.array(delays) * 1000
    return {"ws_clients": clients, "ws_events": events, "ws_events_per_s": rate, "ws_deliveries": int(received[0]),
            "ws_fanout_p50_ms": round(float(np.percentile(ms, 50)), 1),
            "ws_fanout_p99_ms": round(float(np.percentile(ms, 99)), 1), "ws_connect_s": round(connect_s, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="Seconds of metrics load.")
    ap.add_argument("--workers", type=int, default=16, help="Concurrent HTTP clients.")
    ap.add_argument("--clients", type=int, default=500, help="WebSocket clients.")
    ap.add_argument("--events", type=int, default=40, help="Events fanned out.")
    ap.add_argument("--rate", type=float, default=10.0, help="Events published per second.")
    ap.add_argument("--seed-events", type=int, default=20_000, help="Synthetic events stored first.")
    ap.add_argument("--json", type=Path, help="Write the results here.")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.clients + 256)), hard))
    work = Path(tempfile.mkdtemp(prefix="rva-bench-gw-"))
    servers = [start_postgres(durable=False), start_redis(work / "redis"), start_nats(work / "nats")]
    pg, rd, nt = servers
    proc = None
    try:
        seed(pg.url, rd.url, args.seed_events)
        port = free_port()
        proc = start_gateway(pg.url, rd.url, nt.url, port, work / "gateway.log")
        base = f"http://127.0.0.1:{port}"
        token = JwtVerifier(GatewaySettings(postgres_dsn=pg.url, jwt_secret=SECRET)).mint(
            "bench", "bench", "viewer", ttl_s=3600)
        results: dict[str, Any] = {}
        results.update(asyncio.run(metrics_load(base, token, args.duration, args.workers)))
        results.update(asyncio.run(fanout(base, token, nt.url, args.clients, args.events, args.rate)))
        results.update({"seed_events": args.seed_events, "cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_avg_1m": round(os.getloadavg()[0], 2)})
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows = [("metrics requests/s", results["metrics_rps"]), ("metrics p50 ms", results["metrics_p50_ms"]),
            ("metrics p99 ms", results["metrics_p99_ms"]), ("metrics errors", results["metrics_errors"]),
            ("WebSocket clients", results["ws_clients"]), ("deliveries", results["ws_deliveries"]),
            ("fan-out p50 ms", results["ws_fanout_p50_ms"]), ("fan-out p99 ms", results["ws_fanout_p99_ms"]),
            ("connect all clients s", results["ws_connect_s"])]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value\n{'-' * width}  -----")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
