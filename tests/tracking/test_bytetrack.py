"""ByteTracker behaviour, scenario by scenario: confirmation, low scores, lost buffer, crossings, API."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from rva.config import TrackerConfig
from rva.core.detections import NO_TRACK, Detections
from rva.tracking import ByteTracker, TrackEnd, TrackerOutput

W, H = 50.0, 120.0  # a person's box
#: The score scenarios below are written against ByteTrack's paper thresholds (high 0.5, new track 0.6);
#: the shipped defaults are lower, to fit the default detector's scores (see TrackerConfig).
CLASSIC = TrackerConfig(high_threshold=0.5, new_track_threshold=0.6)


def box(x: float, y: float) -> list[float]:
    """The box of a person whose top-left corner is at (x, y)."""
    return [x, y, x + W, y + H]


def frame(boxes: Sequence[Sequence[float]], scores: Sequence[float], person: Sequence[int] | None = None) -> Detections:
    """Detections with ``data["person"]`` naming who each row is (passed through by the tracker)."""
    n = len(boxes)
    who = np.arange(n) if person is None else np.asarray(person)
    return Detections.from_arrays(np.reshape(boxes, (n, 4)), scores, data={"person": who})


def ids_of(out: TrackerOutput) -> dict[int, int]:
    """Emitted id per person in one frame."""
    return dict(zip(out.tracked.data["person"].tolist(), out.tracked.tracker_id.tolist(), strict=True))


# --- confirmation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("min_hits", [1, 2, 3, 5])
def test_no_id_before_min_hits_then_id_1(min_hits: int) -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=min_hits))
    for i in range(8):
        out = tracker.update(frame([box(100 + 5 * i, 200)], [0.9]), ts=i / 10)
        if i + 1 < min_hits:
            assert len(out.tracked) == 0 and out.started == []
        else:
            assert out.tracked.tracker_id.tolist() == [1]
            assert out.started == ([1] if i + 1 == min_hits else [])


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        # A miss before confirmation starts the count again; the id is still the first one.
        ([1, 1, 0, 1, 1, 1, 1], [None, None, None, None, None, 1, 1]),
        ([1, 0, 1, 0, 1, 1, 1], [None, None, None, None, None, None, 1]),
        ([1, 1, 1, 0, 1], [None, None, 1, None, 1]),  # once confirmed, a miss only makes it lost
    ],
)
def test_unconfirmed_track_must_match_consecutively(seen: list[int], expected: list[int | None]) -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=3))
    for i, (s, want) in enumerate(zip(seen, expected, strict=True)):
        dets = frame([box(100 + 5 * i, 200)], [0.9]) if s else frame([], [])
        assert ids_of(tracker.update(dets, ts=i / 10)).get(0) == want


# --- two-stage association ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        # A dip in score (partial occlusion) is bridged by the low-score stage: same id, still emitted.
        ([0.9, 0.9, 0.9, 0.3, 0.2, 0.3, 0.9, 0.9], [None, None, 1, 1, 1, 1, 1, 1]),
        ([0.9, 0.9, 0.9, 0.45, 0.45, 0.45, 0.45, 0.45], [None, None, 1, 1, 1, 1, 1, 1]),
        # Below low_threshold a detection is ignored: the track is lost (not emitted), then found again.
        ([0.9, 0.9, 0.9, 0.05, 0.05, 0.9, 0.9], [None, None, 1, None, None, 1, 1]),
        # Low scores never start a track, nor confirm one.
        ([0.3, 0.3, 0.9, 0.9, 0.9], [None, None, None, None, 1]),
        ([0.9, 0.3, 0.9, 0.9, 0.9], [None, None, None, None, 1]),
    ],
)
def test_low_score_detections_keep_but_never_start_a_track(scores: list[float], expected: list[int | None]) -> None:
    tracker = ByteTracker(CLASSIC)
    for i, (score, want) in enumerate(zip(scores, expected, strict=True)):
        assert ids_of(tracker.update(frame([box(100 + 6 * i, 200)], [score]), ts=i / 10)).get(0) == want


@pytest.mark.parametrize(
    ("finds_lost", "expected"),
    [
        # Missed once (lost), then seen at a low score behind someone: ByteTrack waits for a high score.
        (False, [None, None, 1, None, None, None, 1]),
        (True, [None, None, 1, None, 1, 1, 1]),
    ],
)
def test_low_score_finds_lost_option(finds_lost: bool, expected: list[int | None]) -> None:
    tracker = ByteTracker(CLASSIC.model_copy(update={"low_score_finds_lost": finds_lost}))
    scores = [0.9, 0.9, 0.9, None, 0.3, 0.3, 0.9]
    for i, (score, want) in enumerate(zip(scores, expected, strict=True)):
        dets = frame([], []) if score is None else frame([box(100 + 6 * i, 200)], [score])
        assert ids_of(tracker.update(dets, ts=i / 10)).get(0) == want


@pytest.mark.parametrize("score", [0.15, 0.3, 0.49, 0.55])  # 0.55: high, but below new_track_threshold 0.6
def test_a_weak_detection_alone_never_starts_a_track(score: float) -> None:
    tracker = ByteTracker(CLASSIC)
    for i in range(30):
        out = tracker.update(frame([box(100 + 4 * i, 200)], [score]), ts=i / 10)
        assert len(out.tracked) == 0 and out.started == []
    assert tracker.live_track_ids == []


# --- lost buffer in seconds -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fps", "gap_s", "same_id"),
    [
        (10.0, 1.0, True),
        (10.0, 2.5, True),
        (10.0, 3.5, False),
        (5.0, 2.6, True),  # the same seconds at another frame rate
        (5.0, 4.0, False),
        (30.0, 2.0, True),
        (30.0, 3.4, False),
    ],
)
def test_occlusion_shorter_than_lost_buffer_keeps_the_id(fps: float, gap_s: float, same_id: bool) -> None:
    speed = 40.0  # px/s, walking behind a pillar
    tracker = ByteTracker(TrackerConfig(lost_buffer_s=3.0))
    seen_until, back_at = 2.0, 2.0 + gap_s
    ids, ended = set(), []
    n = math.ceil((back_at + 1.5) * fps)
    for i in range(n):
        ts = i / fps
        visible = ts < seen_until or ts >= back_at
        dets = frame([box(100 + speed * ts, 200)], [0.9]) if visible else Detections.empty()
        out = tracker.update(dets, ts)
        ids |= set(out.tracked.tracker_id.tolist())
        ended += out.ended
    last_seen = (math.ceil(seen_until * fps) - 1) / fps
    if same_id:
        assert ids == {1} and ended == []
    else:
        assert ids == {1, 2}
        assert ended == [TrackEnd(1, 0.0, pytest.approx(last_seen), math.ceil(seen_until * fps))]


def test_lost_tracks_are_not_emitted_and_end_once_after_the_buffer() -> None:
    tracker = ByteTracker(TrackerConfig(lost_buffer_s=1.0))
    for i in range(5):
        tracker.update(frame([box(100, 200)], [0.9]), ts=i * 0.1)
    ends: list[TrackEnd] = []
    for i in range(5, 40):
        out = tracker.update(Detections.empty(), ts=i * 0.1)
        assert len(out.tracked) == 0
        ends += out.ended
        if i * 0.1 - 0.4 <= 1.0 + 1e-9:
            assert tracker.live_track_ids == [1]
    assert ends == [TrackEnd(1, 0.0, pytest.approx(0.4), 5)]
    assert tracker.live_track_ids == []


# --- crossings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fps", "speed", "dy", "occlusion"),
    [
        (10.0, 100.0, 0.0, "none"),  # same depth, boxes fully overlap as they pass
        (10.0, 100.0, 15.0, "hidden"),  # B walks behind A: not detected while covered
        (10.0, 100.0, 15.0, "low"),  # B half seen behind A: low scores
        (25.0, 80.0, 0.0, "hidden"),
        (5.0, 120.0, 10.0, "hidden"),  # a sampled stream: 24 px per frame
        (10.0, 150.0, -20.0, "low"),
    ],
)
def test_two_people_crossing_keep_their_ids(fps: float, speed: float, dy: float, occlusion: str) -> None:
    tracker = ByteTracker()
    per_person: dict[int, set[int]] = {0: set(), 1: set()}
    for i in range(int(8 * fps)):
        ts = i / fps
        xa, xb = 100 + speed * ts, 100 + 6.0 * 100 - speed * ts
        boxes, scores, who = [box(xa, 300)], [0.9], [0]
        covered = abs(xa - xb) < W
        if not (covered and occlusion == "hidden"):
            boxes.append(box(xb, 300 + dy))
            scores.append(0.3 if covered and occlusion == "low" else 0.85)
            who.append(1)
        order = np.random.default_rng(i).permutation(len(boxes))  # detector order means nothing
        out = tracker.update(frame(np.asarray(boxes)[order], np.asarray(scores)[order], np.asarray(who)[order]), ts)
        for person, track in ids_of(out).items():
            per_person[person].add(track)
    assert per_person == {0: {1}, 1: {2}}


# --- API ------------------------------------------------------------------------------------------


def test_timestamps_must_not_go_backwards() -> None:
    tracker = ByteTracker()
    tracker.update(frame([box(0, 0)], [0.9]), ts=1.0)
    tracker.update(frame([box(0, 0)], [0.9]), ts=1.0)  # a repeated timestamp is fine
    with pytest.raises(ValueError, match="non-decreasing"):
        tracker.update(frame([box(0, 0)], [0.9]), ts=0.9)
    with pytest.raises(ValueError, match="finite"):
        tracker.update(Detections.empty(), ts=float("nan"))
    with pytest.raises(ValueError, match="non-decreasing"):
        tracker.finish(0.5)


def test_empty_frames() -> None:
    tracker = ByteTracker()
    out = tracker.update(Detections.empty(), ts=0.0)
    assert len(out.tracked) == 0 and out.tracked.xyxy.shape == (0, 4) and out.tracked.tracker_id.dtype == np.int64
    assert out.started == [] and out.ended == []
    assert tracker.finish(1.0) == []


def test_rows_pass_through_in_input_order_with_keypoints_and_data() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=1))
    rng = np.random.default_rng(0)
    first: dict[int, int] = {}
    for i in range(6):
        order = rng.permutation(3)
        boxes = np.array([box(100 + 3 * i, 100), box(300, 100 + 2 * i), box(500 - 3 * i, 300)])[order]
        keypoints = rng.random((3, 17, 3)).astype(np.float32)
        fallen = np.array([False, True, False])[order]
        dets = Detections.from_arrays(boxes, [0.9, 0.8, 0.95], keypoints=keypoints,
                                      data={"fallen": fallen, "person": order})
        out = tracker.update(dets, ts=i / 10)
        np.testing.assert_array_equal(out.tracked.xyxy, dets.xyxy)  # the detection boxes, input order
        np.testing.assert_array_equal(out.tracked.keypoints, keypoints)
        np.testing.assert_array_equal(out.tracked.flag("fallen"), fallen)
        first = first or ids_of(out)  # new tracks take ids in input order
        assert ids_of(out) == first and sorted(first.values()) == [1, 2, 3]


def test_finish_ends_confirmed_tracks_and_ids_are_never_reused() -> None:
    tracker = ByteTracker()
    for i in range(4):
        tracker.update(frame([box(100, 100), box(400, 100)], [0.9, 0.9]), ts=i * 0.1)
    tracker.update(frame([box(100, 100), box(400, 100), box(700, 100)], [0.9, 0.9, 0.9]), ts=0.4)
    assert tracker.live_track_ids == [1, 2]  # the third is not confirmed yet
    assert tracker.finish(0.5) == [TrackEnd(1, 0.0, pytest.approx(0.4), 5), TrackEnd(2, 0.0, pytest.approx(0.4), 5)]
    assert tracker.live_track_ids == []
    for i in range(3):
        out = tracker.update(frame([box(100, 100)], [0.9]), ts=10.0 + i * 0.1)
    assert out.started == [3] and out.tracked.tracker_id.tolist() == [3]
    tracker.reset()
    for i in range(3):
        out = tracker.update(frame([box(100, 100)], [0.9]), ts=i * 0.1)  # time may restart after reset
    assert out.started == [4]


def test_ids_are_sequential_and_never_a_placeholder() -> None:
    rng = np.random.default_rng(1)
    tracker = ByteTracker()
    started: list[int] = []
    for i in range(200):
        n = int(rng.integers(0, 8))
        xy = rng.uniform(0, 600, (n, 2))
        dets = Detections.from_arrays(np.hstack([xy, xy + np.array([W, H])]), rng.uniform(0.05, 1.0, n))
        out = tracker.update(dets, ts=i / 10)
        started += out.started
        ids = out.tracked.tracker_id
        assert (ids != NO_TRACK).all() and (ids >= 1).all() and len(set(ids.tolist())) == len(ids)
        assert set(ids.tolist()) <= set(started)
    assert started == list(range(1, len(started) + 1))
