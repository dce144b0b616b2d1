"""Wire forms of an event on JetStream and the validated record every store writes.

Subject ``rva.<store>.<camera>.<kind>``; payload the ``rva.events.v1.Event`` protobuf (default) or,
with header ``Content-Type: application/json``, ``Event.to_dict()`` plus ``store``, ``event_id`` and
``schema_version``; header ``Nats-Msg-Id`` = the event id, so JetStream drops a re-publish in its
duplicate window and the stores drop one after it.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from rva.core.events import SCHEMA_VERSION, Event, EventType
from rva.events.v1 import events_pb2 as pb
from rva.stores.errors import BadEvent, DeadLetterReason

JSON_CONTENT_TYPE = "application/json"
PROTO_CONTENT_TYPE = "application/x-protobuf"
#: Subjects of the event kinds, one per :class:`EventType` (``rva.<store>.<camera>.<kind>``).
EVENT_SUBJECTS = tuple(f"rva.*.*.{kind}" for kind in EventType)
DLQ_PREFIX = "rva.dlq"
#: Store, camera and tenant ids: the config's id pattern (also safe as a NATS subject token).
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Unix seconds that PostgreSQL and ClickHouse both hold (1970-01-01 .. 2262-04-11).
_MAX_TS = 9_223_372_036.0
_NAMES = {EventType.ZONE_ENTER: "zone", EventType.ZONE_EXIT: "zone", EventType.LINE_CROSS: "line",
          EventType.QUEUE_JOIN: "queue", EventType.QUEUE_SERVED: "queue", EventType.QUEUE_ABANDON: "queue"}


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the stores keep it: who owns it, its id, and the event itself.

    ``event.ts`` is read as Unix seconds (UTC): the publisher maps the camera clock onto the wall clock.

    Attributes:
        tenant: Owner of the store; every query is scoped by it.
        store: Store id (the subject's second token).
        event_id: The deterministic id (``Event.event_id(store)``), primary key everywhere.
        event: The event.

    """

    tenant: str
    store: str
    event_id: uuid.UUID
    event: Event

    @classmethod
    def of(cls, tenant: str, store: str, event: Event) -> StoredEvent:
        """Wrap an event, computing its id."""
        return cls(tenant, store, uuid.UUID(hex=event.event_id(store)), event)

    @property
    def name(self) -> str | None:
        """The zone, line or queue the event concerns."""
        e = self.event
        return e.zone or e.line or e.queue

    def subject(self) -> str:
        """The JetStream subject it is published on."""
        return f"rva.{self.store}.{self.event.camera}.{self.event.type}"


def encode(store: str, event: Event, content_type: str = PROTO_CONTENT_TYPE) -> tuple[str, bytes, dict[str, str]]:
    """The subject, payload and headers an event is published with.

    Args:
        store: Store id.
        event: The event.
        content_type: :data:`PROTO_CONTENT_TYPE` (default) or :data:`JSON_CONTENT_TYPE`.

    Returns:
        ``(subject, payload, headers)``.

    """
    event_id = event.event_id(store)
    if content_type == JSON_CONTENT_TYPE:
        body = {**event.to_dict(), "store": store, "event_id": event_id, "schema_version": SCHEMA_VERSION}
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    elif content_type == PROTO_CONTENT_TYPE:
        payload = event.to_proto(store).SerializeToString()
    else:
        raise ValueError(f"content_type: expected {PROTO_CONTENT_TYPE} or {JSON_CONTENT_TYPE}, got {content_type!r}")
    headers = {"Nats-Msg-Id": event_id, "Content-Type": content_type}
    return f"rva.{store}.{event.camera}.{event.type}", payload, headers


def decode(tenant: str, subject: str, data: bytes, headers: Mapping[str, str] | None = None) -> StoredEvent:
    """Validate one message into a :class:`StoredEvent`.

    Args:
        tenant: Tenant the consumer writes for.
        subject: ``rva.<store>.<camera>.<kind>``.
        data: Protobuf bytes, or JSON when ``Content-Type`` says so.
        headers: Message headers (may be None).

    Raises:
        BadEvent: With reason ``schema_version``, ``malformed`` or ``mismatch``; the detail says why.

    """
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != "rva":
        raise BadEvent(DeadLetterReason.MISMATCH, f"subject: expected rva.<store>.<camera>.<kind>, got {subject!r}")
    _, store, camera, kind = parts
    content_type = (headers or {}).get("Content-Type", PROTO_CONTENT_TYPE).split(";")[0].strip().lower()
    if content_type == JSON_CONTENT_TYPE:
        body_store, body_id, event = _from_json(data)
    else:
        body_store, body_id, event = _from_proto(data)
    checks = (("store", body_store, store), ("camera", event.camera, camera), ("type", str(event.type), kind))
    for key, got, want in checks:
        if got != want:
            raise BadEvent(DeadLetterReason.MISMATCH, f"{key}: subject {subject!r} says {want!r}, payload {got!r}")
    _validate(event)
    if not ID_PATTERN.match(store):
        raise BadEvent(DeadLetterReason.MALFORMED, f"store: expected {ID_PATTERN.pattern}, got {store!r}")
    record = StoredEvent.of(tenant, store, event)
    if body_id and body_id != record.event_id.hex:
        raise BadEvent(DeadLetterReason.MISMATCH, f"event_id: payload {body_id!r}, computed {record.event_id.hex!r}")
    return record


def _check_version(version: Any) -> None:
    if version not in (0, SCHEMA_VERSION):
        raise BadEvent(DeadLetterReason.SCHEMA_VERSION, f"schema_version: expected {SCHEMA_VERSION}, got {version!r}")


def _from_proto(data: bytes) -> tuple[str, str, Event]:
    try:
        msg = pb.Event.FromString(data)
    except DecodeError as err:
        raise BadEvent(DeadLetterReason.MALFORMED, f"protobuf: {err}") from None
    _check_version(msg.schema_version)
    try:
        return msg.store, msg.event_id, Event.from_proto(msg)
    except (ValueError, KeyError, TypeError) as err:
        raise BadEvent(DeadLetterReason.MALFORMED, f"protobuf: {err}") from None


def _from_json(data: bytes) -> tuple[str, str, Event]:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise BadEvent(DeadLetterReason.MALFORMED, f"json: {err}") from None
    if not isinstance(body, dict):
        raise BadEvent(DeadLetterReason.MALFORMED, f"json: expected an object, got {type(body).__name__}")
    _check_version(body.pop("schema_version", None))
    store, event_id = body.pop("store", ""), body.pop("event_id", "")
    try:
        event = Event.from_dict(body)
    except (ValueError, KeyError, TypeError) as err:
        raise BadEvent(DeadLetterReason.MALFORMED, f"json: {err!r}") from None
    return str(store), str(event_id), event


def _bad(detail: str) -> BadEvent:
    return BadEvent(DeadLetterReason.MALFORMED, detail)


def _validate(e: Event) -> None:
    """Types, ranges and the fields each kind needs, so no store ever sees a poison row."""
    if not isinstance(e.ts, int | float) or not 0.0 <= e.ts < _MAX_TS:
        raise _bad(f"ts: expected Unix seconds in [0, {_MAX_TS:.0f}), got {e.ts!r}")
    if not ID_PATTERN.match(e.camera):
        raise _bad(f"camera: expected {ID_PATTERN.pattern}, got {e.camera!r}")
    if not isinstance(e.attrs, dict):
        raise _bad(f"attrs: expected an object, got {type(e.attrs).__name__}")
    for key in ("zone", "line", "queue"):
        value = getattr(e, key)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 64 or "\x00" in value):
            raise _bad(f"{key}: expected 1-64 characters without NUL, got {value!r}")
    for key in ("dwell_s", "wait_s", "enter_ts"):
        value = getattr(e, key)
        if value is not None and (not isinstance(value, int | float) or not math.isfinite(value) or value < 0):
            raise _bad(f"{key}: expected a finite number >= 0, got {value!r}")
    if e.track_id is not None and (not isinstance(e.track_id, int) or not 0 <= e.track_id < 2**63):
        raise _bad(f"track_id: expected an integer in [0, 2^63), got {e.track_id!r}")
    need = _NAMES.get(e.type)
    if need and (getattr(e, need) is None or e.track_id is None):
        raise _bad(f"{e.type}: needs {need} and track_id")
    if e.type is EventType.LINE_CROSS and e.direction is None:
        raise _bad("line_cross: needs direction")
    if e.type is EventType.ZONE_EXIT and e.enter_ts is None and e.dwell_s is None:
        raise _bad("zone_exit: needs enter_ts or dwell_s")
    if e.type is EventType.HEATMAP_SNAPSHOT:
        _validate_heatmap(e.attrs)
    if e.attrs:
        try:
            json.dumps(e.attrs, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise _bad(f"attrs: not plain JSON ({err})") from None


def _validate_heatmap(attrs: dict[str, Any]) -> None:
    shape, cells, seconds = attrs.get("shape"), attrs.get("cells"), attrs.get("seconds")
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise _bad(f"heatmap_snapshot attrs.shape: expected [rows, cols] > 0, got {shape!r}")
    if not isinstance(attrs.get("cell_px"), int) or attrs["cell_px"] <= 0:
        raise _bad(f"heatmap_snapshot attrs.cell_px: expected an integer > 0, got {attrs.get('cell_px')!r}")
    if not (isinstance(cells, list) and isinstance(seconds, list) and len(cells) == len(seconds)):
        raise _bad("heatmap_snapshot attrs: cells and seconds must be lists of one length")
    size = shape[0] * shape[1]
    if not all(isinstance(c, int) and 0 <= c < size for c in cells):
        raise _bad(f"heatmap_snapshot attrs.cells: expected integers in [0, {size})")
    if not all(isinstance(s, int | float) and math.isfinite(s) and s >= 0 for s in seconds):
        raise _bad("heatmap_snapshot attrs.seconds: expected finite numbers >= 0")
