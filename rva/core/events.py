"""Analytics events: what the cores emit and every sink, store and API carries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

#: Version of the event schema (JSON and protobuf). Consumers reject versions they do not know.
SCHEMA_VERSION = 1


class EventType(StrEnum):
    """What happened."""

    TRACK_START = "track_start"
    TRACK_END = "track_end"
    ZONE_ENTER = "zone_enter"
    ZONE_EXIT = "zone_exit"
    LINE_CROSS = "line_cross"
    QUEUE_JOIN = "queue_join"
    QUEUE_SERVED = "queue_served"
    QUEUE_ABANDON = "queue_abandon"
    SOURCE_STATE = "source_state"
    HEATMAP_SNAPSHOT = "heatmap_snapshot"
    ALERT = "alert"
    ALERT_UNDELIVERED = "alert_undelivered"


_ALERT_TYPES = (EventType.ALERT, EventType.ALERT_UNDELIVERED)


class Direction(StrEnum):
    """Line crossing direction, as configured on the line."""

    IN = "in"
    OUT = "out"


#: Keys of ``Event.attrs`` that hold times (moved by :meth:`Event.shifted`).
_ATTR_TIMES = ("first_ts", "from_ts")


@dataclass(frozen=True, slots=True)
class Event:
    """One analytics event.

    Times are seconds on the camera's presentation clock (PTS), never frame counts.

    Attributes:
        type: What happened.
        camera: Camera id from the config.
        ts: When it happened, in seconds of stream time.
        track_id: The confirmed track it concerns, if any.
        zone: Zone name for zone events.
        line: Line name for crossings.
        queue: Queue name for queue events.
        direction: ``in`` or ``out`` for crossings.
        dwell_s: Time in the zone, on ``zone_exit``; equals ``ts - enter_ts``.
        enter_ts: When the visit began, on ``zone_exit``; when the person joined, on queue events.
        wait_s: Time spent queueing, on ``queue_served`` and ``queue_abandon``.
        attrs: Anything else (source state, gap length, track duration...).
    """

    type: EventType
    camera: str
    ts: float
    track_id: int | None = None
    zone: str | None = None
    line: str | None = None
    queue: str | None = None
    direction: Direction | None = None
    dwell_s: float | None = None
    enter_ts: float | None = None
    wait_s: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def event_id(self, store: str) -> str:
        """Globally unique, deterministic id: the same event replayed gets the same id.

        A hash of what identifies the event (store, camera, type, time to the microsecond, track,
        zone/line/queue, direction, source state; for alerts also the rule, and for undelivered alerts
        the sink and the alert's id), so stores can de-duplicate on it.
        """
        parts: tuple[Any, ...] = (
            SCHEMA_VERSION, store, self.camera, self.type, f"{self.ts:.6f}", self.track_id,
            self.zone, self.line, self.queue, self.direction, self.attrs.get("state"),
        )
        if self.type in _ALERT_TYPES:
            # Two rules firing on one target in one frame, or one alert dead-lettered by two sinks, are
            # different events; other types keep their ids unchanged.
            parts += (self.attrs.get("rule"), self.attrs.get("sink"), self.attrs.get("alert_id"))
        key = "|".join(str(v) for v in parts)
        return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()

    def shifted(self, offset_s: float) -> Event:
        """This event with every time on it moved by ``offset_s`` (stream time -> wall clock, say).

        ``ts``, ``enter_ts`` and the times in ``attrs`` (``first_ts`` of a track end, ``from_ts`` of a
        heatmap snapshot) move; durations (``dwell_s``, ``wait_s``) do not.
        """
        attrs = dict(self.attrs)
        for key in _ATTR_TIMES:
            if isinstance(attrs.get(key), int | float):
                attrs[key] = float(attrs[key]) + offset_s
        return replace(self, ts=self.ts + offset_s,
                       enter_ts=None if self.enter_ts is None else self.enter_ts + offset_s, attrs=attrs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form without empty fields."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if value is None or (key == "attrs" and not value):
                continue
            out[key] = str(value) if isinstance(value, StrEnum) else value
        return out

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        """Inverse of :meth:`to_dict`."""
        data = dict(raw)
        data["type"] = EventType(data["type"])
        if data.get("direction") is not None:
            data["direction"] = Direction(data["direction"])
        return cls(**data)

    def to_proto(self, store: str = "") -> Any:
        """As an ``rva.events.v1.Event`` message, stamped with the schema version (and the id, given a store)."""
        from rva.events.v1 import events_pb2 as pb

        msg = pb.Event(
            store=store,
            event_id=self.event_id(store) if store else "",
            schema_version=SCHEMA_VERSION,
            type=pb.EventType.Value(f"EVENT_TYPE_{self.type.name}"),
            camera=self.camera,
            ts=self.ts,
            direction=pb.Direction.Value(f"DIRECTION_{self.direction.name}") if self.direction else 0,
            attrs_json=json.dumps(self.attrs, sort_keys=True) if self.attrs else "",
        )
        for key in ("track_id", "zone", "line", "queue", "dwell_s", "enter_ts", "wait_s"):
            value = getattr(self, key)
            if value is not None:
                setattr(msg, key, value)
        return msg

    @classmethod
    def from_proto(cls, msg: Any) -> Event:
        """Inverse of :meth:`to_proto`; raises ``ValueError`` on an unknown schema version or type."""
        from rva.events.v1 import events_pb2 as pb

        if msg.schema_version not in (0, SCHEMA_VERSION):
            raise ValueError(f"Event.schema_version {msg.schema_version} is not supported (this is {SCHEMA_VERSION})")
        type_name = pb.EventType.Name(msg.type).removeprefix("EVENT_TYPE_")
        if type_name == "UNSPECIFIED":
            raise ValueError("Event.type is EVENT_TYPE_UNSPECIFIED")
        fields: dict[str, Any] = {
            key: getattr(msg, key)
            for key in ("track_id", "zone", "line", "queue", "dwell_s", "enter_ts", "wait_s")
            if msg.HasField(key)
        }
        direction = None
        if msg.direction:
            direction = Direction[pb.Direction.Name(msg.direction).removeprefix("DIRECTION_")]
        return cls(
            type=EventType[type_name],
            camera=msg.camera,
            ts=msg.ts,
            direction=direction,
            attrs=json.loads(msg.attrs_json) if msg.attrs_json else {},
            **fields,
        )
