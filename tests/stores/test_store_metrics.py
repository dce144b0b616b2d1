"""``python -m rva.stores run --metrics-port``: the writer's progress and lag as Prometheus metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import nats
from prometheus_client.parser import text_string_to_metric_families

from rva.stores.publish import publish_events
from rva.stores.servers import free_port
from rva.stores.synthetic import synthetic_events


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_written_and_pending_per_writer(nats_server: Any, pg_dsn: str) -> None:
    store = "metrics1"
    port = free_port()
    cmd = [sys.executable, "-m", "rva.stores", "run", "--nats", nats_server.url, "--tenant", "acme",
           "--postgres", pg_dsn, "--durable-prefix", "metrics-test", "--batch-size", "100", "--max-wait", "0.2"]
    proc = subprocess.Popen(cmd, env={**os.environ, "RVA_STORES_METRICS_PORT": str(port)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "READY":
                break
        events = synthetic_events(300, seed=11)

        async def publish() -> None:
            nc = await nats.connect(nats_server.url)
            assert await publish_events(nc.jetstream(timeout=10), store, events) == len(events)
            await nc.close()

        asyncio.run(publish())
        written = ("rva_store_events_written_total", (("writer", "postgres"),))
        pending = ("rva_store_pending", (("writer", "postgres"),))
        deadline = time.monotonic() + 60
        seen: dict[Any, float] = {}
        while time.monotonic() < deadline:
            seen = _scrape(port)
            if seen.get(written, 0) >= len(events) and seen.get(pending) == 0:
                break
            time.sleep(0.5)
        assert seen.get(written, 0) >= len(events), seen
        assert seen.get(pending) == 0
        assert seen[("rva_store_batches_total", (("writer", "postgres"),))] >= 3
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
