"""Prometheus metrics of a stores process (``python -m rva.stores run --metrics-port``).

Per writer (``postgres``, ``clickhouse``, ``redis``, ``fanout``): ``rva_store_events_written_total``,
``rva_store_batches_total``, ``rva_store_retries_total`` (store unavailable),
``rva_store_dead_letters_total{reason}`` and ``rva_store_pending`` (messages of the stream its durable
consumer has not taken yet: the lag an autoscaler or an alert watches). The counters mirror each
consumer's :class:`~rva.stores.consumer.ConsumerStats`, read every ``every_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from rva.counters import CounterMirror

log = logging.getLogger(__name__)


class StoreMetrics:
    """Mirrors consumers' stats into Prometheus metrics served on their own port."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.written = Counter("rva_store_events_written", "Events in committed batches.", ["writer"], registry=r)
        self.batches = Counter("rva_store_batches", "Committed batches.", ["writer"], registry=r)
        self.retries = Counter("rva_store_retries", "Batch attempts that met the store unavailable.", ["writer"],
                               registry=r)
        self.dead_letters = Counter("rva_store_dead_letters", "Messages sent to the dead-letter subject.",
                                    ["writer", "reason"], registry=r)
        self.pending = Gauge("rva_store_pending", "Stream messages the writer's durable consumer has not taken.",
                             ["writer"], registry=r)
        self._mirror = CounterMirror()
        self._server: Any = None

    def serve(self, host: str, port: int) -> int:
        """Expose ``/metrics``; return the port (0 picks a free one)."""
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    async def update(self, consumers: Sequence[Any]) -> None:
        """Copy every consumer's counters, and read its pending count from JetStream."""
        for c in consumers:
            writer = c.writer.name
            self._mirror.total(self.written, (writer,), c.stats.written)
            self._mirror.total(self.batches, (writer,), c.stats.batches)
            self._mirror.total(self.retries, (writer,), c.stats.retries)
            for reason, n in c.stats.dead_letters.items():
                self._mirror.total(self.dead_letters, (writer, str(reason)), n)
            with contextlib.suppress(Exception):  # NATS away: keep the last value
                info = await c.js.consumer_info(c.stream, c.durable)
                self.pending.labels(writer).set(info.num_pending)

    async def run(self, consumers: Sequence[Any], stop: asyncio.Event, every_s: float = 5.0) -> None:
        """Update until ``stop``."""
        while not stop.is_set():
            await self.update(consumers)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
        await self.update(consumers)

    def close(self) -> None:
        """Stop the endpoint."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
