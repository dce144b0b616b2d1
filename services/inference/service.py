"""The inference service: pulls frames from decode, detects, publishes detections to JetStream.

Frames of every camera share one backend, so Triton (or the in-process micro-batcher) batches
across cameras. Per camera, frames are published in decode order to
``rva_work.<store>.<camera>.detections`` (``Nats-Msg-Id`` ``<stream_id>.<index>``) once detected;
at most ``queue_frames`` frames per camera are in flight, beyond which pulling from decode pauses
(the decoder then buffers, and for live sources drops and counts). When the backend is down, a
frame is retried with backoff for up to ``give_up_s`` before it is dropped and counted, while the
``Detect`` RPC answers UNAVAILABLE at once (its caller decides).

With the in-process detector (``detector.type: onnx``) the service follows the store's model in
force in JetStream (:mod:`rva.sync.model_bus`, announced by the sync service): each new version is
fetched into ``<services.sync.state_dir>/inference-models``, verified, probed and swapped in between
two micro-batches; a model that fails leaves the running one serving. The outcome is reported under
``RVA_MODEL`` ``<store>.status.<replica>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from opentelemetry import trace

from rva.config import CameraConfig, RVAConfig
from rva.core import Detections
from rva.decode.v1 import decode_pb2, decode_pb2_grpc
from rva.errors import ModelError
from rva.inference.v1 import inference_pb2, inference_pb2_grpc
from rva.sync.model_bus import MODEL_BUCKET, fetch_model, replica_name, report_model, watch_models
from rva.sync.models import DownloadError, ModelManifest, ModelRejected, ModelUpdate
from rva.sync.targets import EmbeddedTarget
from rva.vision.v1 import vision_pb2
from services.common.frames import decode_frame
from services.common.metrics import ServiceMetrics
from services.common.runtime import GRPC_OPTIONS, MalformedRequest, Service
from services.common.telemetry import extract, from_grpc, inject, to_grpc_metadata, tracer
from services.common.work import connect, ensure_work_stream, publish, work_subject
from services.inference.backends import AsyncDetector, BackendUnavailableError, LocalBackend, open_backend

log = logging.getLogger(__name__)


class InferenceService(Service, inference_pb2_grpc.InferenceServiceServicer):
    """Frames -> detections, as a gRPC service and as a pipeline stage.

    Args:
        config: The validated config (``detector``, ``services.inference``, ``services.nats``).
        cameras: Cameras this replica pulls.
        metrics: Metrics (a new registry by default).
        detector: A ready detector to use instead of building one from ``config.detector``.
        replica: This replica's name in model status reports (default: the host name, a pod's name).

    Attributes:
        model_version: The announced model version in service (None: the one ``config.detector`` names).

    """

    name = "inference"
    grpc_names = (inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name,)

    def __init__(
        self,
        config: RVAConfig,
        cameras: list[CameraConfig],
        metrics: ServiceMetrics | None = None,
        *,
        detector: Any = None,
        replica: str | None = None,
    ) -> None:
        super().__init__(config, cameras, metrics)
        self.cfg = config.services.inference
        self._detector = detector
        self.replica = replica_name(replica)
        self.model_version: str | None = None
        self.backend: AsyncDetector | None = None
        self.tracer = tracer(self.name)
        self._tasks: list[asyncio.Task[Any]] = []
        self._lanes: dict[str, asyncio.Queue[tuple[str, Any, Any]]] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._calls: set[Any] = set()
        self.nc: Any = None
        self.js: Any = None

    def register(self, server: grpc.aio.Server) -> None:
        """Serve ``rva.inference.v1.InferenceService``."""
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(self, server)

    async def start(self) -> None:
        """Connect to NATS, open the backend (retrying in the background), start pulling frames."""
        self.nc, self.js = await connect(self.config.services.nats, "rva-inference")
        await ensure_work_stream(self.js, self.config.services.nats)
        self._tasks.append(asyncio.create_task(self._open_backend()))
        if self.config.detector.type == "onnx":
            self._tasks.append(asyncio.create_task(self._follow_models()))
        for addr in self.cfg.decode_addrs:
            self._tasks.append(asyncio.create_task(self._pull(addr)))

    async def _open_backend(self) -> None:
        delay = self.cfg.retry_initial_s
        while not self._stop.is_set():
            try:
                self.backend = await asyncio.to_thread(open_backend, self.config.detector, self.cfg, self._detector)
                self._ready.set()
                log.info("detector backend %s ready", self.backend.kind)
                return
            except BackendUnavailableError as err:
                self.metrics.error("backend_unavailable")
                log.warning("detector backend unavailable (%s); retrying in %.1f s", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.cfg.retry_max_s)

    # --- model updates (in-process detector) ----------------------------------------------------------

    async def _follow_models(self) -> None:
        """Swap in each model version announced for this store; watch again after a NATS failure."""
        await self._ready.wait()
        backend = self.backend
        if not isinstance(backend, LocalBackend):
            return
        store, delay = self.config.store, self.cfg.retry_initial_s
        rejected: set[tuple[str, str]] = set()  # (version, sha256) that failed here: not tried again
        while not self._stop.is_set():
            try:
                async for manifest in watch_models(self.js, store):
                    delay = self.cfg.retry_initial_s
                    if manifest.version == self.model_version or (manifest.version, manifest.sha256) in rejected:
                        continue
                    update = await self._apply_model(backend, manifest)
                    if update.rolled_back:
                        rejected.add((manifest.version, manifest.sha256))
            except Exception as err:  # NATS down or the bucket unreadable: watch again
                self.metrics.error("model_watch")
                log.warning("watching %s/%s failed (%r); again in %.1f s", MODEL_BUCKET, store, err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.cfg.retry_max_s)

    async def _apply_model(self, backend: LocalBackend, manifest: ModelManifest) -> ModelUpdate:
        """Fetch, verify, probe and swap in ``manifest``'s model; report the outcome (never raises for a bad model)."""
        previous, version = self.model_version, manifest.version
        running = previous or "the configured model"
        cache = Path(self.config.services.sync.state_dir) / "inference-models"
        log.info("model %s announced for %s; fetching it (running %s)", version, self.config.store, running)
        try:
            path = await fetch_model(self.js, self.config.store, manifest, cache)
            target = EmbeddedTarget(self.config.detector, backend.swap)
            await asyncio.to_thread(target.activate, path, manifest)
        except DownloadError as err:
            self.metrics.error("model_download")
            log.error("model %s not fetched: %s; %s keeps serving", version, err, running)
            update = ModelUpdate(version, previous, error=str(err))
        except ModelRejected as err:
            self.metrics.error("model_rejected")
            log.error("model %s rejected: %s; %s keeps serving", version, err, running)
            update = ModelUpdate(version, previous, rolled_back=err.rolled_back, error=str(err))
            shutil.rmtree(cache / version, ignore_errors=True)  # a file that does not work is not kept
        else:
            self.model_version = version
            self.metrics.gauge.labels(self.name, "model_version_swaps").inc()
            log.info("model %s in service, was %s", version, running)
            update = ModelUpdate(version, previous)
            for old in cache.iterdir():  # keep the one in service and the previous one
                if old.is_dir() and old.name not in {version, previous}:
                    shutil.rmtree(old, ignore_errors=True)
        try:
            await asyncio.wait_for(report_model(self.js, self.config.store, self.replica, update),
                                   self.config.services.nats.publish_timeout_s)
        except Exception as err:  # the outcome stands; only its report is missing
            self.metrics.error("model_report")
            log.warning("could not report model %s's outcome: %r", version, err)
        return update

    # --- pulling frames from decode -------------------------------------------------------------------

    async def _pull(self, addr: str) -> None:
        delay = self.cfg.retry_initial_s
        wanted = [c.id for c in self.cameras]
        while not self._stop.is_set():
            await self._ready.wait()
            async with grpc.aio.insecure_channel(addr, options=GRPC_OPTIONS) as channel:
                try:
                    await asyncio.wait_for(channel.channel_ready(), self.config.services.rpc_timeout_s)
                    stub = decode_pb2_grpc.DecodeServiceStub(channel)
                    call = stub.StreamFrames(
                        decode_pb2.StreamFramesRequest(camera_ids=wanted), metadata=to_grpc_metadata()
                    )
                    self._calls.add(call)
                    async for response in call:
                        delay = self.cfg.retry_initial_s
                        await self._accept(response)
                    self._calls.discard(call)
                except (grpc.aio.AioRpcError, TimeoutError) as err:
                    if self._stop.is_set():
                        return
                    code = err.code().name if isinstance(err, grpc.aio.AioRpcError) else "DEADLINE_EXCEEDED"
                    self.metrics.error(f"decode_{code.lower()}")
                    log.warning("frames from decode %s interrupted (%s); retrying in %.1f s", addr, code, delay)
                except asyncio.CancelledError:
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.cfg.retry_max_s)

    async def _accept(self, response: decode_pb2.StreamFramesResponse) -> None:
        if response.HasField("frame"):
            msg = response.frame
            try:
                frame = decode_frame(msg)
            except ValueError as err:
                self.metrics.drop(msg.meta.camera or "?", "malformed")
                log.warning("dropping a malformed frame from decode: %s", err)
                return
            task = asyncio.create_task(self._detect_frame(frame.image, msg))
            await self._lane(frame.camera).put(("frame", msg, task))
        elif response.HasField("source_state"):
            await self._lane(response.source_state.event.camera).put(("state", response.source_state, None))
        self._depths()

    def _lane(self, camera: str) -> asyncio.Queue[tuple[str, Any, Any]]:
        lane = self._lanes.get(camera)
        if lane is None:
            lane = self._lanes[camera] = asyncio.Queue(maxsize=self.cfg.queue_frames)
            self._lane_tasks[camera] = asyncio.create_task(self._publish_lane(camera, lane))
        return lane

    def _depths(self) -> None:
        for camera, lane in self._lanes.items():
            self.metrics.depth(f"lane:{camera}", lane.qsize())

    async def _detect_frame(self, image: Any, msg: decode_pb2.VideoFrame) -> tuple[Detections, dict[str, str]] | None:
        """Detect one pipeline frame, retrying while the backend is down; None when dropped."""
        loop = asyncio.get_running_loop()
        camera = msg.meta.camera
        attrs: dict[str, str | int] = {"rva.camera": camera, "rva.frame.index": int(msg.meta.index)}
        with self.tracer.start_as_current_span(
            "inference.detect", context=extract(msg.trace_context), kind=trace.SpanKind.CONSUMER, attributes=attrs
        ) as span:
            started = loop.time()
            delay = self.cfg.retry_initial_s
            while True:
                assert self.backend is not None
                try:
                    t0 = time.perf_counter()
                    with self.tracer.start_as_current_span(f"detector.{self.backend.kind}", kind=trace.SpanKind.CLIENT):
                        found = await self.backend.detect(image, inject())
                    self.metrics.observe("detect", time.perf_counter() - t0)
                    return found, inject()
                except BackendUnavailableError as err:
                    self.metrics.error("backend_unavailable")
                    if self._stop.is_set() or loop.time() - started + delay > self.cfg.give_up_s:
                        self.metrics.drop(camera, "detector_unavailable")
                        span.set_status(trace.Status(trace.StatusCode.ERROR, str(err)))
                        return None
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.cfg.retry_max_s)
                except (ValueError, ModelError) as err:
                    self.metrics.drop(camera, "detector_error")
                    span.record_exception(err)
                    log.error("detector failed on a frame: %s", err, extra={"camera": camera})
                    return None

    async def _publish_lane(self, camera: str, lane: asyncio.Queue[tuple[str, Any, Any]]) -> None:
        subject = work_subject(self.config.store, camera, "detections")
        while True:
            kind, msg, task = await lane.get()
            try:
                if kind == "frame":
                    outcome = await task
                    if outcome is None:
                        continue
                    found, carrier = outcome
                    record = inference_pb2.DetectionsRecord(
                        detections=vision_pb2.FrameDetections(frame=msg.meta, detections=found.to_proto()),
                        stream_id=msg.stream_id,
                        decoded_unix_s=msg.decoded_unix_s,
                    )
                    msg_id = f"{msg.stream_id}.{msg.meta.index}.det"
                else:
                    record = inference_pb2.DetectionsRecord(source_state=msg, stream_id=msg.stream_id)
                    carrier = dict(msg.trace_context)
                    msg_id = f"{msg.stream_id}.{msg.event.event_id or msg.event.attrs_json}.det"
                await self._publish(subject, record.SerializeToString(), {**carrier, "Nats-Msg-Id": msg_id}, camera)
                if kind == "frame":
                    self.metrics.frame(camera)
            finally:
                lane.task_done()
                self.metrics.depth(f"lane:{camera}", lane.qsize())

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str], camera: str) -> None:
        await publish(
            self.js,
            subject,
            payload,
            headers,
            timeout_s=self.config.services.nats.publish_timeout_s,
            retry_initial_s=self.cfg.retry_initial_s,
            retry_max_s=self.cfg.retry_max_s,
            on_error=lambda err: self.metrics.error("publish"),
        )

    # --- the Detect RPC --------------------------------------------------------------------------------

    async def Detect(
        self, request_iterator: AsyncIterator[inference_pb2.DetectRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inference_pb2.DetectResponse]:
        """Frames in, detections out, in order; several frames in flight per stream."""
        if self.backend is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the detector backend is not ready")
        backend = self.backend
        assert backend is not None
        stream_ctx = from_grpc(context.invocation_metadata())
        pending: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.cfg.queue_frames)

        async def once(image: Any, msg: decode_pb2.VideoFrame) -> Detections:
            ctx = extract(msg.trace_context) if msg.trace_context else stream_ctx
            with self.tracer.start_as_current_span("inference.Detect", context=ctx, kind=trace.SpanKind.SERVER):
                t0 = time.perf_counter()
                found = await backend.detect(image, inject())
                self.metrics.observe("detect", time.perf_counter() - t0)
                return found

        async def read() -> None:
            async for request in request_iterator:
                if isinstance(request, MalformedRequest):
                    await pending.put(ValueError(request.error))
                    return
                if not request.HasField("frame"):
                    await pending.put(ValueError("DetectRequest.frame is required"))
                    return
                try:
                    frame = decode_frame(request.frame)
                except ValueError as err:
                    await pending.put(err)
                    return
                await pending.put((request.frame, asyncio.create_task(once(frame.image, request.frame))))
            await pending.put(None)

        reader = asyncio.create_task(read())
        try:
            while (item := await pending.get()) is not None:
                if isinstance(item, ValueError):
                    self.metrics.error("invalid_argument")
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(item))
                msg, task = item
                try:
                    found = await task
                except BackendUnavailableError as err:
                    self.metrics.error("backend_unavailable")
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
                except ValueError as err:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
                self.metrics.frame(msg.meta.camera)
                yield inference_pb2.DetectResponse(
                    result=vision_pb2.FrameDetections(frame=msg.meta, detections=found.to_proto())
                )
        finally:
            reader.cancel()
            while not pending.empty():
                item = pending.get_nowait()
                if isinstance(item, tuple):
                    item[1].cancel()

    async def GetModelInfo(
        self, request: inference_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.GetModelInfoResponse:
        """The backend and its model."""
        if self.backend is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the detector backend is not ready")
        b = self.backend
        assert b is not None
        return inference_pb2.GetModelInfoResponse(
            backend=b.kind, names=b.names, labels=b.labels, input_height=b.input_hw[0], input_width=b.input_hw[1]
        )

    # --- life cycle ------------------------------------------------------------------------------------

    async def drain(self, timeout: float) -> None:
        """Stop pulling; publish what is in flight (the backend keeps serving it) within ``timeout``."""
        self._stop.set()
        for call in list(self._calls):
            call.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(lane.join() for lane in self._lanes.values())), timeout)

    async def close(self) -> None:
        """Cancel the loops, close the backend and NATS."""
        self._stop.set()
        for task in [*self._tasks, *self._lane_tasks.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._lane_tasks.values(), return_exceptions=True)
        if self.backend is not None:
            await self.backend.close()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 5)
