"""The sync service (edge): events -> outbox -> cloud, and config updates cloud -> edge.

Three loops share one process:

* **collect**: a durable JetStream consumer ``sync-<store>`` on ``rva.<store>.>`` (stream
  ``RVA_EVENTS``) writes events into the SQLite outbox (:mod:`rva.sync.outbox`) and acknowledges each
  message only once the outbox committed it. ``reject_new`` refusals are handed back (``nak``) so
  JetStream keeps them; a message that is not an event is terminated and counted.
* **upload**: :class:`rva.sync.uploader.Uploader` sends gzip batches of ``batch_events`` to the
  cloud's ingest endpoint until each is acknowledged.
* **pull**: every ``poll_interval_s`` the store document is fetched with ``If-None-Match``; a new
  valid version goes into the ``RVA_CONFIG`` key-value bucket, where analytics picks it up live
  (:mod:`rva.sync.config_pull`). The store's model manifest is polled the same way and applied by
  :class:`rva.sync.models.ModelUpdater`: into Triton (explicit model control, a new version
  directory) or, for the embedded detector, verified here and announced on NATS for the inference
  service (:mod:`rva.sync.model_bus`); a model that does not load is rolled back.

With no ``cloud_url`` (standalone) the service only keeps the outbox, which then fills to its bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
from prometheus_client import Counter, Gauge

from rva.bus.jetstream import EVENTS_STREAM, ensure_stream
from rva.config import CameraConfig, RVAConfig, TritonDetectorConfig
from rva.counters import CounterMirror
from rva.events.v1 import events_pb2
from rva.sync.config_pull import ConfigPuller, ConfigUpdate, current_config, put_config, version_of
from rva.sync.model_bus import AnnounceTarget, announcer
from rva.sync.models import ModelTarget, ModelUpdater
from rva.sync.outbox import Outbox, OutboxEvent
from rva.sync.targets import TritonTarget
from rva.sync.uploader import Uploader, UploaderConfig
from rva.sync.v1 import sync_pb2, sync_pb2_grpc
from services.common.metrics import ServiceMetrics
from services.common.runtime import Service
from services.common.work import connect

log = logging.getLogger(__name__)

_UPLINK = {
    "online": sync_pb2.UPLINK_STATE_ONLINE,
    "backoff": sync_pb2.UPLINK_STATE_BACKOFF,
    "auth_failed": sync_pb2.UPLINK_STATE_BACKOFF,
}


def outbox_event(msg_data: bytes, subject: str) -> OutboxEvent:
    """An outbox row from a JetStream event message (``rva.events.v1.Event`` protobuf).

    Raises:
        ValueError: Not an event, or no event id.

    """
    from google.protobuf.message import DecodeError

    try:
        ev = events_pb2.Event.FromString(msg_data)
    except DecodeError as err:
        raise ValueError(f"{subject}: not an rva.events.v1.Event: {err}") from None
    if not ev.event_id:
        raise ValueError(f"{subject}: event without event_id")
    parts = subject.split(".")
    kind = parts[3] if len(parts) == 4 else events_pb2.EventType.Name(ev.type).removeprefix("EVENT_TYPE_").lower()
    return OutboxEvent(ev.event_id, ev.camera, kind, float(ev.ts), msg_data)


class SyncMetrics:
    """The sync service's own metrics, on the service's registry."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        r = metrics.registry
        self.outbox_events = Gauge("rva_sync_outbox_events", "Events in the outbox, not yet acked by the cloud.",
                                   registry=r)
        self.outbox_bytes = Gauge("rva_sync_outbox_bytes", "Bytes counted against the outbox bound.", registry=r)
        self.uploaded = Counter("rva_sync_uploaded_events", "Events acknowledged by the cloud.", registry=r)
        self.batches = Counter("rva_sync_batches", "Batch uploads by HTTP status ('error': no answer).",
                               ["result"], registry=r)
        self.dropped = Counter("rva_sync_dropped_events", "Events dropped by the outbox-full policy.",
                               ["camera", "kind", "reason"], registry=r)
        self.refused = Counter("rva_sync_refused_events", "Events refused into a full outbox (left in JetStream).",
                               registry=r)
        self.rejected = Counter("rva_sync_rejected_events", "Events the cloud refused as invalid (kept locally).",
                                registry=r)
        self.uplink = Gauge("rva_sync_uplink_state", "1 online, 2 backing off, 3 outbox full.", registry=r)
        self.skew = Gauge("rva_sync_clock_skew_seconds", "Edge clock minus the cloud's (Date header).", registry=r)
        self.lag = Gauge("rva_sync_oldest_event_age_seconds", "Age of the oldest event not yet uploaded.",
                         registry=r)
        self.config_updates = Counter("rva_sync_config_updates", "Config versions applied or refused.",
                                      ["result"], registry=r)
        self.model_updates = Counter("rva_sync_model_updates", "Model versions applied or rolled back.",
                                     ["result"], registry=r)


class SyncService(Service, sync_pb2_grpc.SyncServiceServicer):
    """Edge-to-cloud sync of one store (see the module docs).

    Args:
        config: The validated config (``store``, ``services.sync``, ``services.nats``).
        cameras: Unused (the service handles every camera of the store); kept for the runtime's signature.
        metrics: Metrics (a new registry by default).

    """

    name = "sync"
    grpc_names = (sync_pb2.DESCRIPTOR.services_by_name["SyncService"].full_name,)

    def __init__(self, config: RVAConfig, cameras: list[CameraConfig] | None = None,
                 metrics: ServiceMetrics | None = None) -> None:
        super().__init__(config, cameras if cameras is not None else config.cameras, metrics)
        self.m = SyncMetrics(self.metrics)
        self.cfg = config.services.sync
        self.outbox = Outbox(self.cfg.outbox_path, self.cfg.outbox_max_bytes, self.cfg.outbox_full_policy)
        self.wake = asyncio.Event()
        self.uploader: Uploader | None = None
        self.puller: ConfigPuller | None = None
        self.nc: Any = None
        self.js: Any = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._updates: list[asyncio.Queue[sync_pb2.WatchUpdatesResponse]] = []
        self._mirrored = CounterMirror()  # the uploader's and the outbox's totals, as counters
        self._full = False
        self.models: ModelUpdater | None = None
        self.model_revision = ""

    def register(self, server: grpc.aio.Server) -> None:
        """Serve ``rva.sync.v1.SyncService``."""
        sync_pb2_grpc.add_SyncServiceServicer_to_server(self, server)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to NATS, open the consumer, start the loops."""
        nats_cfg = self.config.services.nats
        self.nc, self.js = await connect(nats_cfg, "rva-sync")
        await ensure_stream(self.js, max_age_s=nats_cfg.events_max_age_s,
                            duplicate_window_s=nats_cfg.duplicate_window_s)
        self._tasks.append(asyncio.create_task(self._collect()))
        if self.cfg.cloud_url:
            self.uploader = Uploader(self.outbox, UploaderConfig(
                cloud_url=self.cfg.cloud_url, api_key=self.cfg.api_key or "", store=self.config.store,
                batch_events=self.cfg.batch_events, linger_s=self.cfg.batch_linger_s,
                timeout_s=self.cfg.request_timeout_s, backoff_initial_s=self.cfg.backoff_initial_s,
                backoff_max_s=self.cfg.backoff_max_s, ca_file=self.cfg.ca_file,
            ), wake=self.wake)
            self._tasks.append(asyncio.create_task(self.uploader.run()))
            self.puller = ConfigPuller(self.config, self.uploader.client(), self.config.store)
            current = await current_config(self.js, self.config.store)
            if current is not None:
                self.puller.version = current[0]
            self._tasks.append(asyncio.create_task(self._pull()))
            self.models = self._model_updater()
            if self.models is not None:
                self._tasks.append(asyncio.create_task(self._pull_models()))
        else:
            log.warning("services.sync.cloud_url is not set: events stay in the outbox %s", self.cfg.outbox_path)
        self._tasks.append(asyncio.create_task(self._gauges()))

    async def drain(self, timeout: float) -> None:
        """Stop collecting; give the upload in flight ``timeout`` seconds to finish."""
        self._stop.set()
        if self.uploader is not None:
            self.uploader.stop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

    async def close(self) -> None:
        """Cancel the loops, close NATS and the outbox."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 5)
        self.outbox.close()

    # -- collect -----------------------------------------------------------------------------------

    async def _subscribe(self) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        subject = f"rva.{self.config.store}.>"
        durable = f"sync-{self.config.store}"
        config = ConsumerConfig(
            durable_name=durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=30.0, max_ack_pending=20_000, filter_subject=subject,
        )
        return await self.js.pull_subscribe(subject, durable=durable, stream=EVENTS_STREAM, config=config)

    async def _collect(self) -> None:
        import nats.errors

        sub = await self._subscribe()
        while not self._stop.is_set():
            try:
                msgs = await sub.fetch(500, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.ConnectionClosedError:
                return
            except Exception as err:  # transient JetStream errors: back off, retry
                log.warning("fetch from sync-%s failed: %r", self.config.store, err)
                await asyncio.sleep(1.0)
                continue
            await self._store(msgs)

    async def _store(self, msgs: list[Any]) -> None:
        good: list[tuple[Any, OutboxEvent]] = []
        for msg in msgs:
            try:
                good.append((msg, outbox_event(msg.data, msg.subject)))
            except ValueError as err:
                log.error("dropping a message that is not an event: %s", err)
                self.metrics.drop("-", "not_an_event")
                await msg.term()
        if not good:
            return
        result = await asyncio.to_thread(self.outbox.add, [ev for _, ev in good])
        refused = set(result.refused_ids)
        for msg, ev in good:
            if ev.event_id in refused:
                await msg.nak(delay=5.0)  # JetStream keeps it; offered again when the outbox has room
            else:
                await msg.ack()
        if result.refused:
            self.m.refused.inc(result.refused)
        self._full = bool(result.refused or result.dropped)
        if result.dropped:
            await asyncio.to_thread(self._count_drops)
        if result.added:
            self.wake.set()

    def _count_drops(self) -> None:
        for d in self.outbox.drops():
            new = self._mirrored.total(self.m.dropped, (d.camera, d.kind, d.reason), d.events)
            if new > 0:
                log.warning("outbox full (%d bytes bound, policy %s): dropped %d %s event(s) of camera %s",
                            self.outbox.max_bytes, self.outbox.full_policy, new, d.kind, d.camera)

    # -- pull --------------------------------------------------------------------------------------

    async def _pull(self) -> None:
        assert self.puller is not None
        while not self._stop.is_set():
            try:
                found = await self.puller.poll()
            except httpx.HTTPError as err:
                self.puller.last_error = f"config pull: {type(err).__name__}: {err}"
                log.warning("%s", self.puller.last_error)
                found = None
            if found is not None:
                update, document = found
                if not update.rolled_back:
                    await put_config(self.js, self.config.store, update.version, document)
                    log.info("config %s in force (was %s)", update.version, update.previous_version or "local")
                self.m.config_updates.labels("refused" if update.rolled_back else "applied").inc()
                self._announce("config", update)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.cfg.poll_interval_s)

    def _model_updater(self) -> ModelUpdater | None:
        """The model updater for this edge's detector, or None (with the reason logged)."""
        if not self.cfg.model_updates:
            return None
        det = self.config.detector
        target: ModelTarget
        if isinstance(det, TritonDetectorConfig):
            if not self.cfg.triton_model_repository:
                log.warning("model updates off: set services.sync.triton_model_repository (RVA_SYNC_TRITON_MODEL_"
                            "REPOSITORY) to Triton's model repository as mounted here")
                return None
            target = TritonTarget(det.url, det.model_name, Path(self.cfg.triton_model_repository))
        else:  # the inference service's embedded detector: verified here, announced on NATS
            target = AnnounceTarget(det, announcer(self.js, self.config.store, asyncio.get_running_loop()))
        return ModelUpdater(Path(self.cfg.state_dir), target, timeout_s=self.cfg.request_timeout_s,
                            ca_file=self.cfg.ca_file)

    async def _pull_models(self) -> None:
        """Poll the store's model manifest; apply a new one (download, verify, load, or roll back)."""
        assert self.uploader is not None and self.models is not None
        client = self.uploader.client()
        while not self._stop.is_set():
            try:
                await self._poll_model(client)
            except httpx.HTTPError as err:
                log.warning("model manifest pull: %s: %s", type(err).__name__, err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.cfg.poll_interval_s)

    async def _poll_model(self, client: httpx.AsyncClient) -> None:
        assert self.models is not None
        headers = {"If-None-Match": f'"{self.model_revision}"'} if self.model_revision else {}
        response = await client.get(f"/v1/stores/{self.config.store}/model", headers=headers)
        if response.status_code in (304, 404):
            return
        if response.status_code != 200:
            log.warning("model manifest pull: HTTP %d: %s", response.status_code, response.text[:200])
            return
        self.model_revision = version_of(response.headers.get("ETag"))
        manifest = response.json().get("manifest")
        update = await asyncio.to_thread(self.models.apply, manifest)
        if not update.changed:
            return
        self.m.model_updates.labels("rolled_back" if update.rolled_back else "applied").inc()
        if update.rolled_back:
            log.error("model %s refused, %s keeps serving: %s", update.version, update.previous_version or "the "
                      "current model", update.error)
        else:
            log.info("model %s in service (was %s)", update.version, update.previous_version or "the bundled one")
        self._announce("model", ConfigUpdate(update.version, update.previous_version or "", update.rolled_back,
                                             update.error))

    def _announce(self, kind: str, update: ConfigUpdate) -> None:
        msg = sync_pb2.WatchUpdatesResponse(kind=kind, version=update.version, previous_version=update.previous_version,
                                            rolled_back=update.rolled_back, error=update.error)
        for queue in self._updates:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(msg)

    async def _gauges(self) -> None:
        while not self._stop.is_set():
            self.m.outbox_events.set(self.outbox.events)
            self.m.outbox_bytes.set(self.outbox.bytes)
            oldest = await asyncio.to_thread(self.outbox.oldest_ts)
            self.m.lag.set(0.0 if oldest is None else max(0.0, time.time() - oldest))
            if self.uploader is not None:
                stats = self.uploader.stats
                self._mirrored.total(self.m.uploaded, (), stats.events_acked)
                self._mirrored.total(self.m.rejected, (), stats.events_rejected)
                for result, n in list(stats.responses.items()):
                    self._mirrored.total(self.m.batches, (result,), n)
                if stats.clock_skew_s is not None:
                    self.m.skew.set(stats.clock_skew_s)
            self.m.uplink.set(self._uplink())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)

    def _uplink(self) -> int:
        if self._full:
            return sync_pb2.UPLINK_STATE_OUTBOX_FULL
        if self.uploader is None:
            return sync_pb2.UPLINK_STATE_BACKOFF
        return _UPLINK.get(self.uploader.stats.state, sync_pb2.UPLINK_STATE_BACKOFF)

    # -- RPCs --------------------------------------------------------------------------------------

    async def GetSyncStatus(self, request: sync_pb2.GetSyncStatusRequest,
                            context: grpc.aio.ServicerContext) -> sync_pb2.GetSyncStatusResponse:
        """Outbox depth, last upload, drops, uplink state."""
        stats = self.uploader.stats if self.uploader else None
        return sync_pb2.GetSyncStatusResponse(
            uplink=self._uplink(), outbox_events=self.outbox.events, outbox_bytes=self.outbox.bytes,
            last_upload_unix_s=stats.last_upload_unix_s if stats else 0.0,
            events_dropped=await asyncio.to_thread(self.outbox.dropped_total),
        )

    async def Flush(self, request: sync_pb2.FlushRequest, context: grpc.aio.ServicerContext) -> sync_pb2.FlushResponse:
        """Upload what the outbox holds now, until empty or the call's deadline."""
        if self.uploader is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                "no uplink: set services.sync.cloud_url (RVA_SYNC_CLOUD_URL)")
        assert self.uploader is not None
        remaining = context.time_remaining()
        deadline = max(0.1, (remaining - 0.2) if remaining is not None else 30.0)
        uploaded = await self.uploader.flush(deadline)
        return sync_pb2.FlushResponse(events_uploaded=uploaded, outbox_events=self.outbox.events)

    async def GetVersions(self, request: sync_pb2.GetVersionsRequest,
                          context: grpc.aio.ServicerContext) -> sync_pb2.GetVersionsResponse:
        """Config and model versions in force."""
        active = await asyncio.to_thread(self.models.active) if self.models is not None else None
        return sync_pb2.GetVersionsResponse(config_version=self.puller.version if self.puller else "",
                                            model_version=active.version if active else "")

    async def WatchUpdates(self, request: sync_pb2.WatchUpdatesRequest,
                           context: grpc.aio.ServicerContext) -> AsyncIterator[sync_pb2.WatchUpdatesResponse]:
        """Config and model updates as they are applied or refused."""
        queue: asyncio.Queue[sync_pb2.WatchUpdatesResponse] = asyncio.Queue(64)
        self._updates.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._updates.remove(queue)

