"""The whole chain on the real clip: edge services -> sync -> cloud gateway, and an alert to a webhook.

Edge: ``python -m services up``'s stack (nats-server, decode, inference with the default onnxruntime
detector, tracking, analytics, alerts, sync) on the first 150 frames of vtest.avi. Cloud: the gateway
process over HTTPS on PostgreSQL. Every event the edge published must be stored in the cloud once,
with wall-clock times, and the cloud's API must answer with the same line counts as the standalone
runner on the same frames; the occupancy rule must reach the webhook once, signed.
"""

from __future__ import annotations

import importlib.util
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
import pytest
import yaml

from bench.alert_latency import Receiver
from bench.fault_harness import JWT_SECRET, TENANT, Harness, wait
from gateway.auth import JwtVerifier
from gateway.settings import GatewaySettings
from rva.config import load_config
from rva.core import EventType
from rva.pipeline.runner import StandaloneRunner
from rva.sync.tls import client_context
from rva.sync.v1 import sync_pb2, sync_pb2_grpc
from services.stack import Stack

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
FRAMES = 150

# The service tests' helpers (reading JetStream, the analytics summary RPC), loaded under their own name.
_spec = importlib.util.spec_from_file_location("rva_service_helpers", REPO / "tests" / "services" /
                                               "service_helpers.py")
assert _spec is not None and _spec.loader is not None
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
read_events, summary = _helpers.read_events, _helpers.summary
SECRET = "end-to-end-webhook-secret-0123456789"


def _config(path: Path, store: str, vtest: Path, cloud_url: str, ca: Path, hook: str, work: Path) -> Path:
    raw = yaml.safe_load((REPO / "rva" / "configs" / "vtest.yaml").read_text())
    raw["store"] = store
    raw["cameras"][0]["source"] = {"type": "file", "path": str(vtest)}
    raw["output"] = {"annotated_video": False, "heatmap_png": False}
    raw["alerts"] = {
        "sinks": [{"type": "webhook", "name": "manager", "url": hook, "secret": SECRET}],
        "rules": [{"name": "busy_walkway", "kind": "occupancy", "target": "walkway_east", "threshold": 1,
                   "for_s": 1.0, "cooldown_s": 3600, "severity": "warning"}],
    }
    raw["services"] = {
        "decode": {"max_frames": FRAMES},
        "sync": {"cloud_url": cloud_url, "ca_file": str(ca), "outbox_path": str(work / "outbox.sqlite3"),
                 "state_dir": str(work / "sync"), "batch_linger_s": 0.5, "poll_interval_s": 3600},
        "telemetry": {"log_format": "text"},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def _sync_status(addr: str) -> Any:
    with grpc.insecure_channel(addr) as ch:
        return sync_pb2_grpc.SyncServiceStub(ch).GetSyncStatus(sync_pb2.GetSyncStatusRequest(), timeout=5)


def test_vtest_through_the_edge_stack_reaches_the_cloud_once(pg_server: Any, tmp_path: Path, vtest_path: Path) -> None:
    hook = Receiver(SECRET)
    h = Harness(tmp_path, pg_server.url)
    with h.stack("e2e") as (cloud, edge):
        edge.nats.stop()  # the stack brings its own nats-server; the harness's edge is not used here
        cloud.start()
        config = _config(tmp_path / "edge.yaml", cloud.store, vtest_path, cloud.url, cloud.ca, hook.url, tmp_path)
        with Stack(config, tmp_path / "stack", env={"RVA_SYNC_API_KEY": cloud.key}) as stack:
            assert set(stack.services) == {"decode", "inference", "tracking", "analytics", "alerts", "sync"}
            analytics, sync = stack.services["analytics"].addr, stack.services["sync"].addr
            wait(lambda: summary(analytics)["walkway"]["frames"] >= FRAMES, 300, f"{FRAMES} analysed frames")
            published = wait(lambda: (evs := read_events(stack.nats_url, cloud.store)) and any(
                e.type is EventType.SOURCE_STATE and e.attrs.get("state") == "ended" for e, _ in evs) and evs,
                60, "the end of stream")
            wait(lambda: hook.got, 60, "the alert at the webhook")
            time.sleep(2.0)  # anything still on its way to JetStream
            published = read_events(stack.nats_url, cloud.store)
            wait(lambda: _sync_status(sync).outbox_events == 0, 120, "the outbox to drain")
            status = _sync_status(sync)

        with psycopg.connect(cloud.dsn) as conn:
            rows = conn.execute("SELECT replace(event_id::text, '-', ''), type, extract(epoch from ts) FROM "
                                "rva.events WHERE store = %s", (cloud.store,)).fetchall()
        settings = GatewaySettings(postgres_dsn=cloud.dsn, jwt_secret=JWT_SECRET)
        token = JwtVerifier(settings).mint("ops", TENANT, "viewer")
        r = httpx.get(f"{cloud.url}/v1/stores/{cloud.store}/metrics/footfall",
                      headers={"Authorization": f"Bearer {token}"}, verify=client_context(str(cloud.ca)))

    sent = {headers["event_id"] for _, headers in published}
    stored = [row[0] for row in rows]
    assert len(sent) >= 20
    assert set(stored) == sent and len(stored) == len(set(stored))  # every event once
    assert status.events_dropped == 0
    now = time.time()
    assert all(now - 3600 < float(row[2]) <= now + 5 for row in rows)  # wall-clock times, not stream times
    # The cloud holds what the standalone runner finds on the same frames.
    standalone = StandaloneRunner(load_config(config), tmp_path / "standalone", max_frames=FRAMES).run()
    cloud_lines = Counter((e.line, str(e.direction)) for e, _ in published if e.type is EventType.LINE_CROSS)
    for line, counts in standalone["lines"].items():
        assert cloud_lines[(line, "in")] == counts["in"] and cloud_lines[(line, "out")] == counts["out"]
    stored_types = Counter(row[1] for row in rows)
    assert stored_types["line_cross"] == sum(cloud_lines.values())
    assert r.status_code == 200, r.text  # and the cloud's API counts them the same way
    hours = r.json()
    assert sum(h["in_count"] for h in hours) == sum(n for (_, d), n in cloud_lines.items() if d == "in")
    assert sum(h["out_count"] for h in hours) == sum(n for (_, d), n in cloud_lines.items() if d == "out")
    # The alert: once (cooldown 1 h), signed, also stored in the cloud as an event.
    assert [body["rule"] for _, body in hook.got] == ["busy_walkway"] and hook.forged == 0
    assert stored_types["alert"] == 1
