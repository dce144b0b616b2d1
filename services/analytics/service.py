"""The analytics service: per-camera zones, lines, queues and heatmap fed from the tracks work subject.

Every event goes to JetStream as ``rva.<store>.<camera>.<kind>`` (:mod:`rva.bus.jetstream`).

Each camera is read through its durable consumer ``analytics-<store>-<camera>`` and a record is
acknowledged only after all its events are acknowledged by JetStream (``Nats-Msg-Id`` = event id,
so a replay after a crash is de-duplicated). When the tracker's generation or the decode stream
changes, the tracks analytics still holds open are closed at the last time they were seen
(counted as ``tracks_closed_by_restart``), so no visit stays open forever.

Zones, lines and queues follow the store document the sync service puts in force (NATS KV
``RVA_CONFIG``, see :mod:`rva.sync.config_pull`): each new version is applied between two frames,
without a restart (:meth:`rva.analytics.CameraAnalytics.reconfigure`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
from nats.js.errors import KeyWrongLastSequenceError
from opentelemetry import trace

from rva.alerts import AlertEngine
from rva.analytics import CameraAnalytics
from rva.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from rva.bus.jetstream import EventPublisher, ensure_stream, stream_bucket
from rva.config import CameraConfig, RVAConfig
from rva.core import Detections, Event, EventType
from rva.errors import ConfigError
from rva.sync.config_pull import merge_document, watch_config
from rva.tracking.v1 import tracking_pb2
from services.common.metrics import ServiceMetrics
from services.common.telemetry import extract, inject, tracer
from services.common.work import ConsumingService, WorkConsumer, connect, ensure_work_stream, work_subject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Ended:
    """A track closed by analytics itself (its tracker is gone)."""

    track_id: int
    first_ts: float
    last_ts: float


@dataclass
class CameraState:
    """One camera's analytics and bookkeeping."""

    camera: CameraConfig
    analytics: CameraAnalytics | None = None
    stream_id: str = ""
    generation: int = 0
    last_index: int = -1
    last_ts: float | None = None
    frames: int = 0
    gaps: int = 0
    published: int = 0
    closed_by_restart: int = 0
    live: dict[int, list[float]] = field(default_factory=dict)  # track id -> [first_ts, last seen ts]
    origin: float | None = None  # wall-clock time of stream time 0 of the current decode session
    consumer: WorkConsumer | None = field(default=None, repr=False)


class AnalyticsService(ConsumingService, analytics_pb2_grpc.AnalyticsServiceServicer):
    """Tracks work -> CameraAnalytics per camera -> events on JetStream.

    Args:
        config: The validated config (cameras, ``services.analytics``, ``services.nats``).
        cameras: Cameras this replica analyses (each camera by one replica only).
        metrics: Metrics (a new registry by default).

    """

    name = "analytics"
    grpc_names = (analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name,)

    def __init__(self, config: RVAConfig, cameras: list[CameraConfig], metrics: ServiceMetrics | None = None) -> None:
        super().__init__(config, cameras, metrics)
        self.cfg = config.services.analytics
        self.tracer = tracer(self.name)
        self.states = {c.id: CameraState(c) for c in cameras}
        self.publisher: EventPublisher | None = None
        self.config_version = ""
        self.js: Any = None
        self.alerts = AlertEngine(config.store, config.alerts.rules, upright_s=config.alerts.upright_s)

    def register(self, server: grpc.aio.Server) -> None:
        """Serve ``rva.analytics.v1.AnalyticsService``."""
        analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(self, server)

    async def start(self) -> None:
        """Connect, make sure both streams exist, start consuming."""
        nats_cfg = self.config.services.nats
        self.nc, js = await connect(nats_cfg, "rva-analytics")
        self.js = js
        await ensure_work_stream(js, nats_cfg)
        await ensure_stream(js, max_age_s=nats_cfg.events_max_age_s, duplicate_window_s=nats_cfg.duplicate_window_s)
        self.publisher = EventPublisher(js, self.config.store, timeout_s=nats_cfg.publish_timeout_s)
        for camera, st in self.states.items():
            st.consumer = WorkConsumer(
                js,
                work_subject(self.config.store, camera, "tracks"),
                f"analytics-{self.config.store}-{camera}",
                self.cfg,
            )
            await st.consumer.open()
            self.consume(camera, st.consumer, functools.partial(self._handle, st))
        self._tasks.append(asyncio.create_task(self._watch_config(js)))

    async def _watch_config(self, js: Any) -> None:
        """Apply each store document put in force by the sync service (NATS KV ``RVA_CONFIG``), live."""
        while True:
            try:
                async for version, document in watch_config(js, self.config.store):
                    await self.apply_document(version, document)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # NATS away: the watch resumes from the latest value
                log.warning("config watch failed (%r); retrying in 2 s", err)
                await asyncio.sleep(2.0)

    async def apply_document(self, version: str, document: dict[str, Any]) -> None:
        """Swap zones, lines and queues of every camera the document changes; publish what that closes."""
        try:
            merged, _ = merge_document(self.config, document)
        except ConfigError as err:
            self.metrics.error("config_refused")
            log.error("config %s refused (the one in force stays): %s", version, err)
            return
        by_id = {c.id: c for c in merged.cameras}
        changed = []
        for camera, st in self.states.items():
            new = by_id.get(camera)
            if new is None or new == st.camera:
                continue
            events: list[Event] = []
            if st.analytics is not None:
                try:
                    events = st.analytics.reconfigure(new)
                except ConfigError as err:
                    self.metrics.error("config_refused")
                    log.error("config %s refused for camera %s: %s", version, camera, err)
                    continue
            st.camera = new
            changed.append(camera)
            for event in events:
                await self._publish(self._clock(event, st.origin), {})
        self.config = merged
        self.config_version = version
        self.alerts = AlertEngine(merged.store, merged.alerts.rules, upright_s=merged.alerts.upright_s,
                                  state=self.alerts.state)  # holds and cooldowns carry over
        if version.lstrip("v").isdigit():
            self.metrics.gauge.labels(self.name, "config_version").set(int(version.lstrip("v")))
        log.info("config %s in force; cameras changed: %s", version, ", ".join(changed) or "none")

    async def _handle(self, st: CameraState, msg: Any) -> None:
        record = tracking_pb2.TracksRecord.FromString(msg.data)
        camera = st.camera.id
        with self.tracer.start_as_current_span(
            "analytics.update",
            context=extract(msg.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={"rva.camera": camera, "rva.generation": int(record.generation)},
        ):
            before = st.origin
            events = [self._clock(e, before) for e in self._switch(st, record)]  # the old session's
            if record.HasField("tracks"):
                if st.origin is None:
                    st.origin = await self._stream_origin(st, record)
                events += [self._clock(e, st.origin) for e in self._frame(st, record)]
            else:
                events += [self._clock(e, st.origin) for e in self._state(st, record)]
            headers = inject()
            for event in events:
                await self._publish(event, headers)
        if record.decoded_unix_s:
            self.metrics.observe("end_to_end", max(time.time() - record.decoded_unix_s, 0.0))

    def _clock(self, event: Event, origin: float | None) -> Event:
        """The event on the configured clock: wall (origin + stream time) or the stream's own."""
        if self.cfg.event_time == "stream":
            return event
        if origin is not None:
            return event.shifted(origin)
        wall = event.attrs.get("ts_wall")  # a source state before the session's first frame
        if event.type is EventType.SOURCE_STATE and isinstance(wall, int | float):
            return replace(event, ts=float(wall))
        return event

    async def _stream_origin(self, st: CameraState, record: tracking_pb2.TracksRecord) -> float:
        """Wall time of the session's stream time 0, the same for every replica and after a restart.

        The first frame analysed fixes it (``decoded_unix_s - pts``) in the NATS KV bucket
        ``RVA_STREAMS`` under the session; a restarted or replacing process reads the same value back,
        so a replayed frame's events keep their times and ids.
        """
        key = f"{self.config.store}.{st.camera.id}.{record.stream_id}"
        tracks = record.tracks
        guess = (record.decoded_unix_s or time.time()) - float(tracks.frame.pts)
        for _ in range(3):
            try:
                kv = await stream_bucket(self.js)
                try:
                    await kv.create(key, repr(guess).encode())
                    return guess
                except KeyWrongLastSequenceError:  # fixed before (a restart, another replica)
                    return float((await kv.get(key)).value)
            except Exception as err:  # NATS away for a moment
                log.warning("stream origin of %s: %r; retrying", key, err)
                await asyncio.sleep(0.5)
        log.error("stream origin of %s not stored; using this process's %.3f", key, guess)
        return guess

    def _switch(self, st: CameraState, record: tracking_pb2.TracksRecord) -> list[Event]:
        """Close what the tracker forgot when its generation or the decode stream changed."""
        new_stream = record.stream_id != st.stream_id
        if not (new_stream or record.generation != st.generation):
            return []
        events: list[Event] = []
        if st.analytics is not None and st.live and st.last_ts is not None:
            ended = [_Ended(tid, first, last) for tid, (first, last) in sorted(st.live.items())]
            events += st.analytics.update(Detections.empty(), st.last_ts, ended=ended)
            st.closed_by_restart += len(ended)
            self.metrics.drop(st.camera.id, "tracks_closed_by_restart", len(ended))
            log.warning(
                "camera %s: tracker generation %d -> %d, stream %s -> %s: closed %d live tracks",
                st.camera.id,
                st.generation,
                record.generation,
                st.stream_id or "-",
                record.stream_id,
                len(ended),
                extra={"camera": st.camera.id},
            )
        st.live.clear()
        if new_stream:
            if st.analytics is not None and st.last_ts is not None:
                events += st.analytics.finish(st.last_ts)
            st.analytics, st.last_index, st.last_ts, st.origin = None, -1, None, None
        st.stream_id, st.generation = record.stream_id, int(record.generation)
        return events

    def _frame(self, st: CameraState, record: tracking_pb2.TracksRecord) -> list[Event]:
        tracks = record.tracks
        index, ts = int(tracks.frame.index), float(tracks.frame.pts)
        if index <= st.last_index:
            self.metrics.drop(st.camera.id, "duplicate")
            return []
        if st.last_index >= 0 and index != st.last_index + 1:
            st.gaps += index - st.last_index - 1
        if st.analytics is None:
            st.analytics = CameraAnalytics(st.camera, (int(tracks.frame.width), int(tracks.frame.height)))
        tracked = Detections.from_proto(tracks.tracked)
        for tid in tracks.started:
            st.live[int(tid)] = [ts, ts]
        for tid in tracked.tracker_id.tolist():
            st.live.setdefault(int(tid), [ts, ts])[1] = ts
        for end in tracks.ended:
            st.live.pop(int(end.track_id), None)
        t0 = time.perf_counter()
        events = st.analytics.update(tracked, ts, started=[int(t) for t in tracks.started], ended=list(tracks.ended))
        events += self.alerts.after_frame(st.camera.id, st.analytics, tracked, ts, events)
        self.metrics.observe("analytics", time.perf_counter() - t0)
        st.last_index, st.last_ts = index, ts
        st.frames += 1
        self.metrics.frame(st.camera.id)
        return events

    def _state(self, st: CameraState, record: tracking_pb2.TracksRecord) -> list[Event]:
        events = [Event.from_proto(record.source_state.event)]
        if record.source_state.end_of_stream and st.analytics is not None and st.last_ts is not None:
            final = list(record.final_ended)
            for end in final:
                st.live.pop(int(end.track_id), None)
            events += st.analytics.update(Detections.empty(), st.last_ts, ended=final)
            events += st.analytics.finish(st.last_ts)
        for event in list(events):
            events += self.alerts.on_event(event)  # a camera going offline; visits closed at the end
        return events

    async def _publish(self, event: Event, headers: dict[str, str]) -> None:
        assert self.publisher is not None
        delay = 0.2
        while True:
            try:
                ack = await self.publisher.publish(event, headers)
                break
            except Exception as err:  # NATS down or slow: retry with the same id (de-duplicated)
                self.metrics.error("publish")
                log.warning("publishing an event failed (%r); retrying in %.1f s", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        st = self.states.get(event.camera)
        if st is not None and not getattr(ack, "duplicate", False):
            st.published += 1
            self.metrics.events.labels(event.camera, str(event.type)).inc()
        if self.taps.offer(event.camera, event.to_proto(self.config.store)):
            self.metrics.drop(event.camera, "tap_slow")

    # --- RPCs ------------------------------------------------------------------------------------------

    async def StreamEvents(
        self, request: analytics_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[analytics_pb2.StreamEventsResponse]:
        """Events of the requested cameras as they are published, until the caller hangs up."""
        async for event in self.tap(request.camera_ids):
            yield analytics_pb2.StreamEventsResponse(event=event)

    async def GetSummary(
        self, request: analytics_pb2.GetSummaryRequest, context: grpc.aio.ServicerContext
    ) -> analytics_pb2.GetSummaryResponse:
        """Totals per camera."""
        wanted = set(request.camera_ids) or set(self.states)
        unknown = wanted - set(self.states)
        if unknown:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"cameras {sorted(unknown)} are not analysed here")
        return analytics_pb2.GetSummaryResponse(
            cameras=[
                analytics_pb2.CameraSummary(
                    camera_id=cam,
                    frames=st.frames,
                    events_published=st.published,
                    tracks_closed_by_restart=st.closed_by_restart,
                    last_index=max(st.last_index, 0),
                    index_gaps=st.gaps,
                    summary_json=json.dumps(st.analytics.summary() if st.analytics else {}, default=str),
                )
                for cam, st in self.states.items()
                if cam in wanted
            ]
        )
