"""The alerts service: ``alert`` events from JetStream delivered to the configured sinks.

Each camera's alerts (``rva.<store>.<camera>.alert`` on ``RVA_EVENTS``) are read through the durable
consumer ``alerts-<store>-<camera>``, handed to :class:`~rva.alerts.notify.Notifier` (retries per sink,
sinks in parallel), and acknowledged only once every sink either took the alert or was given up on.
A given-up delivery is published back as an ``alert_undelivered`` event (``Nats-Msg-Id`` = its
deterministic id), so it reaches the stores and the cloud through the normal event flow and the
gateway lists it (``GET /v1/stores/{store}/alerts/dead-letters``). A crash mid-delivery redelivers
the alert: receivers see the same ``Idempotency-Key`` and can ignore the repeat.

A new durable consumer starts at new alerts: alerts raised before the service first ran are not sent
late. Metrics: ``rva_alerts_delivered_total{sink}``, ``rva_alerts_dead_lettered_total{sink}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from rva.alerts.notify import Notifier
from rva.alerts.sinks import build_sinks
from rva.bus.jetstream import EVENTS_STREAM, ensure_stream, subject_for
from rva.config import CameraConfig, RVAConfig
from rva.core.events import Event, EventType
from rva.events.v1 import events_pb2
from services.common.metrics import ServiceMetrics
from services.common.work import ConsumingService, WorkConsumer, connect, publish

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _in_progress(msg: Any, ack_wait_s: float) -> AsyncIterator[None]:
    """Tell JetStream the message is being worked on while retries run past its ack wait."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(ack_wait_s / 2)
            with contextlib.suppress(Exception):  # a lost beat only risks a redelivery (same Idempotency-Key)
                await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class AlertsService(ConsumingService):
    """Alert events -> sinks; undeliverable ones -> ``alert_undelivered`` events.

    Args:
        config: The validated config (``alerts`` sinks and retry, ``services.alerts``, ``services.nats``).
        cameras: Cameras whose alerts this replica delivers.
        metrics: Metrics (a new registry by default).

    """

    name = "alerts"
    grpc_names = ()

    def __init__(self, config: RVAConfig, cameras: list[CameraConfig], metrics: ServiceMetrics | None = None) -> None:
        super().__init__(config, cameras, metrics)
        self.cfg = config.services.alerts
        self.notifier = Notifier(build_sinks(config.alerts.sinks), config.store, config.alerts.retry)
        self.js: Any = None

    def register(self, server: grpc.aio.Server) -> None:
        """No RPCs of its own: gRPC health and reflection only."""

    async def start(self) -> None:
        """Connect, make sure the events stream exists, start consuming each camera's alerts."""
        nats_cfg = self.config.services.nats
        self.nc, self.js = await connect(nats_cfg, "rva-alerts")
        await ensure_stream(self.js, max_age_s=nats_cfg.events_max_age_s,
                            duplicate_window_s=nats_cfg.duplicate_window_s)
        store = self.config.store
        for camera in self.cameras:
            consumer = WorkConsumer(self.js, subject_for(store, camera.id, EventType.ALERT.value),
                                    f"alerts-{store}-{camera.id}", self.cfg, stream=EVENTS_STREAM, deliver_new=True)
            await consumer.open()
            self.consume(camera.id, consumer, self._handle)

    async def _handle(self, msg: Any) -> None:
        alert = Event.from_proto(events_pb2.Event.FromString(msg.data))
        if alert.type is not EventType.ALERT:
            raise ValueError(f"expected an alert event on {msg.subject}, got {alert.type}")
        started = time.perf_counter()
        async with _in_progress(msg, self.cfg.ack_wait_s):
            for result in await self.notifier.notify(alert):
                if result.dead_letter is None:
                    self.metrics.alerts_delivered.labels(result.sink).inc()
                    continue
                await self._publish(result.dead_letter)
                self.metrics.alerts_dead_lettered.labels(result.sink).inc()
        self.metrics.frame(alert.camera)
        self.metrics.observe("deliver", time.perf_counter() - started)

    async def _publish(self, event: Event) -> None:
        """Publish a dead letter, retrying until JetStream stores it (same id: de-duplicated)."""
        msg = event.to_proto(self.config.store)
        await publish(self.js, subject_for(self.config.store, event.camera, str(event.type)),
                      msg.SerializeToString(), {"Nats-Msg-Id": msg.event_id},
                      timeout_s=self.config.services.nats.publish_timeout_s,
                      on_error=lambda err: self.metrics.error("publish"))
        self.metrics.events.labels(event.camera, str(event.type)).inc()

    async def close(self) -> None:
        """Stop consuming, close NATS and the sinks' connections."""
        await super().close()
        await self.notifier.close()
