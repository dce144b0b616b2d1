"""Checkout queues: who joins, who is served and after how long, who gives up, and what a newcomer waits."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from rva.analytics.geometry import as_points, confirmed_foot_points, points_in_polygon
from rva.analytics.presence import Presence, Stay, StreamClock
from rva.config import QueueConfig
from rva.core.detections import Detections
from rva.core.events import Event, EventType


class QueueMonitor:
    """A queue area in front of a service area (a till), on foot points and stream time.

    Lifecycle of a track (a foot point in both polygons counts as in the service area):

    - **join**: in ``queue_polygon`` for ``join_after_s`` (absences shorter than ``exit_inertia_s`` are
      bridged). ``queue_join`` is dated at the first inside observation.
    - **served**: reaches ``service_polygon`` after joining, or while still waiting to count as joined
      (then a ``queue_join`` dated at its first inside time is emitted first), and stays there for
      ``serve_after_s``, so a box flickering over the till's edge is not a service. ``queue_served`` is
      dated at the first observation in the service area; ``wait_s = ts - join time`` (join time also
      in ``enter_ts``). Time at the till counts as time in the queue until then. People who reach the
      till without passing through the queue area (staff, walk-ups) are not queue customers and are
      not counted. A served track never rejoins this queue.
    - **abandoned**: outside the queue area or unseen for ``exit_inertia_s`` without being served. A track
      the tracker ended counts as unseen from then on, so it abandons once that inertia has run out since
      its last time in the queue area; a stream that ends (the tracker ending every track at once) leaves
      the people still in line *waiting*, not abandoned. ``queue_abandon`` is dated at the last time it
      was seen in the queue area.

    Invariant, at every moment: ``joined == served + abandoned + waiting``.

    **Wait estimate for a newcomer** (Little's law, ``L = lambda * W``): with ``L`` people waiting
    ahead and the till serving ``lambda`` people per second over the recent ``service_window_s``,
    a newcomer waits ``W = L / lambda``. It assumes the recent service rate holds and that everyone
    ahead stays; it is None until the first person has been served.

    Args:
        cfg: The queue's configuration.
        camera: Camera id put on events.

    """

    def __init__(self, cfg: QueueConfig, camera: str) -> None:
        self.cfg = cfg
        self.camera = camera
        self.queue_polygon = as_points(cfg.queue_polygon, f"queue {cfg.name!r} queue_polygon")
        self.service_polygon = as_points(cfg.service_polygon, f"queue {cfg.name!r} service_polygon")
        self._presence = Presence(cfg.join_after_s, cfg.exit_inertia_s)
        self._till = Presence(cfg.serve_after_s, cfg.exit_inertia_s)  # queue customers at the till
        self._served_ids: set[int] = set()
        self._served_times: deque[float] = deque()  # service arrivals inside the rate window
        self._clock = StreamClock(f"queue {cfg.name!r}")
        self.joined = 0
        self.served = 0
        self.abandoned = 0
        self._served_wait_s = 0.0

    @property
    def name(self) -> str:
        """The queue's name."""
        return self.cfg.name

    def update(self, tracked: Detections, ts: float, ended_ids: Iterable[int] = ()) -> list[Event]:
        """Feed one frame.

        Args:
            tracked: Confirmed tracks seen this frame (rows without a track id are ignored).
            ts: Stream time of the frame, in seconds; must not go backwards.
            ended_ids: Tracks the tracker ended; those still queueing abandon once ``exit_inertia_s`` has
                passed since their last queue time (dated then), as anyone unseen does.

        Returns:
            ``queue_join``, ``queue_served`` and ``queue_abandon`` events, in time order.

        """
        self._clock.advance(ts)
        ids, points = confirmed_foot_points(tracked)
        in_service = points_in_polygon(points, self.service_polygon)
        in_queue = points_in_polygon(points, self.queue_polygon) & ~in_service
        # Only people with a queue stay (joined, or on their way to joining) can be served: staff and
        # walk-ups at the till are not queue customers. Their time at the till keeps the queue stay alive.
        queued = np.array([self._presence.get(t) is not None for t in ids.tolist()], np.bool_)
        at_till, _ = self._till.update(ids[queued], in_service[queued], ts)
        events: list[Event] = []
        for till in at_till:
            self._till.pop(till.track_id)
            stay = self._presence.pop(till.track_id)
            if stay is None:
                continue
            if not stay.confirmed:
                events.append(self._join(stay))
            events.append(self._serve(till.track_id, till.first_inside_ts, stay.first_inside_ts))
        rest = ~np.isin(ids, list(self._served_ids))
        inside = in_queue | (in_service & queued)
        joined, left = self._presence.update(ids[rest], inside[rest], ts)
        ended = [int(t) for t in ended_ids]
        # An ended track is unseen from now on: its queue stay runs out by the inertia like any other (the
        # track ending is no evidence of giving up: at the end of a stream every track ends).
        self._till.end(ended)
        self._served_ids.difference_update(ended)
        events += [self._join(s) for s in joined] + [self._abandon(s) for s in left]
        while self._served_times and self._served_times[0] <= ts - self.cfg.service_window_s:
            self._served_times.popleft()
        return sorted(events, key=lambda e: e.ts)

    def _join(self, stay: Stay) -> Event:
        self.joined += 1
        return Event(EventType.QUEUE_JOIN, self.camera, stay.first_inside_ts, stay.track_id, queue=self.name)

    def _serve(self, tid: int, ts: float, join_ts: float) -> Event:
        self.served += 1
        self._served_ids.add(tid)
        self._served_times.append(ts)
        self._served_wait_s += ts - join_ts
        wait = ts - join_ts
        return Event(
            EventType.QUEUE_SERVED, self.camera, ts, tid, queue=self.name, wait_s=wait, enter_ts=join_ts
        )

    def _abandon(self, stay: Stay) -> Event:
        self.abandoned += 1
        return Event(
            EventType.QUEUE_ABANDON, self.camera, stay.last_inside_ts, stay.track_id, queue=self.name,
            wait_s=stay.duration_s, enter_ts=stay.first_inside_ts,
        )

    @property
    def length(self) -> int:
        """People queueing now, including those occluded for less than the exit inertia."""
        return self._presence.count

    @property
    def waiting(self) -> int:
        """Same as :attr:`length`: joined, neither served nor abandoned yet."""
        return self._presence.count

    @property
    def waiting_ids(self) -> list[int]:
        """Track ids counted in :attr:`length` (for drawing)."""
        return self._presence.confirmed_ids

    @property
    def mean_wait_s(self) -> float | None:
        """Mean observed wait of served people (join to service), None before the first service."""
        return self._served_wait_s / self.served if self.served else None

    def service_rate(self, ts: float | None = None) -> float | None:
        """People served per minute over the trailing ``service_window_s`` (shorter at stream start).

        Args:
            ts: Evaluate at this stream time (default: the last update), not before the last update.

        Returns:
            The rate, or None before anyone has been served.

        """
        first, last = self._clock.first_ts, self._clock.last_ts
        if self.served == 0 or first is None or last is None:
            return None
        at = last if ts is None else ts
        window = min(self.cfg.service_window_s, at - first)
        if window <= 0:
            return None
        recent = sum(1 for t in self._served_times if at - self.cfg.service_window_s < t <= at)
        return recent * 60.0 / window

    def wait_time_estimate(self, ts: float | None = None) -> float | None:
        """Seconds a person joining now can expect to wait: people ahead / service rate (Little's law).

        Args:
            ts: Evaluate at this stream time (default: the last update).

        Returns:
            The estimate; 0 with nobody waiting; None before the first service, or while people wait
            and nobody has been served within the window (no rate to extrapolate from).

        """
        rate = self.service_rate(ts)
        if rate is None:
            return None
        if self.length == 0:
            return 0.0
        return None if rate == 0 else self.length * 60.0 / rate

    def over_length(self) -> bool:
        """Whether the queue is longer than the configured ``max_length`` (False without one)."""
        return self.cfg.max_length is not None and self.length > self.cfg.max_length
