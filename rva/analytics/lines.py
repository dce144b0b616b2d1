"""Directional line counting on foot points, with side hysteresis so flicker never counts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from rva.analytics.geometry import TIME_EPS, confirmed_foot_points, segment_crossings, side_of_line
from rva.analytics.presence import StreamClock
from rva.config import LineConfig
from rva.core.detections import Detections
from rva.core.events import Direction, Event, EventType

#: Side values: the sign of :func:`~rva.analytics.geometry.side_of_line`.
RIGHT, LEFT = 1, -1


@dataclass(slots=True)
class _TrackSide:
    x: float  # last foot point off the line
    y: float
    ts: float
    side: int  # its side
    committed: int  # the side the track counts as being on (after its last counted crossing)
    pending_side: int = 0  # side a crossing waits to be confirmed on; 0 when none
    pending_ts: float = 0.0  # when that crossing happened (interpolated)


class LineCounter:
    """Counts foot points crossing a directed line segment, in and out.

    Direction, on screen (image y points down): stand at ``start`` and face ``end``. A crossing
    from your **right** to your **left** is ``in``; from left to right is ``out``. For a horizontal line
    drawn left to right (``start=(0, 300)``, ``end=(640, 300)``), the right side is below it on the
    screen, so walking *up* the image across it is ``in``. Swap ``start`` and ``end`` to swap directions.

    A crossing counts when both hold:

    1. The foot point's move between two consecutive observations intersects the line *segment*
       (not the infinite line through it). Walking around either end counts nothing.
    2. The track then stays on the new side for ``min_side_s`` of stream time, seen there at least
       once that long after the crossing. Returning to the old side before that (a one-frame box
       flicker, or someone hovering on the line) cancels it; a track that ends before it counts nothing.

    The event is dated at the interpolated instant the move crossed the segment, so its time does not
    depend on the frame rate or on ``min_side_s``. Crossing back and forth counts every completed
    crossing; an observation exactly on the line is ignored.

    Args:
        cfg: The line's configuration.
        camera: Camera id put on events.

    """

    def __init__(self, cfg: LineConfig, camera: str) -> None:
        self.cfg = cfg
        self.camera = camera
        self.start = (float(cfg.start[0]), float(cfg.start[1]))
        self.end = (float(cfg.end[0]), float(cfg.end[1]))
        self.in_count = 0
        self.out_count = 0
        self._tracks: dict[int, _TrackSide] = {}
        self._clock = StreamClock(f"line {cfg.name!r}")

    @property
    def name(self) -> str:
        """The line's name."""
        return self.cfg.name

    def update(self, tracked: Detections, ts: float, ended_ids: Iterable[int] = ()) -> list[Event]:
        """Feed one frame.

        Args:
            tracked: Confirmed tracks seen this frame (rows without a track id are ignored).
            ts: Stream time of the frame, in seconds; must not go backwards.
            ended_ids: Tracks the tracker ended; their unconfirmed crossings are dropped.

        Returns:
            ``line_cross`` events confirmed by this frame, in time order.

        """
        self._clock.advance(ts)
        ids, points = confirmed_foot_points(tracked)
        sides = np.sign(side_of_line(points, self.start, self.end)).astype(np.int64)
        prev = [self._tracks.get(t) for t in ids.tolist()]
        p0 = np.array([(s.x, s.y) if s else (np.nan, np.nan) for s in prev], np.float64).reshape(-1, 2)
        crossed, frac = segment_crossings(p0, points, self.start, self.end)
        events: list[Event] = []
        for i, tid in enumerate(ids.tolist()):
            side = int(sides[i])
            if side == 0:
                continue
            x, y = float(points[i, 0]), float(points[i, 1])
            st = prev[i]
            if st is None:
                self._tracks[tid] = _TrackSide(x, y, ts, side, committed=side)
                continue
            if crossed[i]:
                if side != st.committed:
                    st.pending_side, st.pending_ts = side, st.ts + float(frac[i]) * (ts - st.ts)
                else:
                    st.pending_side = 0  # back across before confirming: flicker
            elif side != st.side:  # changed side around an end of the segment
                if side == st.committed:
                    st.pending_side = 0
                else:
                    st.committed = side
            st.x, st.y, st.ts, st.side = x, y, ts, side
            if st.pending_side == side and ts - st.pending_ts >= self.cfg.min_side_s - TIME_EPS:
                events.append(self._count(tid, st))
        for tid in ended_ids:
            self._tracks.pop(int(tid), None)
        return sorted(events, key=lambda e: e.ts)

    def _count(self, tid: int, st: _TrackSide) -> Event:
        direction = Direction.IN if st.pending_side == LEFT else Direction.OUT
        if direction is Direction.IN:
            self.in_count += 1
        else:
            self.out_count += 1
        st.committed, st.pending_side = st.pending_side, 0
        return Event(
            EventType.LINE_CROSS, self.camera, st.pending_ts, tid, line=self.name, direction=direction
        )

    def side_of(self, track_id: int) -> int:
        """Return the side a track counts as being on: 1 right, -1 left, 0 unknown (for drawing)."""
        st = self._tracks.get(track_id)
        return 0 if st is None else st.committed
