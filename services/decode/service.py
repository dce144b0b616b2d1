"""The decode service: every camera's source decoded in its own thread, streamed as frames over gRPC.

``StreamFrames`` serves each camera to one consumer at a time (a newer stream takes a camera over,
so a restarted inference service resumes at once). Frames wait in a bounded per-camera buffer
(:class:`~services.decode.feed.CameraFeed`): live sources drop the oldest when it is full (counted
in ``rva_dropped_total{reason="buffer_full"}``), files pause decoding instead. Each frame starts
its own trace (``decode.frame``), whose context travels in the frame message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from rva.config import CameraConfig, FileSource, RVAConfig
from rva.core import Frame
from rva.decode.v1 import decode_pb2, decode_pb2_grpc
from rva.sources import SourceState, SourceStatus, VideoSource, open_source
from rva.sources.base import TERMINAL_STATES
from services.common.frames import encode_frame
from services.common.metrics import ServiceMetrics
from services.common.runtime import Service
from services.common.telemetry import inject, tracer
from services.decode.feed import CameraFeed, Item

log = logging.getLogger(__name__)


def is_live(camera: CameraConfig) -> bool:
    """Whether a camera's frames come at their own pace (network, USB, a file paced in real time)."""
    return not isinstance(camera.source, FileSource) or camera.source.realtime


class DecodeService(Service, decode_pb2_grpc.DecodeServiceServicer):
    """Sources -> bounded per-camera buffers -> ``StreamFrames``.

    Args:
        config: The validated config (cameras, ``services.decode``).
        cameras: Cameras this replica decodes.
        metrics: Metrics (a new registry by default).

    Raises:
        SourceError: A file is missing or unreadable (files open at construction).

    """

    name = "decode"
    grpc_names = (decode_pb2.DESCRIPTOR.services_by_name["DecodeService"].full_name,)

    def __init__(self, config: RVAConfig, cameras: list[CameraConfig], metrics: ServiceMetrics | None = None) -> None:
        super().__init__(config, cameras, metrics)
        self.cfg = config.services.decode
        self.tracer = tracer(self.name)
        self.feeds = {c.id: CameraFeed(c.id, self.cfg.buffer_frames, is_live(c)) for c in cameras}
        self.stream_ids = {c.id: f"{c.id}-{uuid.uuid4().hex[:12]}" for c in cameras}
        self.sources: dict[str, VideoSource] = {}
        try:
            for cam in cameras:
                self.sources[cam.id] = open_source(cam)
        except Exception:
            for src in self.sources.values():
                src.close()
            raise
        self._delivered_end: set[str] = set()
        self._owner: dict[str, object] = {}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._read, args=(c.id,), name=f"decode-{c.id}", daemon=True) for c in cameras
        ]

    def register(self, server: grpc.aio.Server) -> None:
        """Serve ``rva.decode.v1.DecodeService``."""
        decode_pb2_grpc.add_DecodeServiceServicer_to_server(self, server)

    async def start(self) -> None:
        """Start one reader thread per camera."""
        for thread in self._threads:
            thread.start()

    def _read(self, camera: str) -> None:
        """Reader thread: source items into the camera's feed, until the source ends or we stop."""
        source, feed = self.sources[camera], self.feeds[camera]
        frames, last_pts, dropped = 0, None, 0
        try:
            for item in source.items():
                if isinstance(item, Frame):
                    if self.cfg.max_frames is not None and frames >= self.cfg.max_frames:
                        break
                    frames, last_pts = frames + 1, item.pts
                if not feed.put(item, self._stop, time.monotonic()):
                    break
                if feed.dropped != dropped:
                    self.metrics.drop(camera, "buffer_full", feed.dropped - dropped)
                    dropped = feed.dropped
                if isinstance(item, SourceStatus) and item.state in TERMINAL_STATES:
                    return
        except Exception as err:  # a reader must always leave a terminal record behind
            log.exception("reader of camera %s failed", camera, extra={"camera": camera})
            feed.put(
                SourceStatus(camera, SourceState.FAILED, time.time(), last_pts, error=str(err), frames=frames),
                self._stop,
                time.monotonic(),
            )
            return
        finally:
            source.close()
        detail = "max_frames reached" if not self._stop.is_set() else "decoder stopped"
        feed.put(
            SourceStatus(camera, SourceState.ENDED, time.time(), last_pts, frames=frames, detail=detail),
            self._stop,
            time.monotonic(),
        )

    # --- StreamFrames ----------------------------------------------------------------------------------

    async def StreamFrames(
        self, request: decode_pb2.StreamFramesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[decode_pb2.StreamFramesResponse]:
        """Frames and state changes of the requested cameras this decoder serves, fairly interleaved."""
        wanted = list(request.camera_ids) or list(self.feeds)
        mine = [c for c in wanted if c in self.feeds]
        if not mine:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"none of {wanted} is decoded here (cameras: {list(self.feeds)})"
            )
        token = object()
        for camera in mine:
            if camera in self._owner:
                log.info("camera %s taken over by a new stream", camera, extra={"camera": camera})
            self._owner[camera] = token
        loop, ready = asyncio.get_running_loop(), asyncio.Event()
        for camera in mine:
            self.feeds[camera].add_waiter(loop, ready)
        active = [c for c in mine if c not in self._delivered_end]
        turn = 0
        try:
            while active:
                served = False
                for k in range(len(active)):
                    camera = active[(turn + k) % len(active)]
                    if self._owner.get(camera) is not token:
                        await context.abort(
                            grpc.StatusCode.ABORTED, f"camera {camera} was taken over by a newer stream"
                        )
                    popped = self.feeds[camera].pop()
                    if popped is None:
                        continue
                    item, read_at = popped
                    yield self._response(camera, item, read_at)
                    if isinstance(item, SourceStatus) and item.state in TERMINAL_STATES:
                        self._delivered_end.add(camera)
                        active.remove(camera)
                    turn = (turn + k + 1) % max(len(active), 1)
                    served = True
                    break
                if not served:
                    await ready.wait()
                    ready.clear()
                self._depths()
        finally:
            for camera in mine:
                self.feeds[camera].remove_waiter(loop, ready)
                if self._owner.get(camera) is token:
                    del self._owner[camera]

    def _response(self, camera: str, item: Item, read_at: float) -> decode_pb2.StreamFramesResponse:
        started_ns = time.time_ns() - int((time.monotonic() - read_at) * 1e9)
        self.metrics.observe("buffer", time.monotonic() - read_at)
        stream_id = self.stream_ids[camera]
        if isinstance(item, Frame):
            attrs: dict[str, str | int | float] = {
                "rva.camera": camera,
                "rva.frame.index": item.index,
                "rva.frame.pts": item.pts,
            }
            with self.tracer.start_as_current_span(
                "decode.frame",
                context=otel_context.Context(),
                kind=trace.SpanKind.PRODUCER,
                start_time=started_ns,
                attributes=attrs,
            ):
                msg = encode_frame(
                    item,
                    stream_id,
                    encoding=self.cfg.encoding,
                    jpeg_quality=self.cfg.jpeg_quality,
                    trace_context=inject(),
                    decoded_unix_s=time.time(),
                )
            self.metrics.frame(camera)
            return decode_pb2.StreamFramesResponse(frame=msg)
        event = item.to_event()
        with self.tracer.start_as_current_span(
            "decode.source_state",
            context=otel_context.Context(),
            attributes={"rva.camera": camera, "rva.state": str(item.state)},
        ):
            state = decode_pb2.SourceState(
                event=event.to_proto(self.config.store),
                stream_id=stream_id,
                end_of_stream=item.state in TERMINAL_STATES,
                trace_context=inject(),
            )
        log.info("camera %s: %s", camera, item.state, extra={"camera": camera, "stream_id": stream_id})
        return decode_pb2.StreamFramesResponse(source_state=state)

    def _depths(self) -> None:
        for camera, feed in self.feeds.items():
            self.metrics.depth(f"buffer:{camera}", len(feed))

    async def ListCameras(
        self, request: decode_pb2.ListCamerasRequest, context: grpc.aio.ServicerContext
    ) -> decode_pb2.ListCamerasResponse:
        """State and counters of every camera."""
        return decode_pb2.ListCamerasResponse(
            cameras=[
                decode_pb2.CameraStatus(
                    camera_id=camera,
                    state=str(self.sources[camera].state),
                    frames_decoded=feed.decoded,
                    frames_dropped=feed.dropped,
                    buffered=len(feed),
                    consumer_attached=camera in self._owner,
                )
                for camera, feed in self.feeds.items()
            ]
        )

    # --- life cycle ------------------------------------------------------------------------------------

    async def drain(self, timeout: float) -> None:
        """Stop decoding; give a consumer ``timeout`` seconds to take what is buffered."""
        self._stop.set()
        for source in self.sources.values():
            source.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._owner and any(len(f) for f in self.feeds.values()):
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Join the reader threads."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                await asyncio.to_thread(thread.join, 5.0)
        with contextlib.suppress(Exception):
            for source in self.sources.values():
                source.close()

    def stats(self) -> dict[str, Any]:
        """Counters per camera (decoded, dropped, buffered)."""
        return {c: {"decoded": f.decoded, "dropped": f.dropped, "buffered": len(f)} for c, f in self.feeds.items()}
