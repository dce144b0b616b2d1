"""Uploads the outbox to the cloud's ingest endpoint: one batch at a time, retried until acknowledged.

The wire contract is the gateway's (``gateway/ingest.py``): ``POST <cloud>/v1/ingest/events``, body a
gzip ``rva.sync.v1.EventBatch``, ``Idempotency-Key`` = the batch id, the store's device API key.

What each answer does:

========================  ====================================================================
200                       the batch is committed in the cloud: delete it from the outbox
422 (``events.<i>``)      those events move to the outbox's ``rejected`` table; the rest re-cut
413                       batch too large: re-cut at half the size (down to one event)
400, 409, 415             a bug on one side: the whole batch moves to ``rejected`` (reported)
401, 403                  the key is wrong or revoked: keep everything, retry at the slow ceiling
429, 5xx, network error   keep the batch, retry the same id after backoff (``Retry-After`` honoured)
========================  ====================================================================

Backoff is exponential with full jitter on the monotonic clock. The cloud's ``Date`` header gives the
clock skew, reported (never used to rewrite events: ids, order and retries do not depend on clocks).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from rva.stores import faults
from rva.sync.outbox import Batch, Outbox
from rva.sync.tls import client_context

log = logging.getLogger(__name__)

INGEST_PATH = "/v1/ingest/events"
#: Skew (s) past which the uploader warns that event times are off (uploads never depend on it).
SKEW_WARN_S = 30.0


@dataclass
class UplinkStats:
    """What the uploader has seen (the sync service's status and metrics read it)."""

    state: str = "online"  # online | backoff | auth_failed
    batches_acked: int = 0
    events_acked: int = 0
    events_rejected: int = 0
    failures: int = 0
    last_error: str = ""
    last_upload_unix_s: float = 0.0
    clock_skew_s: float | None = None
    responses: dict[str, int] = field(default_factory=dict)  # HTTP status, or "error" (no answer) -> sends


@dataclass(frozen=True)
class UploaderConfig:
    """How to reach the cloud and how hard to retry."""

    cloud_url: str
    api_key: str
    store: str
    batch_events: int = 100
    linger_s: float = 1.0
    timeout_s: float = 15.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 60.0
    ca_file: str | None = None


def encode_batch(store: str, batch: Batch) -> bytes:
    """The batch as a gzip ``rva.sync.v1.EventBatch`` (the events' stored protobuf bytes, untouched)."""
    from rva.events.v1 import events_pb2
    from rva.sync.v1 import sync_pb2

    msg = sync_pb2.EventBatch(
        batch_id=batch.batch_id, store=store, first_sequence=batch.first_seq, last_sequence=batch.last_seq
    )
    for ev in batch.events:
        msg.events.append(events_pb2.Event.FromString(ev.body))
    return gzip.compress(msg.SerializeToString(), compresslevel=6)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _bad_indices(body: Any) -> dict[int, str]:
    """``{index: message}`` from a 422 problem's ``fields`` (``events.<i>``)."""
    out: dict[int, str] = {}
    for item in (body or {}).get("fields", []) if isinstance(body, dict) else []:
        name = str(item.get("field", ""))
        if name.startswith("events."):
            try:
                out[int(name.split(".")[1])] = str(item.get("message", ""))
            except ValueError:
                continue
    return out


class Uploader:
    """Drains an :class:`Outbox` to the cloud, forever, until :meth:`stop`.

    Args:
        outbox: The outbox.
        cfg: Cloud URL, key, batch size and retry bounds.
        wake: Set by whoever adds events (uploads start without waiting for the linger).
        client: An ``httpx.AsyncClient`` (tests, proxies); made from ``cfg`` when omitted.
        wall_clock: The wall clock (seconds), for the skew estimate only.

    """

    def __init__(
        self,
        outbox: Outbox,
        cfg: UploaderConfig,
        wake: asyncio.Event | None = None,
        client: httpx.AsyncClient | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.cfg = cfg
        self.wake = wake or asyncio.Event()
        self.stats = UplinkStats()
        self.wall_clock = wall_clock
        self._client = client
        self._own_client = client is None
        self._stop = asyncio.Event()
        self._batch_events = cfg.batch_events
        self._oldest_unbatched: float | None = None
        self._backoff_attempt = 0

    def client(self) -> httpx.AsyncClient:
        """The HTTP client (made on first use, inside the running loop)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.cfg.cloud_url,
                timeout=httpx.Timeout(self.cfg.timeout_s, connect=min(self.cfg.timeout_s, 10.0)),
                verify=client_context(self.cfg.ca_file),
                headers={"Authorization": f"Bearer {self.cfg.api_key}", "User-Agent": "rva-sync/1"},
            )
        return self._client

    def stop(self) -> None:
        """Finish the request in flight, then return from :meth:`run`."""
        self._stop.set()
        self.wake.set()

    async def run(self) -> None:
        """Upload until stopped."""
        try:
            while not self._stop.is_set():
                batch = await asyncio.to_thread(self._next_batch)
                if batch is None:
                    await self._wait_for_events()
                    continue
                await self.send(batch)
        finally:
            if self._own_client and self._client is not None:
                await self._client.aclose()

    def _next_batch(self) -> Batch | None:
        pending = self.outbox.pending_batch()
        if pending is not None:
            return pending
        waiting = self.outbox.unbatched()
        if waiting == 0:
            self._oldest_unbatched = None
            return None
        now = time.monotonic()
        if self._oldest_unbatched is None:
            self._oldest_unbatched = now
        young = now - self._oldest_unbatched < self.cfg.linger_s
        if waiting < self._batch_events and young and not self._stop.is_set():
            return None
        self._oldest_unbatched = None
        return self.outbox.cut_batch(self._batch_events, self.cfg.store)

    async def _wait_for_events(self) -> None:
        self.wake.clear()
        timeout = self.cfg.linger_s if self._oldest_unbatched is not None else 1.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), max(timeout, 0.05))

    async def send(self, batch: Batch) -> bool:
        """Send one batch until it is acknowledged, re-cut or stopped; True when acknowledged."""
        body = await asyncio.to_thread(encode_batch, self.cfg.store, batch)
        headers = {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip",
            "Idempotency-Key": batch.batch_id,
        }
        while not self._stop.is_set():
            faults.next_batch("sync")
            try:
                response = await self.client().post(INGEST_PATH, content=body, headers=headers)
            except httpx.HTTPError as err:
                self._answered("error")
                await self._failed(batch, f"{type(err).__name__}: {err}", None)
                continue
            code = response.status_code
            self._answered(str(code))
            self._skew(response)
            if code == 200:
                faults.crash_point("sync", "committed")  # kill tests: the cloud has it, the outbox does not know
                await self._acked(batch, response)
                return True
            if code == 422:
                bad = _bad_indices(_json(response)) or dict.fromkeys(range(len(batch.events)), response.text[:500])
                moved = await asyncio.to_thread(self.outbox.reject, batch.batch_id, bad)
                self.stats.events_rejected += moved
                log.error("cloud refused %d invalid event(s) of batch %s (kept in the outbox's rejected table): %s",
                          moved, batch.batch_id, next(iter(bad.values()), ""))
                return False
            if code == 413 and len(batch.events) > 1:
                self._batch_events = max(1, len(batch.events) // 2)
                log.warning("batch %s too large (413): re-cutting at %d events", batch.batch_id, self._batch_events)
                await asyncio.to_thread(self.outbox.release, batch.batch_id)
                return False
            if code in (400, 409, 413, 415):
                error = f"HTTP {code}: {response.text[:500]}"
                self.stats.events_rejected += await asyncio.to_thread(
                    self.outbox.reject, batch.batch_id, dict.fromkeys(range(len(batch.events)), error))
                log.error("cloud refused batch %s as a whole (%s); its events are kept as rejected",
                          batch.batch_id, error)
                return False
            if code in (401, 403):
                await self._failed(batch, f"HTTP {code}: the store's API key is wrong or revoked "
                                          f"(set services.sync.api_key / RVA_SYNC_API_KEY)", self.cfg.backoff_max_s,
                                   state="auth_failed")
                continue
            await self._failed(batch, f"HTTP {code}: {response.text[:200]}", _retry_after(response))
        return False

    def _answered(self, result: str) -> None:
        self.stats.responses[result] = self.stats.responses.get(result, 0) + 1

    async def _acked(self, batch: Batch, response: httpx.Response) -> None:
        body = _json(response) or {}
        duplicate = bool(isinstance(body, dict) and body.get("duplicate_batch"))
        n = await asyncio.to_thread(self.outbox.ack, batch.batch_id, duplicate)
        self.stats.batches_acked += 1
        self.stats.events_acked += n
        self.stats.last_upload_unix_s = self.wall_clock()
        if self.stats.state != "online":
            log.info("uplink back online after %d failed attempt(s)", self._backoff_attempt)
        self.stats.state = "online"
        self._backoff_attempt = 0
        self._batch_events = self.cfg.batch_events

    async def _failed(self, batch: Batch, error: str, wait: float | None, state: str = "backoff") -> None:
        self.stats.failures += 1
        self.stats.last_error = error
        self.stats.state = state
        await asyncio.to_thread(self.outbox.attempt, batch.batch_id, error)
        ceiling = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * 2 ** min(self._backoff_attempt, 30))
        delay = random.uniform(0, ceiling) if wait is None else max(wait, random.uniform(0, ceiling))
        self._backoff_attempt += 1
        log.warning("upload of batch %s failed (%s); retry %d in %.1f s", batch.batch_id, error,
                    self._backoff_attempt, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    def _skew(self, response: httpx.Response) -> None:
        date = response.headers.get("Date")
        if not date:
            return
        try:
            cloud = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return
        skew = round(self.wall_clock() - cloud, 1)  # the Date header has 1 s resolution
        if abs(skew) > SKEW_WARN_S and (self.stats.clock_skew_s is None or abs(self.stats.clock_skew_s) <= SKEW_WARN_S):
            log.warning("clock skew: this edge's clock is %+.0f s off the cloud's; uploads are unaffected, but "
                        "event times are the edge's: fix NTP on this box", skew)
        self.stats.clock_skew_s = skew

    async def flush(self, deadline_s: float) -> int:
        """Wait until the outbox is empty or ``deadline_s`` passes; return events acknowledged meanwhile."""
        start = self.stats.events_acked
        end = time.monotonic() + deadline_s
        self._oldest_unbatched = -1e9  # cut partial batches now
        self.wake.set()
        while self.outbox.events and time.monotonic() < end:
            await asyncio.sleep(0.05)
        return self.stats.events_acked - start


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
