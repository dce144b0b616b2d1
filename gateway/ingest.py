"""Edge sync's way in: gzip batches of events, all-or-nothing, idempotent by batch id and by event id.

Contract of ``POST /v1/ingest/events`` (the sync service's uploader relies on every line):

- Auth: the store's device API key (``Authorization: Bearer rvak_…`` or ``X-API-Key``).
- ``Content-Type``: ``application/x-protobuf`` (an ``rva.sync.v1.EventBatch``) or ``application/json``
  (``{"batch_id", "store", "first_sequence", "last_sequence", "events": [Event.to_dict() + event_id]}``).
- ``Content-Encoding: gzip`` (or none). ``Idempotency-Key``: the batch id (must match the body's if both).
- 200: every event is committed by every sink (PostgreSQL, Redis live, ClickHouse, JetStream); the edge
  may drop the batch. A batch id seen before answers 200 with ``duplicate_batch: true`` and writes
  nothing; an event id seen before is not stored twice (all stores key on it, JetStream
  de-duplicates on ``Nats-Msg-Id``), so a batch re-cut after a crash is safe too.
- 400 undecodable gzip/protobuf/JSON · 401 bad or revoked key · 403 a store other than the key's ·
  409 ``Idempotency-Key`` differs from the body's batch id · 413 over the size or event-count limits ·
  415 other content types or encodings · 422 an invalid event (``fields`` name ``events.<i>``; nothing
  is written) · 429 rate limited (``Retry-After``) · 503 a sink is down (nothing acknowledged: retry the
  same batch later).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from gateway.errors import BadRequest, Conflict, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from rva.core.events import SCHEMA_VERSION, Event
from rva.stores.errors import BadEvent, StoreUnavailable
from rva.stores.records import JSON_CONTENT_TYPE, PROTO_CONTENT_TYPE, StoredEvent, decode, encode

_MAX_FIELD_ERRORS = 20


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """A decoded, validated batch."""

    batch_id: str
    store: str
    records: list[StoredEvent]


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip or identity) without ever holding more than ``limit`` bytes.

    Raises:
        UnsupportedMediaType: Another encoding.
        BadRequest: Corrupt gzip.
        PayloadTooLarge: It inflates past ``limit`` (a gzip bomb stops here).

    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise UnsupportedMediaType(f"Content-Encoding: expected gzip or identity, got {encoding!r}")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as err:
        raise BadRequest(f"gzip body is corrupt: {err}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"batch inflates past {limit} bytes")
    if not inflater.eof:
        raise BadRequest("gzip body is truncated")
    return out


def parse_batch(
    data: bytes, content_type: str, tenant: str, idempotency_key: str | None, max_events: int
) -> ParsedBatch:
    """Decode and validate a batch with the stores' own validation (so no store refuses what passes here).

    Raises:
        UnsupportedMediaType, BadRequest, Conflict, PayloadTooLarge, Unprocessable: see the module docs.

    """
    kind = content_type.split(";")[0].strip().lower()
    if kind == PROTO_CONTENT_TYPE:
        batch_id, store, items = _from_proto(data)
    elif kind == JSON_CONTENT_TYPE:
        batch_id, store, items = _from_json(data)
    else:
        raise UnsupportedMediaType(f"Content-Type: expected {PROTO_CONTENT_TYPE} or {JSON_CONTENT_TYPE}, got {kind!r}")
    if idempotency_key and batch_id and idempotency_key != batch_id:
        raise Conflict(f"Idempotency-Key {idempotency_key!r} differs from the batch id {batch_id!r}")
    batch_id = batch_id or (idempotency_key or "")
    if not batch_id or len(batch_id) > 128:
        raise Unprocessable("batch_id: required (1-128 characters), in the body or the Idempotency-Key header",
                            [{"field": "batch_id", "message": "required", "type": "missing"}])
    if len(items) > max_events:
        raise PayloadTooLarge(f"batch holds {len(items)} events; at most {max_events}")
    records: dict[str, StoredEvent] = {}
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            record = _validate(tenant, store, item)
        except BadEvent as err:
            errors.append({"field": f"events.{i}", "message": err.detail, "type": str(err.reason)})
            if len(errors) >= _MAX_FIELD_ERRORS:
                break
            continue
        records.setdefault(record.event_id.hex, record)  # an event twice in one batch is one event
    if errors:
        raise Unprocessable(f"{len(errors)} invalid event(s); nothing was written: {errors[0]['field']}: "
                            f"{errors[0]['message']}", errors)
    return ParsedBatch(batch_id, store, list(records.values()))


def _from_proto(data: bytes) -> tuple[str, str, list[Any]]:
    from rva.sync.v1 import sync_pb2

    try:
        batch = sync_pb2.EventBatch.FromString(data)
    except DecodeError as err:
        raise BadRequest(f"body is not an rva.sync.v1.EventBatch: {err}") from None
    return batch.batch_id, batch.store, list(batch.events)


def _from_json(data: bytes) -> tuple[str, str, list[Any]]:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise BadRequest(f"body is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise Unprocessable("body: expected a JSON object", [{"field": "(body)", "message": "expected an object",
                                                              "type": "object"}])
    events = body.get("events", [])
    for key, value, typ in (("batch_id", body.get("batch_id", ""), str), ("store", body.get("store"), str),
                            ("events", events, list)):
        if not isinstance(value, typ):
            message = f"expected {typ.__name__}"
            raise Unprocessable(f"{key}: {message}", [{"field": key, "message": message, "type": "type"}])
    return body.get("batch_id", ""), body["store"], events


def _validate(tenant: str, store: str, item: Any) -> StoredEvent:
    """One event through ``rva.stores.records.decode``: fields, ranges, store, camera, kind and event id."""
    if isinstance(item, dict):
        body = {"schema_version": SCHEMA_VERSION, **item, "store": item.get("store", store)}
        try:
            event = Event.from_dict({k: v for k, v in item.items() if k not in ("store", "event_id", "schema_version")})
        except (ValueError, KeyError, TypeError) as err:
            raise BadEvent(_malformed(), f"{err!r}") from None
        payload, headers = json.dumps(body).encode(), {"Content-Type": JSON_CONTENT_TYPE}
    else:
        if not item.store:
            item.store = store
        try:
            event = Event.from_proto(item)
        except (ValueError, KeyError) as err:
            raise BadEvent(_malformed(), str(err)) from None
        payload, headers = item.SerializeToString(), None
    if not isinstance(event.camera, str) or not isinstance(event.type, str):
        raise BadEvent(_malformed(), "camera and type must be strings")
    return decode(tenant, f"rva.{store}.{event.camera}.{event.type}", payload, headers)


def _malformed() -> Any:
    from rva.stores.errors import DeadLetterReason

    return DeadLetterReason.MALFORMED


class IngestSinks:
    """Where a validated batch is committed: the stores' writers and/or JetStream.

    Args:
        writers: Store writers (``write(batch) -> new``), each guarded by its own lock.
        js: JetStream context (None: no JetStream sink).
        publish_timeout_s: Deadline of each JetStream ack.

    """

    def __init__(self, writers: Sequence[Any], js: Any | None, publish_timeout_s: float = 10.0) -> None:
        self.writers = [(w, threading.Lock()) for w in writers]
        self.js = js
        self.publish_timeout_s = publish_timeout_s

    def _write(self, writer: Any, lock: threading.Lock, records: list[StoredEvent]) -> int:
        with lock:
            return int(writer.write(records))

    async def commit(self, records: list[StoredEvent]) -> dict[str, int]:
        """Write every record to every sink; return new events per sink.

        Raises:
            StoreUnavailable: A sink failed; nothing may be acknowledged (the edge retries the batch).

        """
        out: dict[str, int] = {}
        for writer, lock in self.writers:
            out[writer.name] = await asyncio.to_thread(self._write, writer, lock, records)
        if self.js is not None:
            out["jetstream"] = await self._publish(records)
        return out

    async def _publish(self, records: list[StoredEvent]) -> int:
        import nats.errors

        js = self.js
        assert js is not None

        async def one(r: StoredEvent) -> int:
            subject, payload, headers = encode(r.store, r.event)
            headers["Rva-Tenant"] = r.tenant
            ack = await js.publish(subject, payload, headers=headers, timeout=self.publish_timeout_s)
            return 0 if ack.duplicate else 1

        new = 0
        try:
            for i in range(0, len(records), 256):  # bounded acks in flight
                new += sum(await asyncio.gather(*(one(r) for r in records[i : i + 256])))
        except (nats.errors.Error, TimeoutError) as err:
            raise StoreUnavailable(f"jetstream: {err!r}") from None
        return new

    def close(self) -> None:
        """Close the writers."""
        for writer, _ in self.writers:
            writer.close()


def gzip_batch(body: bytes) -> bytes:
    """Compress a batch body the way the edge sends it (tests, the demo feeder)."""
    return gzip.compress(body, compresslevel=6)
