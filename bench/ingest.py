"""Event ingest throughput: each writer alone, then JetStream -> all three stores, then a replay.

    python bench/ingest.py [--events 200000] [--e2e-events 50000] [--json FILE]

Starts its own nats-server, redis-server and PostgreSQL (fsync on: the durable defaults plus
shared_buffers=256MB) and uses chdb in-process, unless --postgres/--redis/--nats name running ones.
Writes {"postgres_eps", "clickhouse_eps", "redis_eps", "end_to_end_eps", "replay_idempotent", ...}:
each writer alone on pre-decoded batches; end_to_end_eps = JetStream (pre-filled) -> one fan-out
consumer -> all three stores committed; end_to_end_separate_eps = one durable consumer per store in
one process; replay_idempotent = replaying the whole stream through new durables changed no store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rva.stores.clickhouse import ChdbDriver, ClickHouseWriter
from rva.stores.clickhouse_queries import ClickHouseQueries
from rva.stores.consumer import EventConsumer
from rva.stores.fanout import FanoutWriter
from rva.stores.postgres import PostgresWriter
from rva.stores.postgres_schema import ROLLUPS
from rva.stores.publish import DEFAULT_STREAM, ensure_stream, publish_fast
from rva.stores.records import StoredEvent
from rva.stores.redis_live import RedisLive, RedisLiveWriter
from rva.stores.servers import start_nats, start_postgres, start_redis
from rva.stores.synthetic import synthetic_events


def new_database(server_dsn: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    return server_dsn.rsplit("/", 1)[0] + f"/{name}"


def timed_writes(writer: Any, records: list[StoredEvent], batch: int) -> float:
    t = time.perf_counter()
    for i in range(0, len(records), batch):
        writer.write(records[i : i + batch])
    return len(records) / (time.perf_counter() - t)


def pg_fingerprint(dsn: str) -> dict[str, str]:
    out = {}
    with psycopg.connect(dsn) as conn:
        for table in ("events", "visits", *ROLLUPS):
            row = conn.execute(
                f"SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "  # type: ignore[arg-type]
                f"FROM rva.{table} t"
            ).fetchone()
            out[table] = str(row[0]) if row else ""
    return out


def state(dsn: str, ch: ClickHouseQueries, redis_url: str, tenant: str) -> dict[str, Any]:
    live = RedisLive(redis_url)
    return {
        "postgres": pg_fingerprint(dsn),
        "clickhouse": [ch.count_events(tenant), ch.count_hourly(tenant)],
        "redis": live.dump(tenant, "s1"),
    }


async def consume_all(nats_url: str, writers: list[Any], tenant: str, batch: int) -> float:
    nc = await nats.connect(nats_url, connect_timeout=10)
    consumers = [EventConsumer(nc, w, tenant=tenant, batch_size=batch) for w in writers]
    t = time.perf_counter()
    await asyncio.gather(*(c.run(until_caught_up=True) for c in consumers))
    took = time.perf_counter() - t
    await nc.close()
    return took


async def publish(nats_url: str, events: list[Any]) -> float:
    nc = await nats.connect(nats_url, connect_timeout=10)
    js = nc.jetstream(timeout=30)
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(DEFAULT_STREAM)
    await ensure_stream(js)
    t = time.perf_counter()
    await publish_fast(nc, "s1", events)
    while (await js.stream_info(DEFAULT_STREAM)).state.messages < len(events):
        await asyncio.sleep(0.05)
    took = time.perf_counter() - t
    await nc.close()
    return len(events) / took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="events per single-writer run")
    ap.add_argument("--e2e-events", type=int, default=50_000, help="events through JetStream")
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--postgres", help="server DSN (databases are created on it); default: start one")
    ap.add_argument("--redis", help="Redis URL; default: start one")
    ap.add_argument("--nats", help="NATS URL with JetStream; default: start one")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rva-ingest-"))
    servers = []
    if not args.postgres:
        servers.append(start_postgres())
        args.postgres = servers[-1].url
    if not args.redis:
        servers.append(start_redis(tmp / "redis"))
        args.redis = servers[-1].url
    if not args.nats:
        servers.append(start_nats(tmp / "nats"))
        args.nats = servers[-1].url
    chdb = ChdbDriver(str(tmp / "chdb"))
    try:
        results = run(args, chdb)
    finally:
        for s in servers:
            s.stop()
        chdb.close()
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [("postgres (COPY + upserts)", results["postgres_eps"]), ("clickhouse (chdb)", results["clickhouse_eps"]),
            ("redis (Lua per store)", results["redis_eps"]), ("JetStream publish", results["publish_eps"]),
            ("end to end, fan-out", results["end_to_end_eps"]),
            ("end to end, 3 consumers", results["end_to_end_separate_eps"])]
    print(f"\n{'path':<28}{'events/s':>12}")
    for name, eps in rows:
        print(f"{name:<28}{eps:>12,.0f}")
    print(f"{'replay idempotent':<28}{results['replay_idempotent']!s:>12}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def run(args: argparse.Namespace, chdb: ChdbDriver) -> dict[str, Any]:
    events = synthetic_events(args.events, seed=1)
    records = [StoredEvent.of("direct", "s1", e) for e in events]
    results: dict[str, Any] = {"events": args.events, "e2e_events": args.e2e_events, "batch": args.batch}

    pg = PostgresWriter(new_database(args.postgres))
    results["postgres_eps"] = round(timed_writes(pg, records, args.batch))
    pg.close()
    results["clickhouse_eps"] = round(timed_writes(ClickHouseWriter(chdb, "bench_direct"), records, args.batch))
    results["redis_eps"] = round(timed_writes(RedisLiveWriter(args.redis), records, args.batch))
    print(f"direct: {results}", flush=True)

    e2e = synthetic_events(args.e2e_events, seed=2)
    results["publish_eps"] = round(asyncio.run(publish(args.nats, e2e)))
    # Fan-out: one durable consumer decodes once and writes the three stores in parallel threads.
    fan = FanoutWriter([PostgresWriter(new_database(args.postgres)), ClickHouseWriter(chdb, "bench_fan"),
                        RedisLiveWriter(args.redis)])
    took = asyncio.run(consume_all(args.nats, [fan], "fan", args.batch))
    results["end_to_end_eps"] = round(args.e2e_events / took)
    fan.close()
    # The default deployment: one durable consumer per store (here in one process, sharing one GIL).
    dsn = new_database(args.postgres)
    writers = [PostgresWriter(dsn), ClickHouseWriter(chdb, "bench_e2e"), RedisLiveWriter(args.redis)]
    took = asyncio.run(consume_all(args.nats, writers, "e2e", args.batch))
    results["end_to_end_separate_eps"] = round(args.e2e_events / took)
    ch = ClickHouseQueries(chdb, "bench_e2e")
    before = state(dsn, ch, args.redis, "e2e")
    t = time.perf_counter()
    asyncio.run(replay(args.nats, writers, args.batch))
    results["replay_s"] = round(time.perf_counter() - t, 2)
    after = state(dsn, ch, args.redis, "e2e")
    results["replay_idempotent"] = before == after and before["clickhouse"][0] == args.e2e_events
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_avg_1m": round(os.getloadavg()[0], 2)}
    return results


async def replay(nats_url: str, writers: list[Any], batch: int) -> None:
    nc = await nats.connect(nats_url, connect_timeout=10)
    consumers = [EventConsumer(nc, w, tenant="e2e", durable=f"replay-{w.name}", start_seq=1, batch_size=batch)
                 for w in writers]
    await asyncio.gather(*(c.run(until_caught_up=True) for c in consumers))
    await nc.close()


if __name__ == "__main__":
    main()
