"""Durable JetStream consumers that feed one store writer each: batch (<= max_wait_s), commit, then ack.

A batch's messages are acknowledged (explicitly, one by one) only after it is committed and its bad
messages are on the dead-letter subject, so a writer killed at any point loses nothing: what was not
acked is redelivered, and the stores' idempotent writes absorb what had been committed already. Bad
messages go to ``rva.dlq.<reason>`` with the reason and error in headers; the consumer keeps going.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from rva.sources.timing import Backoff
from rva.stores import faults
from rva.stores.errors import BadEvent, DeadLetterReason, StoreRejected, StoreUnavailable
from rva.stores.publish import DEFAULT_STREAM
from rva.stores.records import DLQ_PREFIX, EVENT_SUBJECTS, StoredEvent, decode

log = logging.getLogger(__name__)


class EventWriter(Protocol):
    """What a consumer drives: a named store writer whose ``write`` is idempotent."""

    name: str

    def write(self, batch: Sequence[StoredEvent]) -> int:
        """Store a batch (committed when it returns)."""

    def close(self) -> None:
        """Release connections."""


@dataclass(slots=True)
class ConsumerStats:
    """Counters a consumer exports (read them any time; they only grow).

    Attributes:
        received: Messages fetched, redeliveries included.
        written: Events in committed batches.
        batches: Committed batches.
        dead_letters: Messages sent to the dead-letter subject, by reason.
        dead_letters_unstored: Dead letters no stream captured (published on core NATS only).
        retries: Batch attempts that failed with the store unavailable.
        max_batch_wait_s: Longest time from a batch's first message to its commit.

    """

    received: int = 0
    written: int = 0
    batches: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    dead_letters_unstored: int = 0
    retries: int = 0
    max_batch_wait_s: float = 0.0


class EventConsumer:
    """One durable pull consumer on the events stream, writing into one store.

    Args:
        nc: A connected NATS client.
        writer: The store writer.
        tenant: Tenant every event of this consumer belongs to.
        stream: Stream name.
        durable: Durable consumer name (default ``rva-stores-<writer>``).
        batch_size: Most messages per batch.
        max_wait_s: A batch is closed at most this long after its first message arrived (<= 1 s).
        ack_wait_s: JetStream redelivers a message not acked this long after delivery.
        start_seq: Create the consumer to start at this stream sequence (a replay) instead of the start.

    """

    def __init__(
        self,
        nc: Client,
        writer: EventWriter,
        *,
        tenant: str,
        stream: str = DEFAULT_STREAM,
        durable: str | None = None,
        batch_size: int = 5000,
        max_wait_s: float = 1.0,
        ack_wait_s: float = 60.0,
        start_seq: int | None = None,
    ) -> None:
        if not 0 < max_wait_s <= 1.0:
            raise ValueError(f"max_wait_s: expected (0, 1] seconds, got {max_wait_s}")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        self.nc, self.writer, self.tenant, self.stream = nc, writer, tenant, stream
        self.durable = durable or f"rva-stores-{writer.name}"
        self.batch_size, self.max_wait_s, self.ack_wait_s = batch_size, max_wait_s, ack_wait_s
        self.start_seq = start_seq
        self.js = nc.jetstream(timeout=10.0)
        self.stats = ConsumerStats()
        self._backoff = Backoff(0.2, 5.0)

    async def _subscribe(self) -> Any:
        try:
            await self.js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            config = ConsumerConfig(
                durable_name=self.durable,
                # Not AckPolicy.ALL: a cumulative ack would also ack messages a killed predecessor
                # left unacked and not yet redelivered, losing them (the kill test catches exactly that).
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE if self.start_seq else DeliverPolicy.ALL,
                opt_start_seq=self.start_seq,
                filter_subjects=list(EVENT_SUBJECTS),
                ack_wait=self.ack_wait_s,
                max_ack_pending=max(4 * self.batch_size, 1000),
            )
            await self.js.add_consumer(self.stream, config)
        return await self.js.pull_subscribe_bind(self.durable, self.stream, pending_msgs_limit=4 * self.batch_size)

    async def run(self, stop: asyncio.Event | None = None, *, until_caught_up: bool = False) -> ConsumerStats:
        """Consume until ``stop`` is set (or, with ``until_caught_up``, until nothing is pending).

        Returns:
            The counters.

        """
        stop = stop or asyncio.Event()
        sub = await self._subscribe()
        try:
            while not stop.is_set():
                msgs, first_at = await self._collect(sub, stop)
                if msgs:
                    await self._process(msgs, first_at, stop)
                elif until_caught_up and await self._caught_up():
                    break
        finally:
            await sub.unsubscribe()
        return self.stats

    async def _caught_up(self) -> bool:
        info = await self.js.consumer_info(self.stream, self.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0

    async def _collect(self, sub: Any, stop: asyncio.Event) -> tuple[list[Msg], float]:
        """Fetch until the batch is full or ``max_wait_s`` has passed since its first message."""
        batch: list[Msg] = []
        first_at = 0.0
        while len(batch) < self.batch_size and not stop.is_set():
            timeout = 0.5 if not batch else first_at + self.max_wait_s - time.monotonic()
            if timeout <= 0.005:
                break
            try:
                msgs = await sub.fetch(self.batch_size - len(batch), timeout=timeout)
            except (TimeoutError, nats.errors.TimeoutError):
                if batch:
                    break
                return batch, first_at
            if not batch:
                first_at = time.monotonic()
            batch += msgs
        return batch, first_at

    async def _process(self, msgs: list[Msg], first_at: float, stop: asyncio.Event) -> None:
        self.stats.received += len(msgs)
        faults.next_batch(self.writer.name)
        records: dict[Any, tuple[StoredEvent, Msg]] = {}
        for msg in msgs:
            try:
                record = decode(self.tenant, msg.subject, msg.data, msg.headers)
            except BadEvent as err:
                await self._dead_letter(msg, err.reason, err.detail)
                continue
            records.setdefault(record.event_id, (record, msg))  # a duplicate inside one batch is written once
        pending = list(records.values())
        while pending:
            try:
                rejected = await asyncio.to_thread(self._write_isolating, [r for r, _ in pending])
            except StoreUnavailable as err:
                self.stats.retries += 1
                delay = self._backoff.next()
                log.warning("%s: store unavailable (%s); retrying the batch in %.1f s", self.writer.name, err, delay)
                for msg in msgs:
                    await msg.in_progress()  # keep the batch ours while the store is down
                if stop.is_set():
                    return  # unacked: redelivered to whoever consumes next
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            for i, detail in rejected:
                await self._dead_letter(pending[i][1], DeadLetterReason.REJECTED, detail)
            self.stats.written += len(pending) - len(rejected)
            break
        faults.crash_point(self.writer.name, "committed")
        for msg in msgs:
            await msg.ack()
        self.stats.batches += 1
        self.stats.max_batch_wait_s = max(self.stats.max_batch_wait_s, time.monotonic() - first_at)

    def _write_isolating(self, batch: list[StoredEvent]) -> list[tuple[int, str]]:
        """Write; on a rejection split the batch to find the events the store refuses.

        Returns:
            ``(index, error)`` of each refused event.

        Raises:
            StoreUnavailable: The store failed, or refused every single event (then it is the store,
                not the data, and the batch must wait rather than be dead-lettered).

        """
        rejected: list[tuple[int, str]] = []

        def attempt(lo: int, hi: int) -> None:
            try:
                self.writer.write(batch[lo:hi])
            except StoreRejected as err:
                if hi - lo == 1:
                    rejected.append((lo, str(err)))
                    return
                mid = (lo + hi) // 2
                attempt(lo, mid)
                attempt(mid, hi)

        attempt(0, len(batch))
        if rejected and len(rejected) == len(batch) and len(batch) > 1:
            raise StoreUnavailable(f"{self.writer.name} refused all {len(batch)} events: {rejected[0][1]}")
        return rejected

    async def _dead_letter(self, msg: Msg, reason: DeadLetterReason, detail: str) -> None:
        seq = msg.metadata.sequence.stream if msg.reply else 0
        headers = {
            "Rva-Dlq-Reason": str(reason),
            "Rva-Dlq-Error": detail[:2000],
            "Rva-Original-Subject": msg.subject,
            "Rva-Stream-Seq": str(seq),
            "Nats-Msg-Id": f"dlq:{self.stream}:{seq}",  # one dead letter per message, whichever writer saw it
        }
        if msg.headers and "Content-Type" in msg.headers:
            headers["Content-Type"] = msg.headers["Content-Type"]
        subject = f"{DLQ_PREFIX}.{reason}"
        try:
            await self.js.publish(subject, msg.data, headers=headers)
        except nats.errors.NoRespondersError:
            self.stats.dead_letters_unstored += 1
            await self.nc.publish(subject, msg.data, headers=headers)
        self.stats.dead_letters[str(reason)] += 1
        log.warning("%s: dead letter %s seq=%s %s: %s", self.writer.name, reason, seq, msg.subject, detail)
