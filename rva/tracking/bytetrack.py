"""ByteTrack (Zhang et al., ECCV 2022) on NumPy: time-aware, batched, with ids only for confirmed tracks.

Per frame, after the Kalman filter moves every track to the frame's timestamp:

1. High-score detections (``>= high_threshold``) are matched to every confirmed track, tracked or
   lost, by IoU (gate ``match_iou``; ranked by IoU x score when ``fuse_score``).
2. Low-score detections (``low_threshold`` .. ``high_threshold``) are matched to the confirmed
   tracks that were tracked (not lost) and are still free, gate ``low_match_iou``. This is
   ByteTrack's point: a person half hidden keeps their track through a dip in score, yet a
   low-score detection alone never starts one. With ``low_score_finds_lost`` lost tracks are
   candidates too (as in Roboflow's ``trackers``), so a person coming out from behind someone
   with a low score is found again before they score high.
3. Unconfirmed tracks are matched to the high-score detections left; an unconfirmed track that
   misses a frame is dropped.
4. High-score detections still free and ``>= new_track_threshold`` start unconfirmed tracks.

A track is confirmed, and only then given an id, after ``min_hits`` consecutive matches. Ids count
from 1 per tracker and are never reused; unconfirmed rows are not emitted at all, so no placeholder
id can be counted by analytics. A confirmed track that misses frames is *lost*: it is not emitted,
but it can be found again for ``lost_buffer_s`` seconds of stream time after its last match (the
same at any frame rate); then it ends, and :class:`TrackEnd` reports it.

Time is the frame's ``ts``: the Kalman filter (:mod:`rva.tracking.kalman`) moves boxes by their
velocity in pixels per second, so sampled or dropped frames and stream gaps predict correctly.

All track state lives in a few arrays (an element, or a Kalman column, per track) and the IoU
matrix is computed once per frame; each stage masks it, so a frame costs about a hundred small
NumPy calls whatever the number of people (~0.1 ms for 5 people, ~0.15 ms for 20 on this box).
The matching stages solve assignments with scipy's ``linear_sum_assignment`` (faster than
``lap.lapjv`` at these sizes, see :func:`rva.tracking.matching.assign`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rva.config import TrackerConfig
from rva.core.detections import NO_TRACK, Detections
from rva.tracking.kalman import SIZE_VEL, STATE_ROWS, BoxKalmanFilter
from rva.tracking.matching import assign, iou_of_corners

IndexArray = npt.NDArray[np.intp]
FloatRows = npt.NDArray[np.float64]


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
        # One column (Kalman) or element per track; unconfirmed tracks have track_id NO_TRACK.
        self._kalman = np.empty((STATE_ROWS, 0), np.float64)
        self._track_id = np.empty(0, np.int64)
        self._lost = np.empty(0, np.bool_)
        self._hits = np.empty(0, np.int64)
        self._first_ts = np.empty(0, np.float64)
        self._last_ts = np.empty(0, np.float64)

    @property
    def live_track_ids(self) -> list[int]:
        """Ids of the confirmed tracks alive now, tracked or lost."""
        return sorted(int(i) for i in self._track_id[self._track_id != NO_TRACK])

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
        any_lost = bool(self._lost.any())
        ended = self._expire(ts) if any_lost else []
        n_tracks = self._kalman.shape[1]
        n_dets = len(detections)
        conf = detections.confidence
        # Detection boxes as rows: corners for the IoU, centre and size for the Kalman update.
        corners = detections.xyxy.astype(np.float64).T
        size = corners[2:4] - corners[0:2]
        xywh = np.concatenate([corners[0:2] + 0.5 * size, size])
        is_high = conf >= cfg.high_threshold
        det_free = np.ones(n_dets, np.bool_)
        track_free = np.ones(n_tracks, np.bool_)
        confirmed = self._track_id != NO_TRACK
        all_confirmed = bool(confirmed.all())
        matches: list[tuple[IndexArray, IndexArray]] = []
        if n_tracks:
            if any_lost:  # a lost track keeps moving but stops growing or shrinking (ByteTrack zeroes vh)
                self._kalman[SIZE_VEL, self._lost] = 0.0
            self._kf.predict(self._kalman, dt)
        if n_tracks and n_dets:
            iou = self._iou(corners, size)
            fits = iou >= cfg.match_iou
            # ByteTrack's fuse_score: among allowed pairs, prefer confident detections.
            similarity = iou * conf if cfg.fuse_score else iou
            if any_lost and cfg.lost_similarity < 1.0:
                # A lost track's prediction drifts; without this it takes a visible neighbour's box and
                # the neighbour's track then takes the hidden person's: two id switches.
                similarity = similarity.copy()
                similarity[self._lost] *= cfg.lost_similarity
            cost = 1.0 - similarity
            # 1. High-score detections vs every confirmed track, tracked or lost.
            matches.append(_stage(cost, fits, None if all_confirmed else confirmed, is_high, track_free,
                                  det_free))
            # 2. Low-score detections vs confirmed tracks that were tracked (or, by choice, lost) and
            #    are still free.
            is_low = (conf >= cfg.low_threshold) ^ is_high  # low_threshold < high_threshold
            if is_low.any():
                candidates = confirmed & track_free
                if any_lost and not cfg.low_score_finds_lost:
                    candidates &= ~self._lost
                matches.append(_stage(1.0 - iou, iou >= cfg.low_match_iou, candidates, is_low,
                                      track_free, det_free))
            # 3. Unconfirmed tracks vs the high-score detections left.
            if not all_confirmed:
                matches.append(_stage(cost, fits, ~confirmed, is_high & det_free, track_free, det_free))

        id_of = np.full(n_dets, NO_TRACK, np.int64)  # emitted id per detection
        started: list[int] = []
        if matches:
            tracks = np.concatenate([m[0] for m in matches])
            dets = np.concatenate([m[1] for m in matches])
            self._kf.update(self._kalman, tracks, xywh[:, dets].T)
            self._hits[tracks] += 1
            self._last_ts[tracks] = ts
            self._lost[tracks] = False
            if not all_confirmed:
                # An unconfirmed track with min_hits was matched now (it had fewer before).
                ready = np.flatnonzero((self._hits >= cfg.min_hits) & ~confirmed)
                if len(ready):
                    started = self._confirm(ready)
            id_of[dets] = self._track_id[tracks]
        if n_tracks:
            self._lost |= confirmed & track_free
            if not all_confirmed:
                # Unconfirmed tracks must match every frame until confirmed; drop those that did not.
                track_free &= ~confirmed
                if track_free.any():
                    self._select(~track_free)

        # Unmatched high-score detections scoring at least new_track_threshold start tracks.
        det_free &= conf >= max(cfg.new_track_threshold, cfg.high_threshold)
        newborn = np.flatnonzero(det_free)
        if len(newborn):
            new_ids = self._start(xywh[:, newborn].T, ts)
            id_of[newborn] = new_ids
            started += new_ids[new_ids != NO_TRACK].tolist()
        if dt > cfg.lost_buffer_s and self._lost.any():
            # Only a gap longer than the buffer can expire a track that was tracked a frame ago.
            ended += self._expire(ts)
        return TrackerOutput(_tag(detections, id_of), started, ended)

    def finish(self, ts: float) -> list[TrackEnd]:
        """End of stream: end every live confirmed track, then empty the tracker as :meth:`reset` does.

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

    def _iou(self, det_corners: FloatRows, det_size: FloatRows) -> FloatRows:
        """IoU of every predicted track box with every detection (``(n_tracks, n_dets)``)."""
        state = self._kalman
        half = np.maximum(state[2:4], 1.0)  # predicted (w, h), >= 1 px so no union is 0
        half *= 0.5
        track_corners = np.concatenate([state[0:2] - half, state[0:2] + half])
        det_area = det_size[0] * det_size[1]
        np.maximum(det_area, 0.0, out=det_area)
        return iou_of_corners(track_corners, 4.0 * half[0] * half[1], det_corners, det_area)

    def _expire(self, ts: float) -> list[TrackEnd]:
        """Remove lost tracks unmatched for longer than the buffer; report the confirmed ones."""
        expired = self._lost & (ts - self._last_ts > self.config.lost_buffer_s)
        if not expired.any():
            return []
        ends = self._ends(expired)
        self._select(~expired)
        return ends

    def _ends(self, rows: npt.NDArray[np.bool_]) -> list[TrackEnd]:
        rows = rows & (self._track_id != NO_TRACK)
        order = np.argsort(self._track_id[rows], kind="stable")
        return [
            TrackEnd(int(i), float(f), float(last), int(h))
            for i, f, last, h in zip(
                self._track_id[rows][order], self._first_ts[rows][order],
                self._last_ts[rows][order], self._hits[rows][order], strict=True,
            )
        ]

    def _confirm(self, ready: IndexArray) -> list[int]:
        """Give the next ids to the unconfirmed tracks ``ready``; return the new ids."""
        ids = np.arange(self._next_id, self._next_id + len(ready), dtype=np.int64)
        self._next_id += len(ready)
        self._track_id[ready] = ids
        return ids.tolist()

    def _start(self, xywh: npt.NDArray[np.float64], ts: float) -> npt.NDArray[np.int64]:
        """Append tracks for new ``(n, 4)`` boxes ``(cx, cy, w, h)``; return their ids (or NO_TRACK)."""
        n = xywh.shape[0]
        ids = np.full(n, NO_TRACK, np.int64)
        if self.config.min_hits <= 1:
            ids[:] = np.arange(self._next_id, self._next_id + n)
            self._next_id += n
        self._kalman = np.concatenate([self._kalman, self._kf.initiate(xywh)], axis=1)
        self._track_id = np.concatenate([self._track_id, ids])
        self._lost = np.concatenate([self._lost, np.zeros(n, np.bool_)])
        self._hits = np.concatenate([self._hits, np.ones(n, np.int64)])
        self._first_ts = np.concatenate([self._first_ts, np.full(n, ts)])
        self._last_ts = np.concatenate([self._last_ts, np.full(n, ts)])
        return ids

    def _select(self, keep: npt.NDArray[np.bool_]) -> None:
        """Keep only the tracks in ``keep``."""
        self._kalman = self._kalman[:, keep]
        self._track_id = self._track_id[keep]
        self._lost = self._lost[keep]
        self._hits = self._hits[keep]
        self._first_ts = self._first_ts[keep]
        self._last_ts = self._last_ts[keep]


def _stage(
    cost: npt.NDArray[np.float64],
    fits: npt.NDArray[np.bool_],
    tracks: npt.NDArray[np.bool_] | None,
    dets: npt.NDArray[np.bool_],
    track_free: npt.NDArray[np.bool_],
    det_free: npt.NDArray[np.bool_],
) -> tuple[IndexArray, IndexArray]:
    """Match ``tracks`` (None: all) to ``dets`` among the pairs that ``fits``; mark both not free.

    The whole (tracks x detections) matrices are masked rather than sliced: at tracking sizes a
    few boolean operations cost less than gathering sub-matrices.
    """
    valid = fits & dets
    if tracks is not None:
        valid &= tracks[:, None]
    r, c = assign(cost, valid)
    track_free[r] = False
    det_free[c] = False
    return r, c


def _tag(detections: Detections, id_of: npt.NDArray[np.int64]) -> Detections:
    """Select the rows that carry an id, in input order, with ``tracker_id`` set (all else passes)."""
    rows = id_of != NO_TRACK
    if rows.all():  # every row tracked: one copy instead of two
        return detections.with_tracker_id(id_of)
    return detections[rows].with_tracker_id(id_of[rows])
