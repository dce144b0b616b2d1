"""Retail analytics cores: zones, lines, queues and heatmaps on tracked foot points, in stream time.

Every class here is a pure, per-camera state machine over NumPy: no I/O, no threads, no clocks of its
own. Feed it each frame's confirmed tracks and the frame's stream time; it returns events.
"""

from rva.analytics.camera import CameraAnalytics, TrackRecord
from rva.analytics.geometry import points_in_polygon, segment_crossings, side_of_line
from rva.analytics.heatmap import Heatmap, Hotspot
from rva.analytics.lines import LineCounter
from rva.analytics.presence import Presence, Stay, StreamClock
from rva.analytics.queues import QueueMonitor
from rva.analytics.zones import ZoneMonitor

__all__ = [
    "CameraAnalytics",
    "Heatmap",
    "Hotspot",
    "LineCounter",
    "Presence",
    "QueueMonitor",
    "Stay",
    "StreamClock",
    "TrackRecord",
    "ZoneMonitor",
    "points_in_polygon",
    "segment_crossings",
    "side_of_line",
]
