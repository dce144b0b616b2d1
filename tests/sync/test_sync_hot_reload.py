"""Config hot reload: a zone changed in the cloud changes the edge's events within one sync interval.

Real pieces: the gateway process on PostgreSQL (the cloud), nats-server and the sync service process
(the edge), and the analytics service running in this process on the edge's JetStream, fed one
tracked person walking back and forth across the frame at 10 fps. Nothing restarts.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bench.fault_harness import JWT_SECRET, TENANT, Harness
from gateway.auth import JwtVerifier
from gateway.settings import GatewaySettings
from rva.config import parse_config
from rva.core import Detections
from rva.sync.tls import client_context
from rva.tracking.v1 import tracking_pb2
from rva.vision.v1 import vision_pb2
from services.analytics.service import AnalyticsService
from services.common.runtime import ServiceRuntime
from services.common.work import publish, work_subject

pytestmark = pytest.mark.timeout(240)

POLL_S = 2.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artifacts"
W, H = 768, 576


def _camera(zone: str, x0: int, x1: int) -> dict[str, Any]:
    return {"id": "cam0", "source": {"type": "file", "path": "x.mp4"}, "frame_size": [W, H],
            "zones": [{"name": zone, "polygon": [[x0, 0], [x1, 0], [x1, H], [x0, H]], "enter_inertia_s": 0.2,
                       "exit_inertia_s": 0.2}]}


def _walker(t: float) -> float:
    """x of the person's feet at stream time t: 50 -> 700 px in 3 s, then back, forever."""
    phase = (t % 6.0) / 3.0
    return 50 + 650 * (phase if phase <= 1 else 2 - phase)


def _record(store: str, index: int, ts: float) -> bytes:
    x = _walker(ts)
    tracked = Detections(xyxy=np.array([[x - 20, 300, x + 20, 450]], np.float32), confidence=np.array([0.9]),
                         class_id=np.array([0]), tracker_id=np.array([7]))
    tracks = vision_pb2.FrameTracks(
        frame=vision_pb2.FrameMeta(camera="cam0", index=index, pts=ts, width=W, height=H),
        tracked=tracked.to_proto(), started=[7] if index == 0 else [],
    )
    return tracking_pb2.TracksRecord(tracks=tracks, stream_id="cam0-reload", generation=0,
                                     decoded_unix_s=time.time()).SerializeToString()


async def _edge(store: str, nats_url: str, put_change: Any) -> dict[str, Any]:
    import nats

    cfg = parse_config({"store": store, "cameras": [{"id": "cam0", "source": {"type": "file", "path": "x.mp4"}}],
                        "services": {"nats": {"url": nats_url}, "telemetry": {"log_format": "text"}}})
    service = AnalyticsService(cfg, list(cfg.cameras))
    runtime = ServiceRuntime(service, "127.0.0.1", 0, None)
    await runtime.start()
    nc = await nats.connect(nats_url)
    js = nc.jetstream(timeout=10)
    enters: list[tuple[float, str, float]] = []  # (wall time, zone, stream ts)
    config_exits: list[str] = []

    async def on_event(msg: Any) -> None:
        from rva.events.v1 import events_pb2

        ev = events_pb2.Event.FromString(msg.data)
        if msg.subject.endswith(".zone_enter"):
            enters.append((time.monotonic(), ev.zone, ev.ts))
        elif msg.subject.endswith(".zone_exit") and "config_change" in ev.attrs_json:
            config_exits.append(ev.zone)

    await nc.subscribe(f"rva.{store}.cam0.*", cb=on_event)
    out: dict[str, Any] = {}
    try:
        index, start = 0, time.monotonic()
        changed_at: float | None = None
        applied_at: float | None = None
        while time.monotonic() - start < 120:
            ts = index / 10
            await publish(js, work_subject(store, "cam0", "tracks"), _record(store, index, ts), {}, timeout_s=10)
            index += 1
            await asyncio.sleep(max(0.0, start + ts + 0.1 - time.monotonic()))
            if changed_at is None and any(z == "left" for _, z, _ in enters):
                out["first_version"] = service.config_version
                changed_at = time.monotonic()
                await asyncio.to_thread(put_change)
            if changed_at is not None and applied_at is None and service.config_version != out["first_version"]:
                applied_at = time.monotonic()
            if applied_at is not None and any(z == "right" for _, z, _ in enters):
                break
        out.update(changed_at=changed_at, applied_at=applied_at, enters=enters, config_exits=config_exits,
                   version=service.config_version, frames=index)
    finally:
        await nc.close()
        await runtime.stop(2.0)
    return out


def test_zone_changed_in_the_cloud_changes_edge_events_without_restart(pg_server: Any, tmp_path: Path) -> None:
    h = Harness(tmp_path, pg_server.url)
    with h.stack("reload", poll_interval_s=POLL_S) as (cloud, edge):
        cloud.start()
        settings = GatewaySettings(postgres_dsn=cloud.dsn, jwt_secret=JWT_SECRET)
        admin = {"Authorization": f"Bearer {JwtVerifier(settings).mint('ops', TENANT, 'admin')}"}
        url = f"{cloud.url}/v1/stores/{cloud.store}/config"
        r = httpx.put(url, json={"cameras": [_camera("left", 0, 300)], "alert_rules": []},
                      headers=admin, verify=client_context(str(cloud.ca)))
        assert r.status_code == 200, r.text
        edge.start_sync()

        def change() -> None:
            r = httpx.put(url, json={"cameras": [_camera("right", 450, W)], "alert_rules": []},
                      headers=admin, verify=client_context(str(cloud.ca)))
            assert r.status_code == 200, r.text

        out = asyncio.run(_edge(cloud.store, edge.nats.url, change))

    assert out["changed_at"] is not None, "the first cloud version never reached the edge's events"
    assert out["applied_at"] is not None, f"the change was never applied (version {out['version']})"
    # Within one sync interval (plus the scheduling of one frame).
    assert out["applied_at"] - out["changed_at"] <= POLL_S + 0.5, out
    after = [z for wall, z, _ in out["enters"] if wall > out["applied_at"]]
    assert "right" in after and "left" not in after, json.dumps(out["enters"][-10:])
    before = [z for wall, z, _ in out["enters"] if wall <= out["changed_at"]]
    assert set(before) == {"left"}
    assert out["first_version"] != out["version"]
    first_new = min(wall for wall, z, _ in out["enters"] if z == "right")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "sync-hot-reload.json").write_text(json.dumps({
        "poll_interval_s": POLL_S, "put_to_applied_s": round(out["applied_at"] - out["changed_at"], 3),
        "put_to_first_new_zone_event_s": round(first_new - out["changed_at"], 3),
        "versions": [out["first_version"], out["version"]], "frames": out["frames"],
        "closed_by_config_change": out["config_exits"],
    }, indent=2))
