"""Detector + ByteTrack on real vtest.avi frames: walking people keep their ids."""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pytest

from rva.config import OnnxDetectorConfig
from rva.detect import create_detector
from rva.tracking import ByteTracker

pytestmark = pytest.mark.timeout(300)

FRAMES = 150  # 15 s of video


@pytest.fixture(scope="module")
def tracks(vtest_path: Path) -> dict[int, list[tuple[int, np.ndarray]]]:
    """track id -> [(frame index, foot point)] over the first FRAMES frames."""
    detector, tracker = create_detector(OnnxDetectorConfig()), ByteTracker()
    out: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
    with av.open(str(vtest_path)) as video:
        for i, frame in enumerate(video.decode(video=0)):
            if i == FRAMES:
                break
            result = tracker.update(detector.detect([frame.to_ndarray(format="bgr24")])[0], float(frame.time))
            for tid, foot in zip(result.tracked.tracker_id, result.tracked.anchors, strict=True):
                out[int(tid)].append((i, foot))
    detector.close()
    return out


def _longest_run(frames: list[int]) -> int:
    best = run = 1
    for a, b in itertools.pairwise(frames):
        run = run + 1 if b - a <= 2 else 1  # a single missed frame does not break a run
        best = max(best, run)
    return best


def test_walking_people_keep_one_id_for_30_frames(tracks: dict[int, list[tuple[int, np.ndarray]]]) -> None:
    walkers = []
    for tid, seen in tracks.items():
        idx = [i for i, _ in seen]
        feet = np.stack([f for _, f in seen])
        travelled = float(np.linalg.norm(feet[-1] - feet[0]))
        if _longest_run(idx) >= 30 and travelled > 40:
            walkers.append((tid, len(idx), travelled))
    # In the first 15 s at least three people walk across the scene (checked by eye on frames 0-150).
    assert len(walkers) >= 3, walkers


def test_ids_are_positive_unique_and_never_placeholders(tracks: dict[int, list[tuple[int, np.ndarray]]]) -> None:
    assert tracks and min(tracks) >= 1
    for seen in tracks.values():
        frames = [i for i, _ in seen]
        assert len(frames) == len(set(frames)), "one id on two boxes in the same frame"
