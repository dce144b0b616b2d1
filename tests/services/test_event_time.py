"""Published events carry wall-clock times: the decode session's origin + stream time, fixed in NATS KV.

The analytics service runs in this process on a real nats-server; one tracked person walks over a
line. A second service instance (a restart) given the same session with different decode times
must publish the same times, hence the same event ids (so the stores de-duplicate a replay).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats
import numpy as np

from rva.config import parse_config
from rva.core import Detections
from rva.events.v1 import events_pb2
from rva.tracking.v1 import tracking_pb2
from rva.vision.v1 import vision_pb2
from services.analytics.service import AnalyticsService
from services.common.runtime import ServiceRuntime
from services.common.servers import NatsServer
from services.common.work import publish, work_subject

T0 = 1_780_000_000.0


def _record(index: int, decoded_offset: float) -> bytes:
    ts = index / 10
    x = 100 + 20 * index  # crosses x=400 at frame 15
    tracked = Detections(xyxy=np.array([[x - 20, 300, x + 20, 450]], np.float32), confidence=np.array([0.9]),
                         class_id=np.array([0]), tracker_id=np.array([3]))
    tracks = vision_pb2.FrameTracks(frame=vision_pb2.FrameMeta(camera="cam0", index=index, pts=ts, width=768,
                                                               height=576),
                                    tracked=tracked.to_proto(), started=[3] if index == 0 else [])
    return tracking_pb2.TracksRecord(tracks=tracks, stream_id="cam0-s1", decoded_unix_s=T0 + ts + decoded_offset
                                     ).SerializeToString()


async def _run(url: str, store: str, decoded_offset: float, event_time: str = "wall") -> list[Any]:
    cfg = parse_config({
        "store": store,
        "cameras": [{"id": "cam0", "source": {"type": "file", "path": "x.mp4"},
                     "lines": [{"name": "door", "start": [400, 0], "end": [400, 576], "min_side_s": 0.2}]}],
        "services": {"nats": {"url": url}, "analytics": {"event_time": event_time},
                     "telemetry": {"log_format": "text"}},
    })
    service = AnalyticsService(cfg, list(cfg.cameras))
    runtime = ServiceRuntime(service, "127.0.0.1", 0, None)
    await runtime.start()
    nc = await nats.connect(url)
    got: list[Any] = []

    async def on(msg: Any) -> None:
        got.append((msg.headers or {}).get("Nats-Msg-Id"))
        got.append(events_pb2.Event.FromString(msg.data))

    await nc.subscribe(f"rva.{store}.cam0.line_cross", cb=on)
    js = nc.jetstream(timeout=10)
    for i in range(30):
        await publish(js, work_subject(store, "cam0", "tracks"), _record(i, decoded_offset), {"Nats-Msg-Id":
                      f"{store}-{decoded_offset}-{i}"}, timeout_s=10)
    deadline = time.monotonic() + 20
    while not got and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    await nc.close()
    await runtime.stop(2.0)
    return got


def test_events_are_on_the_wall_clock_and_stable_across_a_restart(nats_server: NatsServer) -> None:
    first = asyncio.run(_run(nats_server.url, "wallclock", decoded_offset=0.0))
    assert len(first) == 2, first  # one crossing: (msg id, event)
    msg_id, event = first
    assert T0 + 1.4 <= event.ts <= T0 + 1.7  # the crossing near stream time 1.5 s, on the wall clock
    # A restart replays the session's frames, decoded later: same origin from KV, same time and id.
    again = asyncio.run(_run(nats_server.url, "wallclock", decoded_offset=500.0))
    assert again[1].ts == event.ts and again[0] == msg_id


def test_stream_time_when_asked(nats_server: NatsServer) -> None:
    got = asyncio.run(_run(nats_server.url, "streamclock", decoded_offset=0.0, event_time="stream"))
    assert 1.4 <= got[1].ts <= 1.7
