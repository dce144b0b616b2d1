"""Core types shared by every stage: detections, frames and events."""

from rva.core.detections import NO_TRACK, Detections
from rva.core.events import Direction, Event, EventType
from rva.core.frame import Frame

__all__ = ["NO_TRACK", "Detections", "Direction", "Event", "EventType", "Frame"]
