"""The JetStream work stream between inference, tracking and analytics.

Subjects ``rva_work.<store>.<camera>.detections`` (inference -> tracking) and
``rva_work.<store>.<camera>.tracks`` (tracking -> analytics) in the stream ``RVA_WORK``
(work-queue retention: a message is deleted once its consumer acknowledged it). They live outside
``rva.>`` on purpose: that prefix is the events stream's, which consumers read as events only.

Each consuming service reads each camera through its own durable pull consumer
(``tracking-<store>-<camera>``, ``analytics-<store>-<camera>``) and acknowledges a message only after its output
is acknowledged downstream. A killed consumer therefore resumes exactly where its last ack left
off: nothing is lost, and what is redelivered is recognised by its ``Nats-Msg-Id`` (JetStream
drops the duplicate output) or by its frame index (the consumer skips it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import nats
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from rva.bus.jetstream import subject_for
from rva.config import CameraConfig, RVAConfig
from rva.service_config import ConsumerServiceConfig, NatsConfig
from services.common.metrics import ServiceMetrics
from services.common.runtime import Service

log = logging.getLogger(__name__)

WORK_STREAM = "RVA_WORK"
WORK_SUBJECTS = "rva_work.>"


def work_subject(store: str, camera: str, kind: str) -> str:
    """``rva_work.<store>.<camera>.<kind>`` (``kind``: ``detections`` or ``tracks``)."""
    return "rva_work" + subject_for(store, camera, kind).removeprefix("rva")


async def connect(cfg: NatsConfig, name: str, *, deadline_s: float = 30.0) -> tuple[Any, Any]:
    """Connect to NATS (retrying the first connection until ``deadline_s``) and return ``(nc, js)``.

    Once connected the client reconnects forever with a short wait; JetStream API calls get
    ``publish_timeout_s`` as their deadline.

    Raises:
        ConnectionError: No connection within ``deadline_s``.

    """
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    delay = 0.1
    while True:
        try:
            # nats-py retries a first connection forever when reconnects are on: bound each attempt.
            nc = await asyncio.wait_for(nats.connect(
                cfg.url,
                name=name,
                connect_timeout=cfg.connect_timeout_s,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                ping_interval=10,
                max_outstanding_pings=3,
                error_cb=_log_error,
                disconnected_cb=_log_disconnect,
                reconnected_cb=_log_reconnect,
            ), max(0.5, end - loop.time()))
            return nc, nc.jetstream(timeout=cfg.publish_timeout_s)
        except Exception as err:  # nats raises NoServersError, TimeoutError, OSError...
            if loop.time() + delay > end:
                raise ConnectionError(f"cannot connect to NATS at {cfg.url} within {deadline_s} s: {err!r}") from err
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _log_error(err: Exception) -> None:
    log.warning("NATS error: %r", err)


async def _log_disconnect() -> None:
    log.info("NATS disconnected; reconnecting")


async def _log_reconnect() -> None:
    log.info("NATS reconnected")


async def ensure_work_stream(js: Any, cfg: NatsConfig) -> Any:
    """Create ``RVA_WORK`` if missing (bounded by age and bytes; oldest work discarded past them)."""
    try:
        return await js.stream_info(WORK_STREAM)
    except NotFoundError:
        pass
    config = StreamConfig(
        name=WORK_STREAM,
        subjects=[WORK_SUBJECTS],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=cfg.work_max_age_s,
        max_bytes=cfg.work_max_bytes,
        duplicate_window=cfg.duplicate_window_s,
        description="RVA work between services: rva_work.<store>.<camera>.detections|tracks",
    )
    try:
        return await js.add_stream(config)
    except Exception:  # another service created it meanwhile
        return await js.stream_info(WORK_STREAM)


class WorkConsumer:
    """One camera's durable pull consumer of a subject, as an async iterator of messages.

    Args:
        js: JetStream context.
        subject: The subject (one camera's work, or one camera's events of a kind).
        durable: Durable consumer name (survives restarts: the stream resumes from its ack floor).
        cfg: Ack wait, max pending, fetch batch.
        stream: The stream holding ``subject`` (``RVA_WORK`` for work between stages).
        deliver_new: A consumer created now starts at new messages instead of the stream's first.

    """

    def __init__(self, js: Any, subject: str, durable: str, cfg: ConsumerServiceConfig, *,
                 stream: str = WORK_STREAM, deliver_new: bool = False) -> None:
        self.js = js
        self.subject = subject
        self.durable = durable
        self.cfg = cfg
        self.stream = stream
        self.deliver_new = deliver_new
        self._sub: Any = None

    async def open(self) -> None:
        """Create or bind the durable consumer."""
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW if self.deliver_new else DeliverPolicy.ALL,
            ack_wait=self.cfg.ack_wait_s,
            max_ack_pending=self.cfg.max_ack_pending,
            filter_subject=self.subject,
        )
        self._sub = await self.js.pull_subscribe(self.subject, durable=self.durable, stream=self.stream, config=config)

    async def messages(self, stop: asyncio.Event, poll_s: float = 1.0) -> AsyncIterator[Any]:
        """Yield messages in stream order until ``stop`` is set (checked between fetches)."""
        if self._sub is None:
            await self.open()
        while not stop.is_set():
            try:
                msgs = await self._sub.fetch(self.cfg.fetch_batch, timeout=poll_s)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.ConnectionClosedError:
                return
            except Exception as err:  # transient JetStream/API errors: back off, retry
                log.warning("fetch from %s failed: %r", self.durable, err)
                await asyncio.sleep(poll_s)
                continue
            for msg in msgs:
                yield msg

    async def close(self) -> None:
        """Stop fetching (the durable consumer stays on the server)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):  # already closed with the connection
                await self._sub.unsubscribe()
            self._sub = None


async def publish(
    js: Any,
    subject: str,
    payload: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float,
    retry_initial_s: float = 0.2,
    retry_max_s: float = 5.0,
    on_error: Any = None,
) -> Any:
    """Publish to JetStream and wait for the ack, retrying (same ``Nats-Msg-Id``) until it is stored.

    Retrying forever is the point: the caller's bounded queue backs up meanwhile, and upstream
    buffers (and counts what it drops). Cancel the task to give up.
    """
    delay = retry_initial_s
    while True:
        try:
            return await js.publish(subject, payload, headers=headers, timeout=timeout_s)
        except Exception as err:  # NATS down, slow, or reconnecting
            if on_error is not None:
                on_error(err)
            log.warning("publish to %s failed (%r); retrying in %.1f s", subject, err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_max_s)


class Taps:
    """Live fan-out of items to gRPC subscribers: a bounded queue each; a slow one loses items (counted)."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._subs: set[tuple[frozenset[str], asyncio.Queue[Any]]] = set()
        self.dropped = 0

    def subscribe(self, cameras: frozenset[str]) -> tuple[frozenset[str], asyncio.Queue[Any]]:
        """Register a subscriber for ``cameras`` (empty: all)."""
        sub: tuple[frozenset[str], asyncio.Queue[Any]] = (cameras, asyncio.Queue(self.capacity))
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: tuple[frozenset[str], asyncio.Queue[Any]]) -> None:
        """Forget a subscriber."""
        self._subs.discard(sub)

    def offer(self, camera: str, item: Any) -> int:
        """Give ``item`` to every subscriber of ``camera``; return how many were full (dropped)."""
        full = 0
        for cameras, queue in self._subs:
            if cameras and camera not in cameras:
                continue
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                full += 1
        self.dropped += full
        return full


class ConsumingService(Service):
    """A service fed by per-camera durable consumers (tracking, analytics): the loops, taps and drain.

    Subclasses call :meth:`consume` for each camera in ``start`` and implement the handler; a
    message is acknowledged once the handler returned (its output stored), handed back (``nak``)
    when the service is draining, and terminated (reported, counted) when the handler fails on it.
    """

    def __init__(self, config: RVAConfig, cameras: Sequence[CameraConfig], metrics: ServiceMetrics | None = None):
        super().__init__(config, cameras, metrics)
        self.taps = Taps()
        self.nc: Any = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._consumers: list[WorkConsumer] = []

    def consume(self, camera: str, consumer: WorkConsumer, handle: Callable[[Any], Awaitable[None]]) -> None:
        """Start reading ``consumer`` (one camera's) into ``handle``."""
        self._consumers.append(consumer)
        self._tasks.append(asyncio.create_task(self._consume(camera, consumer, handle)))

    async def _consume(self, camera: str, consumer: WorkConsumer, handle: Callable[[Any], Awaitable[None]]) -> None:
        async for msg in consumer.messages(self._stop):
            if self._stop.is_set():
                await msg.nak()  # hand it back now rather than after ack_wait
                continue
            try:
                await handle(msg)
            except Exception:  # a poison record must not stop the camera: report, count, drop it
                log.exception("%s: camera %s: bad record dropped", self.name, camera, extra={"camera": camera})
                self.metrics.drop(camera, "bad_record")
                await msg.term()
                continue
            await msg.ack()

    async def tap(self, cameras: Sequence[str]) -> AsyncIterator[Any]:
        """Items offered to :attr:`taps` for ``cameras`` (empty: all), until the caller stops iterating."""
        sub = self.taps.subscribe(frozenset(cameras))
        try:
            while True:
                yield await sub[1].get()
        finally:
            self.taps.unsubscribe(sub)

    async def drain(self, timeout: float) -> None:
        """Stop fetching; finish and acknowledge the record in hand, hand fetched ones back."""
        self._stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), timeout)

    async def close(self) -> None:
        """Cancel the loops and close NATS (the durable consumers stay on the server)."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for consumer in self._consumers:
            await consumer.close()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 5)
