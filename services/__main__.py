"""``python -m services up --config FILE`` (the whole local stack) and ``python -m services status``.

``up`` starts nats-server, Triton (when ``detector.type`` is ``triton``) and the pipeline's four services
(plus alerts when ``alerts.sinks`` are configured and sync when ``services.sync.cloud_url`` is set) on
the config's ports, each only after the previous one is healthy, and stops them all in pipeline
order on Ctrl-C/SIGTERM. ``status`` shows each service's health and rates from its metrics.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from rva.errors import ConfigError
from services.common.metrics import histogram_quantile, parse_metrics
from services.stack import SERVICES, Stack, health_status

STAGES = {"decode": "buffer", "inference": "detect", "tracking": "track", "analytics": "end_to_end"}


def _scrape(addr: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    try:
        return parse_metrics(urllib.request.urlopen(f"http://{addr}/metrics", timeout=2).read().decode())
    except OSError:
        return {}


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(v for _, v in samples.get(name, []))


def status(workdir: Path, interval: float = 1.0) -> list[dict[str, Any]]:
    """Health, frames/s, drops, queue depth and the main stage's p50 of every service in ``stack.json``."""
    state = json.loads((workdir / "stack.json").read_text())
    first = {n: _scrape(s["metrics"]) for n, s in state["services"].items()}
    time.sleep(interval)
    rows = []
    for name, svc in state["services"].items():
        now = _scrape(svc["metrics"])
        buckets = [
            (float(lab["le"]), v)
            for lab, v in now.get("rva_stage_latency_seconds_bucket", [])
            if lab.get("stage") == STAGES.get(name)
        ]
        p50 = histogram_quantile(0.5, buckets)
        rows.append(
            {
                "service": name,
                "addr": svc["addr"],
                "health": health_status(svc["addr"]),
                "fps": round((_total(now, "rva_frames_total") - _total(first[name], "rva_frames_total")) / interval, 2),
                "frames": int(_total(now, "rva_frames_total")),
                "dropped": int(_total(now, "rva_dropped_total")),
                "queued": int(_total(now, "rva_queue_depth")),
                "p50_ms": None if p50 is None else round(p50 * 1000, 1),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m services", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the whole local stack and keep it running")
    up.add_argument("--config", required=True, type=Path)
    up.add_argument("--workdir", type=Path, default=Path("out/stack"), help="logs, JetStream data, model repository")
    up.add_argument("--free-ports", action="store_true", help="pick free ports instead of the config's")
    st = sub.add_parser("status", help="health and rates of a running stack")
    st.add_argument("--workdir", type=Path, default=Path("out/stack"))
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    console = Console()
    if args.command == "status":
        if not (args.workdir / "stack.json").is_file():
            console.print(f"no stack found in {args.workdir} (start one with: python -m services up --config FILE)")
            return 1
        rows = status(args.workdir)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        table = Table("service", "address", "health", "frames/s", "frames", "dropped", "queued", "p50 ms")
        for r in rows:
            table.add_row(
                r["service"],
                r["addr"],
                r["health"],
                str(r["fps"]),
                str(r["frames"]),
                str(r["dropped"]),
                str(r["queued"]),
                "-" if r["p50_ms"] is None else str(r["p50_ms"]),
            )
        console.print(table)
        return 0 if all(r["health"] == "SERVING" for r in rows) else 1

    stack = Stack(args.config, args.workdir, fixed_ports=not args.free_ports)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with console.status("starting nats, triton and the services (health-gated)..."):
            stack.start()
    except (ConfigError, RuntimeError, TimeoutError, FileNotFoundError) as err:
        console.print(f"[red]cannot start the stack:[/red] {err}")
        return 1
    table = Table("component", "address", "metrics", "log")
    table.add_row("nats", stack.nats_url or "", "", str(stack.nats.log_path) if stack.nats else "")
    if stack.triton_url:
        table.add_row("triton", stack.triton_url, "", str(stack.triton.log_path) if stack.triton else "")
    for name in SERVICES:
        p = stack.services[name]
        table.add_row(name, p.addr, f"127.0.0.1:{p.metrics_port}", str(p.log_path))
    console.print(table)
    console.print(f"running; `python -m services status --workdir {args.workdir}` shows rates; Ctrl-C stops")
    try:
        while not stop.is_set() and all(p.alive for p in stack.services.values()):
            stop.wait(1.0)
    except KeyboardInterrupt:
        pass
    dead = [n for n, p in stack.services.items() if not p.alive]
    codes = stack.stop()
    console.print(f"stopped: {codes}" + (f"; {dead} had exited on their own" if dead else ""))
    return 0 if not dead else 1


if __name__ == "__main__":
    sys.exit(main())
