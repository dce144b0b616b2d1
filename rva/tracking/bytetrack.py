"""ByteTrack (Zhang et al., ECCV 2022) on NumPy: time-aware, batched, with ids only for confirmed tracks.

Per frame, after the Kalman filter moves every track to the frame's timestamp:

1. High-score detections (``>= high_threshold``) are matched to every confirmed track, tracked or
   lost, by IoU (gate ``match_iou``; ranked by IoU x score when ``fuse_score``).
2. Low-score detections (``low_threshold`` .. ``high_threshold``) are matched to the confirmed
   tracks that were tracked (not lost) and are still free, gate ``low_match_iou``. This is
   ByteTrack's point: a person half hidden keeps their track through a dip in score, yet a
   low-score detection alone never starts one.
3. Unconfirmed tracks are matched to the high-score detections left; an unconfirmed track that
   misses a frame is dropped.
4. High-score detections still free and ``>= new_track_threshold`` start unconfirmed tracks.

A track is confirmed, and only then given an id, after ``min_hits`` consecutive matches. Ids count
from 1 per tracker and are never reused; unconfirmed rows are not emitted at all, so no placeholder
id can be counted by analytics. A confirmed track that misses frames is *lost*: it is not emitted,
but it can be found again for ``lost_buffer_s`` seconds of stream time after its last match (the
same at any frame rate); then it ends, and :class:`TrackEnd` reports it.

All track state lives in a few arrays (one row per track), so each stage is a handful of NumPy
calls whatever the number of people.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rva.config import TrackerConfig
from rva.core.detections import NO_TRACK, Detections
from rva.tracking.kalman import SIZE_VEL, STATE_WIDTH, BoxKalmanFilter, xyxy_to_xywh
from rva.tracking.matching import assign, iou_matrix

IndexArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class TrackEnd:
    """A confirmed track that ended.

    Attributes:
        track_id: The id it had.
        first_ts: Timestamp of its first detection (before it was confirmed), seconds.
        last_ts: Timestamp of its last matched detection, seconds.
        hits: Frames in which a detection was matched to it.
    """

    track_id: int
    first_ts: float
    last_ts: float
    hits: int


@dataclass(frozen=True, slots=True)
class TrackerOutput:
    """What one frame changed.

    Attributes:
        tracked: The input rows matched to confirmed tracks this frame, in input order, with
            ``tracker_id`` set; keypoints and ``data`` pass through. Lost tracks are absent.
        started: Ids confirmed this frame (they also appear in ``tracked``).
        ended: Tracks that ended this frame (lost longer than ``lost_buffer_s``).
    """

    tracked: Detections
    started: list[int]
    ended: list[TrackEnd]


class ByteTracker:
    """Multi-object tracker for one camera; feed it every analysed frame in timestamp order.

    Example:
        >>> tracker = ByteTracker(TrackerConfig(min_hits=1))
        >>> out = tracker.update(Detections.from_arrays([[0, 0, 10, 20]], [0.9]), ts=0.0)
        >>> out.tracked.tracker_id.tolist(), out.started
        ([1], [1])
    """

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:  # noqa: B008 (frozen model)
        """Create an empty tracker.

        Args:
            config: Thresholds and times (seconds).
        """
        self.config = config
        self._kf = BoxKalmanFilter()
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Forget every track and the last timestamp (call :meth:`finish` first to report ends).

        Ids keep counting: an id is never reused by the same tracker, even across a reset.
        """
        self._ts: float | None = None
        self._kalman = np.empty((0, STATE_WIDTH), np.float64)
        self._track_id = np.empty(0, np.int64)  # NO_TRACK while unconfirmed
        self._lost = np.empty(0, np.bool_)
        self._hits = np.empty(0, np.int64)
        self._first_ts = np.empty(0, np.float64)
        self._last_ts = np.empty(0, np.float64)

    @property
    def live_track_ids(self) -> list[int]:
        """Ids of the confirmed tracks alive now, tracked or lost."""
        return [int(i) for i in self._track_id[self._track_id != NO_TRACK]]

    def update(self, detections: Detections, ts: float) -> TrackerOutput:
        """Associate one frame's detections with the tracks.

        Args:
            detections: This frame's detections (class-agnostic; rows below ``low_threshold``
                are ignored).
            ts: The frame's timestamp in seconds, non-decreasing from call to call.

        Returns:
            The rows matched to confirmed tracks, the ids started and the tracks ended.

        Raises:
            ValueError: ``ts`` is not finite or is earlier than the previous frame's.
        """
        dt = self._advance_clock(ts)
        cfg = self.config
        ended = self._expire(ts)

        kalman = self._kalman
        n_tracks = kalman.shape[0]
        if n_tracks:
            # A lost track keeps moving but stops growing or shrinking (ByteTrack zeroes vh).
            kalman[self._lost, SIZE_VEL] = 0.0
            self._kf.predict(kalman, dt)
        predicted = self._kf.boxes(kalman)

        conf = detections.confidence
        boxes = detections.xyxy.astype(np.float64)
        is_high = conf >= cfg.high_threshold
        high = np.flatnonzero(is_high)
        low = np.flatnonzero((conf >= cfg.low_threshold) & ~is_high)
        confirmed = self._track_id != NO_TRACK
        matched = np.zeros(n_tracks, np.bool_)

        # Stage 1: high-score detections vs every confirmed track, tracked or lost.
        t1, d1 = self._match(predicted, np.flatnonzero(confirmed), boxes, conf, high, cfg.match_iou,
                             cfg.fuse_score)
        matched[t1] = True
        high_free = np.setdiff1d(high, d1, assume_unique=True)
        # Stage 2: low-score detections vs confirmed tracks that were tracked and are still free.
        t2, d2 = self._match(predicted, np.flatnonzero(confirmed & ~self._lost & ~matched), boxes, conf,
                             low, cfg.low_match_iou, False)
        matched[t2] = True
        # Stage 3: unconfirmed tracks vs the high-score detections left.
        t3, d3 = self._match(predicted, np.flatnonzero(~confirmed), boxes, conf, high_free,
                             cfg.match_iou, cfg.fuse_score)
        matched[t3] = True

        rows = np.concatenate([t1, t2, t3])
        dets = np.concatenate([d1, d2, d3])
        self._kf.update(kalman, rows, xyxy_to_xywh(boxes[dets]))
        self._hits[rows] += 1
        self._last_ts[rows] = ts
        self._lost[rows] = False
        self._lost |= confirmed & ~matched

        started = self._confirm(np.flatnonzero(~confirmed & matched))
        # Unconfirmed tracks must match every frame until confirmed; drop those that did not.
        keep = confirmed | matched
        if not keep.all():
            self._select(keep)
            rows = np.flatnonzero(keep)[...,] if False else rows  # indices below are re-derived
        newborn = np.setdiff1d(high_free, d3, assume_unique=True)
        newborn = newborn[conf[newborn] >= cfg.new_track_threshold]
        if len(newborn):
            started += self._start(boxes[newborn], ts)

        ended += self._expire(ts)
        return TrackerOutput(self._emit(detections, rows, dets, keep), started, ended)

    def finish(self, ts: float) -> list[TrackEnd]:
        """End of stream: end every live confirmed track and empty the tracker.

        Args:
            ts: Timestamp of the end of the stream, seconds (checked for order only; each
                :class:`TrackEnd` carries its track's last matched timestamp).

        Returns:
            The ended tracks, in id order.

        Raises:
            ValueError: ``ts`` is not finite or is earlier than the last frame's.
        """
        self._advance_clock(ts)
        ends = self._ends(self._track_id != NO_TRACK)
        self.reset()
        return ends

    # --- internals -------------------------------------------------------------------------------

    def _advance_clock(self, ts: float) -> float:
        ts = float(ts)
        if not math.isfinite(ts):
            raise ValueError(f"ts must be a finite number of seconds, got {ts}")
        if self._ts is not None and ts < self._ts:
            raise ValueError(f"ts must be non-decreasing: got {ts} after {self._ts}")
        dt = 0.0 if self._ts is None else ts - self._ts
        self._ts = ts
        return dt
