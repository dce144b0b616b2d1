"""A writer process SIGKILLed mid-batch loses nothing and doubles nothing once restarted (real processes)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest

from rva.core.events import Event, EventType
from rva.stores.publish import publish_events
from rva.stores.redis_live import RedisLive
from rva.stores.synthetic import synthetic_events

EVENTS = synthetic_events(400, seed=5)
BATCH = 50


def _publish(url: str, events: list[Event]) -> None:
    async def go() -> None:
        nc = await nats.connect(url, connect_timeout=5)
        assert await publish_events(nc.jetstream(timeout=10), "s1", events) == len(events)
        await nc.close()

    asyncio.run(asyncio.wait_for(go(), 60))


def _writer_cmd(nats_url: str, stores: dict[str, str]) -> list[str]:
    cmd = [sys.executable, "-m", "rva.stores", "run", "--nats", nats_url, "--tenant", "acme", "--batch-size",
           str(BATCH), "--ack-wait", "2", "--until-caught-up", "--stats-every", "60"]
    for flag, value in stores.items():
        cmd += [f"--{flag}", value]
    return cmd


def _run(cmd: list[str], fault: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RVA_STORES_FAULT": fault or ""}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _stats(stores: dict[str, str]) -> dict[str, Any]:
    args = [f"--{k}={v}" for k, v in stores.items() if k in ("postgres", "clickhouse")]
    out = subprocess.run([sys.executable, "-m", "rva.stores", "stats", "--tenant", "acme", *args],
                         capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    if "redis" in stores:
        live = RedisLive(stores["redis"])
        dump = live.dump("acme", "s1")
        result["redis"] = {"events": len(dump["events"]), "occupancy": live.occupancy("acme", "s1")}
    return result


def _expected(events: list[Event]) -> dict[str, Any]:
    """Worked out from the event list alone."""
    inside: dict[tuple[str, str], set[int]] = {}
    for e in events:
        if e.type in (EventType.ZONE_ENTER, EventType.ZONE_EXIT):
            people = inside.setdefault((e.camera, str(e.zone)), set())
            (people.add if e.type is EventType.ZONE_ENTER else people.discard)(int(e.track_id or 0))
    visits = {(e.camera, e.zone, e.track_id, e.enter_ts if e.type is EventType.ZONE_EXIT else e.ts)
              for e in events if e.type in (EventType.ZONE_ENTER, EventType.ZONE_EXIT)}
    n = len(events)
    return {
        "postgres": {"events": n, "visits": len(visits),
                     "line_crossings": sum(e.type is EventType.LINE_CROSS for e in events)},
        "clickhouse": {"events": n, "hourly_total": n},
        "redis": {"events": n, "occupancy": {k: len(v) for k, v in inside.items()}},
    }


STORES = {
    "postgres": lambda dsn, ch, redis: {"postgres": dsn},
    "clickhouse": lambda dsn, ch, redis: {"clickhouse": f"chdb://{ch}"},
    "redis": lambda dsn, ch, redis: {"redis": redis},
}


@pytest.mark.parametrize(
    ("writer", "point", "applied"),
    [
        ("postgres", "mid", 2 * BATCH),  # the open transaction dies with the process
        ("postgres", "committed", 3 * BATCH),  # committed, never acked: redelivered, absorbed
        ("clickhouse", "mid", 2 * BATCH + BATCH // 2),  # half the batch inserted
        ("clickhouse", "committed", 3 * BATCH),
        ("redis", "mid", 2 * BATCH + BATCH // 2),
        ("redis", "committed", 3 * BATCH),
    ],
)
def test_sigkill_mid_batch_then_restart(
    writer: str, point: str, applied: int, nats_url: str, pg_dsn: str, ch_path: Path, redis_url: str
) -> None:
    stores = STORES[writer](pg_dsn, ch_path, redis_url)
    _publish(nats_url, EVENTS)
    cmd = _writer_cmd(nats_url, stores)
    crashed = _run(cmd, fault=f"{writer}:{point}:3")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert _stats(stores)[writer]["events"] == applied  # it really died inside batch 3
    done = _run(cmd)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _stats(stores)[writer] == _expected(EVENTS)[writer]


def test_sigkill_at_a_random_moment_with_all_writers(
    nats_url: str, pg_dsn: str, ch_path: Path, redis_url: str
) -> None:
    events = synthetic_events(3000, seed=6)
    stores = {"postgres": pg_dsn, "clickhouse": f"chdb://{ch_path}", "redis": redis_url}
    _publish(nats_url, events)
    cmd = _writer_cmd(nats_url, stores)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    count = 0
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        while time.monotonic() < deadline and count < 500:  # well into the run, somewhere inside a batch
            time.sleep(0.05)
            if conn.execute("SELECT to_regclass('rva.events')").fetchone() != (None,):
                count = conn.execute("SELECT count(*) FROM rva.events").fetchone()[0]  # type: ignore[index]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert 0 < count < len(events)
    done = _run(cmd, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _stats(stores) == _expected(events)
