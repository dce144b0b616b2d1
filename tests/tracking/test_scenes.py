"""Whole scenes: synthetic walkers through the detector noise model, scored by TrackEval."""

from __future__ import annotations

import numpy as np
import pytest

from rva.config import TrackerConfig
from rva.evaluation.mot import NOISE_LEVELS, MotSequence, perturb, score_tracking
from rva.tracking import ByteTracker
from rva.tracking.synthetic import walking_people

SIZE = (1280, 720)


def _scene(n_people: int, seconds: float, fps: float, seed: int) -> MotSequence:
    truth = walking_people(n_people, seconds, fps, SIZE, seed=seed)
    return MotSequence("walkers", fps, SIZE, tuple(f.xyxy for f in truth), tuple(f.tracker_id for f in truth))


@pytest.mark.parametrize("finds_lost", [False, True])
@pytest.mark.parametrize("fps", [5.0, 10.0, 25.0])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_walkers_at_low_noise_keep_one_id_each(fps: float, seed: int, finds_lost: bool) -> None:
    # 8 people over 30 s: crossings, stops, partial occlusions (misses and score dips), false positives.
    gt = _scene(8, 30.0, fps, seed)
    tracker = ByteTracker(TrackerConfig(low_score_finds_lost=finds_lost))
    tracks = [tracker.update(dets, t / fps).tracked for t, dets in enumerate(perturb(gt, NOISE_LEVELS["low"], seed))]
    scores = score_tracking(gt, tracks)
    assert scores.idsw == 0
    assert len({int(i) for f in tracks for i in f.tracker_id}) == gt.num_ids  # no fragments, no ghosts
    assert scores.idf1 > 0.95


@pytest.mark.parametrize(("n_people", "seconds", "fps"), [(5, 10.0, 10.0), (40, 20.0, 25.0)])
def test_walking_people_is_deterministic_and_inside_the_frame(n_people: int, seconds: float, fps: float) -> None:
    a = walking_people(n_people, seconds, fps, SIZE, seed=7)
    b = walking_people(n_people, seconds, fps, SIZE, seed=7)
    assert len(a) == round(seconds * fps)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa.xyxy, fb.xyxy)
        np.testing.assert_array_equal(fa.tracker_id, fb.tracker_id)
        assert (fa.xyxy[:, :2] >= 0).all() and (fa.xyxy[:, 2] <= SIZE[0]).all() and (fa.xyxy[:, 3] <= SIZE[1]).all()
    ids = np.unique(np.concatenate([f.tracker_id for f in a]))
    assert ids.min() >= 1 and ids.max() <= n_people
