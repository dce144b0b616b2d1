"""Live WebSocket feeds: a store's events (NATS ``rva.<store>.*.*``) and live metrics (Redis), fanned out.

One NATS subscription and one metrics poller per store with listeners, however many clients. Each
message is serialized once and offered to every client's queue without waiting. A client that
falls ``ws_queue_messages`` behind and takes nothing for ``ws_send_timeout_s`` (or falls
``ws_queue_max_messages`` behind at all, or whose socket blocks one send that long) is closed with
code 4008 and the reason; nobody else notices. Messages (JSON text):

- ``{"type": "hello", "store", "tenant", "filters"}`` once;
- ``{"type": "event", "store", "event_id", "event": {...}}`` per event;
- ``{"type": "metrics", "store", "ts", "occupancy", "queues", "lines", "recent"}`` when they change;
- ``{"type": "alert", "alert": {...}}`` when a rule fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.alerts import AlertEvaluator, AlertFeed
from gateway.auth import Principal
from gateway.metrics import MetricsService
from gateway.models import Alert
from gateway.registry import Registry
from gateway.settings import GatewaySettings
from rva.config import AlertRuleConfig
from rva.core.events import EventType
from rva.stores.errors import BadEvent, StoreError
from rva.stores.records import StoredEvent, decode

log = logging.getLogger(__name__)

CLOSE_SLOW = 4008


@dataclass(eq=False)
class LiveClient:
    """One connected WebSocket and what it asked for."""

    ws: WebSocket
    principal: Principal
    store: str
    types: frozenset[str] | None
    cameras: frozenset[str] | None
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    closed_reason: str | None = None
    sent: int = 0
    progress_at: float = 0.0
    dropped: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, event: dict[str, Any]) -> bool:
        """Whether an event passes the client's filters."""
        return (self.types is None or event.get("type") in self.types) and (
            self.cameras is None or event.get("camera") in self.cameras)


@dataclass
class HubStats:
    """Counters of the live hub (they only grow, except ``clients``)."""

    clients: int = 0
    connected: int = 0
    dropped_slow: int = 0
    delivered: int = 0
    events: int = 0
    bad_events: int = 0
    foreign_events: int = 0
    alerts: int = 0
    metrics_errors: int = 0


@dataclass(eq=False)
class _StoreFeed:
    store: str
    tenant: str
    clients: set[LiveClient] = field(default_factory=set)
    sub: Any = None
    poller: asyncio.Task[None] | None = None
    last_metrics: str = ""
    last_sent: str = ""
    evaluator: AlertEvaluator | None = None
    rules_at: float = 0.0


class LiveHub:
    """Per-store live feeds shared by every WebSocket client of that store.

    Args:
        settings: Queue size, send timeout, refresh interval, client cap.
        metrics: Live metrics (Redis view, line counts, wait estimates).
        registry: Store -> tenant, alert rules.
        nc: Connected NATS client (None: events only from :meth:`publish_local`).
        alerts: Where fired alerts are kept (None: only pushed).

    """

    def __init__(self, settings: GatewaySettings, metrics: MetricsService, registry: Registry, nc: Any | None,
                 alerts: AlertFeed | None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.registry = registry
        self.nc = nc
        self.alert_feed = alerts
        self.stats = HubStats()
        self._feeds: dict[str, _StoreFeed] = {}
        self._lock = asyncio.Lock()

    # -- clients ----------------------------------------------------------------------------------

    def full(self) -> bool:
        """Whether the client cap is reached."""
        return self.stats.clients >= self.settings.ws_max_clients

    async def serve(self, client: LiveClient) -> None:
        """Run one accepted client until it leaves or is dropped."""
        feed = await self._attach(client)
        self.stats.connected += 1
        client.progress_at = asyncio.get_running_loop().time()
        sender = asyncio.create_task(self._sender(client))
        receiver = asyncio.create_task(self._receiver(client))
        dropped = asyncio.create_task(client.dropped.wait())
        try:
            hello = {"type": "hello", "store": client.store, "tenant": feed.tenant, "filters": {
                "types": sorted(client.types) if client.types else None,
                "cameras": sorted(client.cameras) if client.cameras else None}}
            self._offer(client, json.dumps(hello))
            if feed.last_sent:
                self._offer(client, feed.last_sent)
            await asyncio.wait({receiver, dropped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if client.closed_reason is None:
                client.closed_reason = "client left"
            for task in (sender, receiver, dropped):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(sender, receiver, dropped, return_exceptions=True)
            await self._detach(client)

    async def _receiver(self, client: LiveClient) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                msg = await client.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                if msg.get("text") == "ping":
                    self._offer(client, '{"type":"pong"}')

    def _offer(self, client: LiveClient, text: str) -> None:
        """Queue a message for a client without ever waiting; drop the client if it is not keeping up.

        Behind by ``ws_queue_messages`` is tolerated while the client makes progress (a burst); behind
        that far with no message taken for ``ws_send_timeout_s``, or by ``ws_queue_max_messages`` at all,
        and it is dropped.
        """
        if client.closed_reason is not None:
            return
        queued = client.queue.qsize()
        s = self.settings
        if queued >= s.ws_queue_max_messages:
            self._drop(client, f"slow consumer: {queued} messages queued")
        elif queued >= s.ws_queue_messages and (
                asyncio.get_running_loop().time() - client.progress_at > s.ws_send_timeout_s):
            self._drop(client, f"slow consumer: {queued} messages queued, none taken for {s.ws_send_timeout_s:g} s")
        else:
            client.queue.put_nowait(text)

    def _drop(self, client: LiveClient, reason: str) -> None:
        if client.closed_reason is not None:
            return
        client.closed_reason = reason
        self.stats.dropped_slow += 1
        log.info("live: dropping a client of %s: %s", client.store, reason)
        asyncio.get_running_loop().create_task(self._close(client, CLOSE_SLOW, reason))

    async def _close(self, client: LiveClient, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.ws.close(code=code, reason=reason[:120]), 2.0)
        client.dropped.set()

    async def _sender(self, client: LiveClient) -> None:
        timeout = self.settings.ws_send_timeout_s
        loop = asyncio.get_running_loop()
        while True:
            text = await client.queue.get()
            if client.closed_reason is not None:
                return
            try:
                await asyncio.wait_for(client.ws.send_text(text), timeout)
            except TimeoutError:
                self._drop(client, f"slow consumer: a send took over {timeout:g} s")
                return
            except Exception:  # the socket went away; the receiver notices the disconnect
                return
            client.progress_at = loop.time()
            client.sent += 1
            self.stats.delivered += 1

    async def _attach(self, client: LiveClient) -> _StoreFeed:
        async with self._lock:
            feed = self._feeds.get(client.store)
            if feed is None:
                feed = _StoreFeed(client.store, client.principal.tenant)
                if self.nc is not None:
                    feed.sub = await self.nc.subscribe(
                        f"rva.{client.store}.*.*", cb=self._on_message(feed),
                        pending_msgs_limit=100_000, pending_bytes_limit=256 << 20)
                feed.poller = asyncio.create_task(self._poll(feed))
                self._feeds[client.store] = feed
            feed.clients.add(client)
            self.stats.clients += 1
            return feed

    async def _detach(self, client: LiveClient) -> None:
        async with self._lock:
            feed = self._feeds.get(client.store)
            if feed is None or client not in feed.clients:
                return
            feed.clients.discard(client)
            self.stats.clients -= 1
            if not feed.clients:
                del self._feeds[client.store]
                await self._stop_feed(feed)

    async def _stop_feed(self, feed: _StoreFeed) -> None:
        if feed.sub is not None:
            with contextlib.suppress(Exception):
                await feed.sub.unsubscribe()
        if feed.poller is not None:
            feed.poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feed.poller

    # -- events -----------------------------------------------------------------------------------

    def _on_message(self, feed: _StoreFeed) -> Callable[[Any], Any]:
        async def handle(msg: Any) -> None:
            headers = msg.headers or {}
            if headers.get("Rva-Tenant", feed.tenant) != feed.tenant:
                self.stats.foreign_events += 1  # another tenant's store of the same id never reaches us
                return
            try:
                record = decode(feed.tenant, msg.subject, msg.data, headers)
            except BadEvent:
                self.stats.bad_events += 1
                return
            self._fan_out(feed, record)
            # nats.py hands a burst of pending messages over without yielding; yield after each one so the
            # senders drain the client queues as the burst comes in, instead of after it (a burst bigger
            # than a queue would otherwise drop fast clients too).
            await asyncio.sleep(0)
        return handle

    def publish_local(self, records: list[StoredEvent]) -> None:
        """Fan out events that did not go through NATS (ingest without a JetStream sink)."""
        for r in records:
            feed = self._feeds.get(r.store)
            if feed is not None and feed.tenant == r.tenant:
                self._fan_out(feed, r)

    def _fan_out(self, feed: _StoreFeed, record: StoredEvent) -> None:
        self.stats.events += 1
        event = record.event.to_dict()
        text = json.dumps({"type": "event", "store": record.store, "event_id": record.event_id.hex, "event": event},
                          separators=(",", ":"))
        for client in list(feed.clients):
            if client.wants(event):
                self._offer(client, text)
        if record.event.type is EventType.ALERT:
            self._alerts(feed, [_edge_alert(record)])
        if feed.evaluator is not None:
            self._alerts(feed, feed.evaluator.on_event(event, time.time()))

    # -- metrics and alerts -----------------------------------------------------------------------

    def _alerts(self, feed: _StoreFeed, alerts: list[Any]) -> None:
        if not alerts:
            return
        self.stats.alerts += len(alerts)
        for alert in alerts:
            text = json.dumps({"type": "alert", "alert": alert.model_dump(mode="json")})
            for client in list(feed.clients):
                self._offer(client, text)
        if self.alert_feed is not None:
            asyncio.get_running_loop().run_in_executor(None, self.alert_feed.push, feed.tenant, feed.store, alerts)

    def _rules(self, feed: _StoreFeed) -> AlertEvaluator:
        """The store's rules for this process's own evaluation (``alerts_source: gateway``)."""
        _, doc, _, _ = self.registry.config(feed.tenant, feed.store)
        rules = [AlertRuleConfig.model_validate(r) for r in doc.get("alert_rules", [])]
        caps = {(c["id"], z["name"]): z["capacity"] for c in doc.get("cameras", []) for z in c.get("zones", [])
                if z.get("capacity")}
        # keep holds and cooldowns across a rules refresh
        return AlertEvaluator(feed.store, rules, caps, state=feed.evaluator.state if feed.evaluator else None)

    async def _poll(self, feed: _StoreFeed) -> None:
        reader = Principal("user", "live-hub", feed.tenant, "viewer", frozenset({feed.store}))
        while True:
            try:
                now = time.time()
                if self.settings.alerts_source == "gateway" and now - feed.rules_at > 10.0:
                    feed.evaluator = await asyncio.to_thread(self._rules, feed)
                    feed.rules_at = now
                live = await asyncio.to_thread(self.metrics.live, reader, feed.store)
                body = {k: v for k, v in live.items() if k != "ts"}
                text = json.dumps({"type": "metrics", **body}, separators=(",", ":"), default=str)
                if text != feed.last_metrics:
                    feed.last_metrics = text
                    feed.last_sent = json.dumps({"type": "metrics", **live}, separators=(",", ":"), default=str)
                    for client in list(feed.clients):
                        self._offer(client, feed.last_sent)
                if feed.evaluator is not None:
                    self._alerts(feed, feed.evaluator.on_live(live, now))
            except asyncio.CancelledError:
                raise
            except (StoreError, OSError, ValueError) as err:
                self.stats.metrics_errors += 1
                log.warning("live metrics of %s failed: %s", feed.store, err)
            except Exception:
                self.stats.metrics_errors += 1
                log.exception("live metrics of %s failed", feed.store)
            await asyncio.sleep(self.settings.ws_live_interval_s)

    async def close(self) -> None:
        """Close every client (1001, going away) and stop every feed."""
        async with self._lock:
            feeds = list(self._feeds.values())
            self._feeds.clear()
        for feed in feeds:
            for client in list(feed.clients):
                client.closed_reason = "server shutting down"
                await self._close(client, 1001, "server shutting down")
            await self._stop_feed(feed)


def _edge_alert(record: StoredEvent) -> Alert:
    """An ``alert`` event an edge raised, as the feed's :class:`~gateway.models.Alert`."""
    e, a = record.event, record.event.attrs
    target = e.zone or e.queue or (str(e.track_id) if e.track_id is not None else None)
    return Alert(rule=str(a.get("rule", "")), kind=str(a.get("kind", "")), severity=str(a.get("severity", "warning")),
                 store=record.store, camera=e.camera, target=target, value=a.get("value"),
                 threshold=a.get("threshold"), ts=e.ts, message=str(a.get("message", "")))
