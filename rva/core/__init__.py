"""Core types shared by every stage: detections, frames and events."""

from rva.core.detections import NO_TRACK, Detections
from rva.core.events import SCHEMA_VERSION, Direction, Event, EventType
from rva.core.frame import Frame

__all__ = ["NO_TRACK", "SCHEMA_VERSION", "Detections", "Direction", "Event", "EventType", "Frame"]
