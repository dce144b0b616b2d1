"""Per-camera processing: detections -> tracks -> analytics events. Pure: no I/O, no threads.

The standalone runner and the distributed services (tracking + analytics) call this same object.
"""

from __future__ import annotations

from dataclasses import dataclass

from rva.alerts import AlertEngine
from rva.analytics import CameraAnalytics
from rva.config import CameraConfig, TrackerConfig
from rva.core import Detections, Event
from rva.tracking import ByteTracker


@dataclass(frozen=True, slots=True)
class CameraStep:
    """What one frame produced: the confirmed tracks in it and the events it closed."""

    tracked: Detections
    events: list[Event]


class CameraPipeline:
    """Tracker and analytics of one camera.

    Args:
        camera: The camera's config (zones, lines, queues, heatmap).
        tracker: ByteTrack parameters.
        frame_size: ``(width, height)`` of the decoded frames; geometry is checked against it.
        alerts: The store's alert engine (shared by its cameras); its ``alert`` events join the frame's.
    """

    def __init__(self, camera: CameraConfig, tracker: TrackerConfig, frame_size: tuple[int, int],
                 alerts: AlertEngine | None = None) -> None:
        self.camera = camera
        self.alerts = alerts
        self.frame_size = frame_size
        self.tracker = ByteTracker(tracker)
        self.analytics = CameraAnalytics(camera, frame_size)
        self.confirmed_tracks = 0
        self.last_ts: float | None = None

    def step(self, detections: Detections, ts: float) -> CameraStep:
        """Track one frame's detections at stream time ``ts`` and run the analytics on the result."""
        out = self.tracker.update(detections, ts)
        self.confirmed_tracks += len(out.started)
        self.last_ts = ts
        events = self.analytics.update(out.tracked, ts, started=out.started, ended=out.ended)
        if self.alerts is not None:
            events += self.alerts.after_frame(self.camera.id, self.analytics, out.tracked, ts, events)
        return CameraStep(out.tracked, events)

    def finish(self) -> list[Event]:
        """End of stream: end live tracks and let the analytics close what they must."""
        if self.last_ts is None:
            return []
        ended = self.tracker.finish(self.last_ts)
        events = self.analytics.update(Detections.empty(), self.last_ts, started=(), ended=ended)
        events += self.analytics.finish(self.last_ts)
        if self.alerts is not None:
            for event in list(events):
                events += self.alerts.on_event(event)
        return events
