"""Analytics events: what the cores emit and every sink, store and API carries."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


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


class Direction(StrEnum):
    """Line crossing direction, as configured on the line."""

    IN = "in"
    OUT = "out"


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
        enter_ts: When the visit began, on ``zone_exit``.
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
