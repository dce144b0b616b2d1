"""How long from the frame that makes an alert true to the manager's webhook? (Goal: under a second.)

Real pieces: nats-server, the analytics service and the alerts service (both on the edge's JetStream)
and a webhook receiver (HTTP, HMAC-checked). Tracked people are fed in real time at 10 fps as the
tracking service would publish them: every 6 s a queue of four forms for 3 s, then leaves (rule
``queue_length > 2`` held 0.5 s); every 6 s a person walks upright for 2 s, then lies down for 2 s
(rule ``fall`` after 0.5 s). Latency = webhook arrival (wall clock) - the time the frame that fired
the alert was published to the tracks subject. The alert's own hold (``for_s``) is not latency: it
is the rule.

Run: ``python bench/alert_latency.py --cycles 10 --json out/alert_latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rva.alerts.sinks import verify_signature  # noqa: E402
from rva.config import parse_config  # noqa: E402
from rva.core import Detections  # noqa: E402
from rva.tracking.v1 import tracking_pb2  # noqa: E402
from rva.vision.v1 import vision_pb2  # noqa: E402
from services.alerts.service import AlertsService  # noqa: E402
from services.analytics.service import AnalyticsService  # noqa: E402
from services.common.runtime import ServiceRuntime  # noqa: E402
from services.common.servers import NatsServer  # noqa: E402
from services.common.work import publish, work_subject  # noqa: E402

SECRET = "bench-alert-latency-secret-0123456789abcdef"
FPS = 10.0
CYCLE_S = 6.0
W, H = 768, 576


class Receiver:
    """The manager's webhook endpoint: records (arrival wall time, body) of every POST signed with ``secret``."""

    def __init__(self, secret: str = SECRET) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        self.forged = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.time()
                if verify_signature(secret, body, dict(self.headers.items())):
                    outer.got.append((arrived, json.loads(body)))
                else:
                    outer.forged += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def _people(ts: float, cycle_ids: int) -> tuple[list[tuple[int, float, float]], list[bool]]:
    """(track id, foot x, foot y) and fallen flags at stream time ``ts``."""
    cycle, t = divmod(ts, CYCLE_S)
    base = 100 + int(cycle) * 10
    people: list[tuple[int, float, float]] = []
    fallen: list[bool] = []
    if t < 3.0:  # a queue of four in the queue area
        for i in range(4):
            people.append((base + i, 120 + 40 * i, 300))
            fallen.append(False)
    if t < 4.0:  # someone in the walkway: upright 2 s, then lying
        people.append((base + 5, 600, 450))
        fallen.append(t >= 2.0)
    return people, fallen


def _record(index: int, ts: float) -> bytes:
    people, fallen = _people(ts, 0)
    xyxy = np.array([[x - 20, y - 120, x + 20, y] for _, x, y in people], np.float32).reshape(-1, 4)
    tracked = Detections(xyxy=xyxy, confidence=np.full(len(people), 0.9), class_id=np.zeros(len(people), np.int64),
                         tracker_id=np.array([p[0] for p in people], np.int64),
                         data={"fallen": np.array(fallen, np.bool_)})
    tracks = vision_pb2.FrameTracks(frame=vision_pb2.FrameMeta(camera="cam0", index=index, pts=ts, width=W, height=H),
                                    tracked=tracked.to_proto())
    return tracking_pb2.TracksRecord(tracks=tracks, stream_id="cam0-latency", decoded_unix_s=time.time()
                                     ).SerializeToString()


def _config(nats_url: str, hook: str) -> Any:
    return parse_config({
        "store": "latency",
        "cameras": [{"id": "cam0", "source": {"type": "file", "path": "x.mp4"}, "frame_size": [W, H],
                     "queues": [{"name": "till", "queue_polygon": [[50, 200], [300, 200], [300, 350], [50, 350]],
                                 "service_polygon": [[320, 200], [400, 200], [400, 350], [320, 350]],
                                 "join_after_s": 0.3, "exit_inertia_s": 0.5}]}],
        "alerts": {
            "sinks": [{"type": "webhook", "name": "manager", "url": hook, "secret": SECRET}],
            "rules": [
                {"name": "queue", "kind": "queue_length", "target": "till", "threshold": 2, "for_s": 0.5,
                 "cooldown_s": 4.0, "severity": "warning"},
                {"name": "fall", "kind": "fall", "for_s": 0.5, "cooldown_s": 4.0, "severity": "critical"},
            ],
            "upright_s": 1.0,
        },
        "services": {"nats": {"url": nats_url}, "telemetry": {"log_format": "text", "log_level": "WARNING"},
                     "alerts": {"ack_wait_s": 10, "max_ack_pending": 16, "fetch_batch": 16}},
    })


async def _run(cycles: int, nats_url: str, receiver: Receiver) -> dict[str, Any]:
    import nats

    cfg = _config(nats_url, receiver.url)
    runtimes = [ServiceRuntime(cls(cfg, list(cfg.cameras)), "127.0.0.1", 0, None)
                for cls in (AnalyticsService, AlertsService)]
    for rt in runtimes:
        await rt.start()
    nc = await nats.connect(nats_url)
    js = nc.jetstream(timeout=10)
    published: dict[int, float] = {}
    start = time.monotonic()
    frames = int(cycles * CYCLE_S * FPS)
    for index in range(frames):
        ts = round(index / FPS, 3)
        await publish(js, work_subject("latency", "cam0", "tracks"), _record(index, ts), {}, timeout_s=10)
        published[index] = time.time()
        await asyncio.sleep(max(0.0, start + (index + 1) / FPS - time.monotonic()))
    await asyncio.sleep(3.0)
    await nc.close()
    for rt in reversed(runtimes):
        await rt.stop(2.0)
    origin = published[0]  # the analytics' wall clock: the session's first frame, stream time 0
    rows: dict[str, list[float]] = {"queue": [], "fall": []}
    for arrived, body in receiver.got:
        index = round((body["ts"] - origin) * FPS)
        rows[body["rule"]].append(arrived - published[index])
    return {"frames": frames, "forged": receiver.forged, "latency_s": rows}


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10, help="6 s cycles (each: one queue alert, one fall)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    nats_server = NatsServer().start()
    receiver = Receiver()
    try:
        out = asyncio.run(_run(args.cycles, nats_server.url, receiver))
    finally:
        receiver.server.shutdown()
        nats_server.stop()
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Alert latency: frame published -> signed webhook received ({args.cycles} cycles)")
    for col in ("rule", "alerts", "expected", "p50 ms", "p95 ms", "max ms"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    summary = {}
    for rule, values in out["latency_s"].items():
        ms = [v * 1000 for v in values]
        summary[rule] = {"alerts": len(ms), "expected": args.cycles, "p50_ms": round(_pct(ms, 50), 1),
                         "p95_ms": round(_pct(ms, 95), 1), "max_ms": round(max(ms), 1) if ms else None}
        table.add_row(rule, str(len(ms)), str(args.cycles), f"{_pct(ms, 50):.0f}", f"{_pct(ms, 95):.0f}",
                      f"{max(ms):.0f}" if ms else "-")
    Console(width=120).print(table)
    result = {"cycles": args.cycles, "frames": out["frames"], "forged": out["forged"], "rules": summary}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    ok = all(r["alerts"] == args.cycles and (r["max_ms"] or 1e9) < 1000 for r in summary.values())
    return 0 if ok and not out["forged"] else 1


if __name__ == "__main__":
    sys.exit(main())
