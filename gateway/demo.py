"""A demo stream for the dashboard: a real standalone-runner pass over a clip, replayed in real time.

:func:`record` runs :class:`~rva.pipeline.runner.StandaloneRunner` (the real detector, tracker and
analytics) and keeps what an edge box would upload: its events, heatmap snapshots every few seconds
and a people-free scene background (the median of the frames). The runner does not emit heatmap
snapshots itself, so a tap on its detector feeds the same detections to a second
:class:`~rva.pipeline.camera.CameraPipeline` whose only job is ``heatmap_snapshot()``.
:func:`replay` then sends everything to a gateway's ingest endpoint the way the sync service does
(gzip JSON batches with an idempotency key), times shifted to now and paced like the live camera.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from gateway.ingest import gzip_batch
from rva.config import RVAConfig
from rva.core import Detections
from rva.core.events import Event, EventType
from rva.detect import Detector, create_detector
from rva.pipeline.annotate import SceneBackground
from rva.pipeline.camera import CameraPipeline

log = logging.getLogger(__name__)


@dataclass
class Recording:
    """What a recorded pass holds (also kept as files in its directory)."""

    camera: str
    events: list[Event]
    background_jpeg: bytes
    frame_size: tuple[int, int]

    @classmethod
    def load(cls, out_dir: Path) -> Recording:
        """Read a recording written by :func:`record`."""
        meta = json.loads((out_dir / "recording.json").read_text())
        events = [Event.from_dict(json.loads(line)) for line in (out_dir / "replay.jsonl").read_text().splitlines()]
        return cls(meta["camera"], events, (out_dir / "background.jpg").read_bytes(), tuple(meta["frame_size"]))


class _Tap(Detector):
    """Passes frames through the real detector and lets a callback see each frame and its detections."""

    def __init__(self, inner: Detector, on_frame: Any) -> None:
        self.inner, self.on_frame = inner, on_frame
        self.names, self.labels = inner.names, inner.labels

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        out = self.inner.detect(images)
        for image, dets in zip(images, out, strict=True):
            self.on_frame(image, dets)
        return out

    def close(self) -> None:
        self.inner.close()


def record(config: RVAConfig, out_dir: Path, *, max_frames: int = 100, heat_every_s: float = 5.0,
           detector: Detector | None = None) -> Recording:
    """Run the standalone runner over ``max_frames`` of the config's (single) camera and keep what it produced.

    Raises:
        ValueError: The config has more than one camera (the tap cannot tell cameras apart).

    """
    from rva.pipeline.runner import StandaloneRunner

    if len(config.cameras) != 1:
        raise ValueError(f"demo record: expected a config with one camera, got {len(config.cameras)}")
    cam = config.cameras[0]
    config = config.model_copy(update={"output": config.output.model_copy(update={"annotated_video": False})})
    inner = detector or create_detector(config.detector)
    background = SceneBackground()
    heat: list[Event] = []
    shadow: dict[str, Any] = {"pipeline": None, "frames": 0, "next": heat_every_s}
    runner: Any = None

    def on_frame(image: npt.NDArray[np.uint8], dets: Detections) -> None:
        if shadow["pipeline"] is None:
            shadow["pipeline"] = CameraPipeline(cam, config.tracker, (image.shape[1], image.shape[0]))
            shadow["fps"] = float(cam.analysis_fps or runner.sources[cam.id].fps or 10.0)
        pts = shadow["frames"] / shadow["fps"]
        shadow["frames"] += 1
        shadow["pipeline"].step(dets, pts)
        background.add(image)
        if pts >= shadow["next"]:
            shadow["next"] += heat_every_s
            snap = shadow["pipeline"].analytics.heatmap_snapshot(pts)
            if snap is not None:
                heat.append(snap)

    runner = StandaloneRunner(config, out_dir, detector=_Tap(inner, on_frame), max_frames=max_frames)
    try:
        runner.open_sources()
        runner.run()
    finally:
        if detector is None:
            inner.close()
    if shadow["pipeline"] is not None:
        last = shadow["pipeline"].analytics.heatmap_snapshot()
        if last is not None:
            heat.append(last)
    events = [Event.from_dict(json.loads(line)) for line in (out_dir / "events.jsonl").read_text().splitlines()]
    events = sorted(events + heat, key=lambda e: e.ts)
    image = background.image()
    if image is None:
        raise ValueError("demo record: the source delivered no frame")
    _, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    frame_size = (int(image.shape[1]), int(image.shape[0]))
    (out_dir / "replay.jsonl").write_text("".join(e.to_json() + "\n" for e in events))
    (out_dir / "background.jpg").write_bytes(jpeg.tobytes())
    (out_dir / "recording.json").write_text(json.dumps({"camera": cam.id, "frame_size": frame_size}))
    return Recording(cam.id, events, jpeg.tobytes(), frame_size)


def _shift(event: Event, offset: float) -> Event:
    d = event.to_dict()
    d["ts"] = event.ts + offset
    if event.enter_ts is not None:
        d["enter_ts"] = event.enter_ts + offset
    if event.type is EventType.HEATMAP_SNAPSHOT and "from_ts" in event.attrs:
        d["attrs"] = {**event.attrs, "from_ts": float(event.attrs["from_ts"]) + offset}
    return Event.from_dict(d)


class Replayer:
    """Sends a recording to a gateway as an edge device would, paced in real time.

    Args:
        base_url: The gateway, e.g. ``http://127.0.0.1:8000``.
        api_key: The store's device key.
        store: Store id.
        speed: Playback speed (2.0: twice as fast).
        batch_s: How often a batch is sent.

    """

    def __init__(self, base_url: str, api_key: str, store: str, *, speed: float = 1.0, batch_s: float = 0.5) -> None:
        import httpx

        self.client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30.0)
        self.store, self.speed, self.batch_s = store, speed, batch_s
        self.sent = 0
        self.batches = 0
        self.stop = threading.Event()

    def _post(self, events: list[Event]) -> None:
        batch_id = f"demo-{uuid.uuid4().hex}"
        body = {"batch_id": batch_id, "store": self.store,
                "events": [{**e.to_dict(), "event_id": e.event_id(self.store)} for e in events]}
        data = gzip_batch(json.dumps(body).encode())
        delay = 0.5
        while not self.stop.is_set():
            try:
                res = self.client.post("/v1/ingest/events", content=data, headers={
                    "Content-Type": "application/json", "Content-Encoding": "gzip", "Idempotency-Key": batch_id})
            except Exception as err:  # network trouble: retry the same batch (idempotent)
                log.warning("demo: ingest failed (%s); retrying", err)
            else:
                if res.status_code == 200:
                    self.sent += len(events)
                    self.batches += 1
                    return
                if res.status_code not in (429, 503):
                    raise RuntimeError(f"demo: ingest answered {res.status_code}: {res.text[:300]}")
            self.stop.wait(delay)
            delay = min(delay * 2, 10.0)

    def upload_background(self, recording: Recording) -> dict[str, Any]:
        """Send the scene background as the camera's snapshot (the gateway still applies its privacy policy)."""
        res = self.client.put(f"/v1/stores/{self.store}/cameras/{recording.camera}/snapshot",
                              content=recording.background_jpeg, headers={"Content-Type": "image/jpeg"})
        res.raise_for_status()
        out: dict[str, Any] = res.json()
        return out

    def play(self, recording: Recording, *, loop: bool = False) -> int:
        """Send the recording (again and again with ``loop``) until done or :attr:`stop` is set; return events sent."""
        while not self.stop.is_set():
            events = recording.events
            if not events:
                return self.sent
            first = events[0].ts
            t0 = time.time()
            i = 0
            while i < len(events) and not self.stop.is_set():
                now = time.time()
                due = first + (now - t0) * self.speed
                j = i
                while j < len(events) and events[j].ts <= due:
                    j += 1
                if j > i:
                    self._post([_shift(e, t0 - first) for e in events[i:j]])
                    i = j
                self.stop.wait(self.batch_s)
            if not loop:
                break
        return self.sent

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
