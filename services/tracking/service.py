"""The tracking service: per-camera ByteTrack fed from the JetStream detections work subject.

Each camera is read through its durable consumer ``tracking-<store>-<camera>`` and acknowledged only after
its tracks are stored in ``rva_work.<store>.<camera>.tracks``, so a killed tracker resumes from the
last acknowledged frame. What a restart loses is the tracker's memory (Kalman states of live
tracks): it is bounded and reported. Every start of a camera's tracking takes the next
*generation* from the key-value bucket ``RVA_TRACKING``; ids of generation g are offset by g * 10^9
so they never collide with earlier ones, and the generation travels with every record, so
analytics closes the previous generation's tracks (``tracks_closed_by_restart``) at the last time
it saw them. People still in view are re-confirmed after ``tracker.min_hits`` frames.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from opentelemetry import trace

from rva.bus.kv import key_value
from rva.config import CameraConfig, RVAConfig
from rva.core import NO_TRACK, Detections
from rva.inference.v1 import inference_pb2
from rva.tracking import ByteTracker
from rva.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from rva.vision.v1 import vision_pb2
from services.common.metrics import ServiceMetrics
from services.common.telemetry import extract, inject, tracer
from services.common.work import ConsumingService, WorkConsumer, connect, ensure_work_stream, publish, work_subject

log = logging.getLogger(__name__)

GENERATION_BUCKET = "RVA_TRACKING"
#: Track ids of generation g are g * ID_STRIDE + the tracker's own id.
ID_STRIDE = 1_000_000_000


@dataclass
class CameraTracking:
    """One camera's tracker and counters."""

    camera: str
    generation: int
    tracker: ByteTracker
    stream_id: str = ""
    last_index: int = -1
    last_ts: float | None = None
    frames: int = 0
    duplicates: int = 0
    consumer: WorkConsumer | None = field(default=None, repr=False)

    @property
    def offset(self) -> int:
        """What is added to this generation's track ids."""
        return self.generation * ID_STRIDE


async def next_generation(js: Any, store: str, camera: str) -> int:
    """Take the camera's next tracking generation (0 the first time) from the ``RVA_TRACKING`` bucket."""
    from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

    kv = await key_value(js, GENERATION_BUCKET, description="tracking generations")
    key = f"{store}.{camera}"
    for _ in range(20):  # compare-and-set against concurrent starts
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            with contextlib.suppress(KeyWrongLastSequenceError, Exception):
                await kv.create(key, b"1")
                return 0
            continue
        generation = int(entry.value or b"0")
        with contextlib.suppress(KeyWrongLastSequenceError):
            await kv.update(key, str(generation + 1).encode(), last=entry.revision)
            return generation
    raise RuntimeError(f"cannot take a tracking generation for {key}: too much contention")


class TrackingService(ConsumingService, tracking_pb2_grpc.TrackingServiceServicer):
    """Detections work -> ByteTrack per camera -> tracks work.

    Args:
        config: The validated config (``tracker``, ``services.tracking``, ``services.nats``).
        cameras: Cameras this replica tracks (each camera must be tracked by one replica only).
        metrics: Metrics (a new registry by default).

    """

    name = "tracking"
    grpc_names = (tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name,)

    def __init__(self, config: RVAConfig, cameras: list[CameraConfig], metrics: ServiceMetrics | None = None) -> None:
        super().__init__(config, cameras, metrics)
        self.cfg = config.services.tracking
        self.tracer = tracer(self.name)
        self.states: dict[str, CameraTracking] = {}
        self.js: Any = None

    def register(self, server: grpc.aio.Server) -> None:
        """Serve ``rva.tracking.v1.TrackingService``."""
        tracking_pb2_grpc.add_TrackingServiceServicer_to_server(self, server)

    async def start(self) -> None:
        """Connect, take each camera's generation, and start consuming."""
        self.nc, self.js = await connect(self.config.services.nats, "rva-tracking")
        await ensure_work_stream(self.js, self.config.services.nats)
        for cam in self.cameras:
            generation = await next_generation(self.js, self.config.store, cam.id)
            st = CameraTracking(cam.id, generation, ByteTracker(self.config.tracker))
            subject = work_subject(self.config.store, cam.id, "detections")
            st.consumer = WorkConsumer(self.js, subject, f"tracking-{self.config.store}-{cam.id}", self.cfg)
            await st.consumer.open()
            self.states[cam.id] = st
            self.metrics.gauge.labels(self.name, f"generation:{cam.id}").set(generation)
            if generation:
                log.warning(
                    "tracking of camera %s restarted (generation %d): live tracks of the previous generation "
                    "are closed by analytics",
                    cam.id,
                    generation,
                    extra={"camera": cam.id, "generation": generation},
                )
            self.consume(cam.id, st.consumer, functools.partial(self._handle, st))

    async def _handle(self, st: CameraTracking, msg: Any) -> None:
        record = inference_pb2.DetectionsRecord.FromString(msg.data)
        with self.tracer.start_as_current_span(
            "tracking.update",
            context=extract(msg.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={"rva.camera": st.camera, "rva.generation": st.generation},
        ) as span:
            if record.stream_id != st.stream_id:
                if st.stream_id:
                    log.info(
                        "camera %s: new decode stream %s", st.camera, record.stream_id, extra={"camera": st.camera}
                    )
                st.tracker.reset()
                st.stream_id, st.last_index, st.last_ts = record.stream_id, -1, None
            if record.HasField("detections"):
                out = self._track(st, record)
                if out is None:
                    return
                msg_id = f"{record.stream_id}.{record.detections.frame.index}.trk"
                span.set_attribute("rva.frame.index", int(record.detections.frame.index))
            else:
                out = self._state(st, record)
                state = record.source_state.event
                msg_id = f"{record.stream_id}.{state.event_id or state.attrs_json}.trk"
            await publish(
                self.js,
                work_subject(self.config.store, st.camera, "tracks"),
                out.SerializeToString(),
                {**inject(), "Nats-Msg-Id": msg_id},
                timeout_s=self.config.services.nats.publish_timeout_s,
                on_error=lambda err: self.metrics.error("publish"),
            )
        if out.HasField("tracks") and (full := self.taps.offer(st.camera, out.tracks)):
            self.metrics.drop(st.camera, "tap_slow", full)

    def _track(self, st: CameraTracking, record: inference_pb2.DetectionsRecord) -> tracking_pb2.TracksRecord | None:
        meta = record.detections.frame
        if int(meta.index) <= st.last_index:
            st.duplicates += 1  # redelivered after a restart or a lost ack: already tracked
            self.metrics.drop(st.camera, "duplicate")
            return None
        t0 = time.perf_counter()
        out = st.tracker.update(Detections.from_proto(record.detections.detections), meta.pts)
        self.metrics.observe("track", time.perf_counter() - t0)
        off = st.offset
        ids = out.tracked.tracker_id
        tracked = out.tracked.with_tracker_id(np.where(ids != NO_TRACK, ids + off, ids)) if off else out.tracked
        st.last_index, st.last_ts = int(meta.index), float(meta.pts)
        st.frames += 1
        self.metrics.frame(st.camera)
        self.metrics.gauge.labels(self.name, f"live_tracks:{st.camera}").set(len(st.tracker.live_track_ids))
        tracks = vision_pb2.FrameTracks(
            frame=meta,
            tracked=tracked.to_proto(),
            started=[i + off for i in out.started],
            ended=[_track_end(e, off) for e in out.ended],
        )
        return tracking_pb2.TracksRecord(
            tracks=tracks, stream_id=record.stream_id, generation=st.generation, decoded_unix_s=record.decoded_unix_s
        )

    def _state(self, st: CameraTracking, record: inference_pb2.DetectionsRecord) -> tracking_pb2.TracksRecord:
        final: list[vision_pb2.TrackEnd] = []
        if record.source_state.end_of_stream and st.last_ts is not None:
            final = [_track_end(e, st.offset) for e in st.tracker.finish(st.last_ts)]
            st.tracker.reset()
        return tracking_pb2.TracksRecord(
            source_state=record.source_state, stream_id=record.stream_id, generation=st.generation, final_ended=final
        )

    # --- RPCs ------------------------------------------------------------------------------------------

    async def StreamTracks(
        self, request: tracking_pb2.StreamTracksRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tracking_pb2.StreamTracksResponse]:
        """Live tracks of the requested cameras until the caller hangs up."""
        async for tracks in self.tap(request.camera_ids):
            yield tracking_pb2.StreamTracksResponse(tracks=tracks)

    async def GetTrackingStats(
        self, request: tracking_pb2.GetTrackingStatsRequest, context: grpc.aio.ServicerContext
    ) -> tracking_pb2.GetTrackingStatsResponse:
        """Counters per camera."""
        return tracking_pb2.GetTrackingStatsResponse(
            cameras=[
                tracking_pb2.CameraTrackingStats(
                    camera_id=st.camera,
                    frames=st.frames,
                    duplicates=st.duplicates,
                    generation=st.generation,
                    live_tracks=len(st.tracker.live_track_ids),
                    last_index=max(st.last_index, 0),
                )
                for st in self.states.values()
            ]
        )


def _track_end(end: Any, offset: int) -> vision_pb2.TrackEnd:
    return vision_pb2.TrackEnd(
        track_id=end.track_id + offset, first_ts=end.first_ts, last_ts=end.last_ts, hits=end.hits
    )
