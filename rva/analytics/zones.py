"""Zone occupancy and dwell on foot points, robust to occlusion and edge flicker."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

import numpy as np

from rva.analytics.geometry import as_points, confirmed_foot_points, points_in_polygon
from rva.analytics.presence import Presence, Stay, StreamClock
from rva.config import ZoneConfig
from rva.core.detections import Detections
from rva.core.events import Event, EventType


class _OverlapPeak:
    """Most visits open at one instant of stream time, from back-dated enter and exit times.

    Enters and exits are known only after their inertia, so they arrive out of order. They wait in
    a heap until no later event can land before them (:meth:`settle`), then move a running level.
    At equal times enters go first: two people seen inside in the same frame were there together.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[float, int]] = []  # (ts, 0 enter | 1 exit)
        self._level = 0
        self._peak = 0

    def add(self, ts: float, enter: bool) -> None:
        heapq.heappush(self._pending, (ts, 0 if enter else 1))

    def settle(self, before: float) -> None:
        while self._pending and self._pending[0][0] < before:
            _, kind = heapq.heappop(self._pending)
            self._level += 1 if kind == 0 else -1
            self._peak = max(self._peak, self._level)

    def peak(self, open_until: Iterable[float]) -> int:
        """Return the peak so far, counting each open visit up to its last inside time (``open_until``)."""
        level, peak = self._level, self._peak
        for _, kind in sorted([*self._pending, *((t, 1) for t in open_until)]):
            level += 1 if kind == 0 else -1
            peak = max(peak, level)
        return peak


class ZoneMonitor:
    """Who is in a polygonal zone, for how long, with enter and exit inertia.

    A person is inside when their foot point (bottom-centre of the box) is inside the polygon.

    - **Enter**: inside for ``enter_inertia_s``; the ``zone_enter`` event is dated at the first inside
      observation, so the inertia delays the event but never shortens the visit.
    - **Exit**: seen outside for ``exit_inertia_s``, unseen for ``unseen_inertia_s``, or the track ended;
      the ``zone_exit`` event is dated at the last inside observation and carries ``enter_ts`` and
      ``dwell_s = ts - enter_ts``. The inertia bridges box flicker and occlusions (a person hidden behind
      another for a few seconds is still browsing), and is never counted as dwell: no timer keeps
      running after the person left.

    Statistics (all on the stream clock, all independent of the frame rate):

    - :attr:`occupancy`: visits open now, including people unseen for less than the unseen inertia.
    - :attr:`peak`: most visits open at one instant, from the back-dated visit intervals. It can be lower
      than the largest live :attr:`occupancy` ever seen, which briefly counts someone who has left but
      whose exit inertia has not yet run out.
    - :attr:`visits`: visits started (``zone_enter`` events); ``visits == exits + occupancy`` always.
    - :meth:`mean_occupancy`: person-seconds inside divided by the seconds observed.
    - :attr:`mean_dwell_s`: mean length of completed visits.

    Args:
        cfg: The zone's configuration.
        camera: Camera id put on events.

    """

    def __init__(self, cfg: ZoneConfig, camera: str) -> None:
        self.cfg = cfg
        self.camera = camera
        self.polygon = as_points(cfg.polygon, f"zone {cfg.name!r} polygon")
        self._presence = Presence(cfg.enter_inertia_s, cfg.exit_inertia_s, cfg.unseen_inertia_s)
        self._peak = _OverlapPeak()
        self._clock = StreamClock(f"zone {cfg.name!r}")
        self.visits = 0
        self.exits = 0
        self._closed_dwell_s = 0.0

    @property
    def name(self) -> str:
        """The zone's name."""
        return self.cfg.name

    def update(self, tracked: Detections, ts: float, ended_ids: Iterable[int] = ()) -> list[Event]:
        """Feed one frame.

        Args:
            tracked: Confirmed tracks seen this frame (rows without a track id are ignored).
            ts: Stream time of the frame, in seconds; must not go backwards.
            ended_ids: Tracks the tracker ended at this frame; open visits close at their last inside time.

        Returns:
            ``zone_enter`` and ``zone_exit`` events, in time order (back-dated, see the class docs).

        """
        self._clock.advance(ts)
        ids, points = confirmed_foot_points(tracked)
        entered, left = self._presence.update(ids, points_in_polygon(points, self.polygon), ts)
        left += self._presence.end(ended_ids)
        events = [self._enter(s) for s in entered] + [self._exit(s) for s in left]
        self._peak.settle(self._presence.settled_before(ts))
        return sorted(events, key=lambda e: e.ts)

    def _enter(self, stay: Stay) -> Event:
        self.visits += 1
        self._peak.add(stay.first_inside_ts, enter=True)
        return Event(EventType.ZONE_ENTER, self.camera, stay.first_inside_ts, stay.track_id, zone=self.name)

    def _exit(self, stay: Stay) -> Event:
        self.exits += 1
        dwell = stay.duration_s
        self._closed_dwell_s += dwell
        self._peak.add(stay.last_inside_ts, enter=False)
        return Event(
            EventType.ZONE_EXIT, self.camera, stay.last_inside_ts, stay.track_id, zone=self.name,
            dwell_s=dwell, enter_ts=stay.first_inside_ts,
        )

    @property
    def occupancy(self) -> int:
        """Confirmed visitors inside now, including those occluded for less than the exit inertia."""
        return self._presence.count

    @property
    def inside_ids(self) -> list[int]:
        """Track ids counted in :attr:`occupancy` (for drawing)."""
        return self._presence.confirmed_ids

    @property
    def peak(self) -> int:
        """Most visits open at the same instant so far."""
        return self._peak.peak(s.last_inside_ts for s in self._presence if s.confirmed)

    @property
    def mean_dwell_s(self) -> float | None:
        """Mean length of completed visits in seconds, None before the first exit."""
        return self._closed_dwell_s / self.exits if self.exits else None

    def person_seconds(self) -> float:
        """Seconds spent inside by everyone so far; an open visit counts up to its last inside time."""
        open_s = sum(s.duration_s for s in self._presence if s.confirmed)
        return self._closed_dwell_s + open_s

    def mean_occupancy(self) -> float:
        """Time-weighted mean occupancy: person-seconds inside per second of stream observed (0 at start)."""
        elapsed = self._clock.elapsed_s
        return self.person_seconds() / elapsed if elapsed > 0 else 0.0

    def over_capacity(self) -> bool:
        """Whether the live occupancy exceeds the configured capacity (False without one)."""
        return self.cfg.capacity is not None and self.occupancy > self.cfg.capacity

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which of the ``(n, 2)`` points are inside the polygon."""
        return points_in_polygon(points, self.polygon)
