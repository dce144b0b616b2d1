"""The shipped TrackerConfig fits the shipped detector: its people score 0.25-0.6, and every one is tracked."""

from __future__ import annotations

import numpy as np
import pytest

from rva.config import OnnxDetectorConfig, TrackerConfig
from rva.core.detections import Detections
from rva.tracking import ByteTracker

CLASSIC = TrackerConfig(high_threshold=0.5, new_track_threshold=0.6)  # ByteTrack's paper thresholds


def _walker(scores: list[float | None], x0: float = 100.0) -> list[Detections]:
    """One person walking right 6 px a frame (10 fps), detected at these scores (None: missed)."""
    return [
        Detections.empty() if s is None else Detections.from_arrays([[x0 + 6 * i, 200, x0 + 6 * i + 40, 300]], [s])
        for i, s in enumerate(scores)
    ]


def test_every_box_the_default_detector_reports_is_first_stage() -> None:
    assert TrackerConfig().high_threshold <= OnnxDetectorConfig().confidence


@pytest.mark.parametrize(
    ("config", "tracked"),
    [(TrackerConfig(), True), (CLASSIC, False)],
    ids=["defaults", "paper thresholds"],
)
def test_a_person_the_default_detector_scores_low_is_tracked(config: TrackerConfig, tracked: bool) -> None:
    # The default detector's usual scores for a small person in a store (measured: median ~0.4).
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.3, 0.48, 40).tolist()
    tracker = ByteTracker(config)
    ids = [tracker.update(d, i / 10).tracked.tracker_id.tolist() for i, d in enumerate(_walker(scores))]
    assert (ids[-1] == [1]) == tracked
    if tracked:
        assert {i for f in ids for i in f} == {1} and sum(1 for f in ids if f) >= 40 - config.min_hits


@pytest.mark.parametrize(("hidden_s", "same_id"), [(5.0, True), (7.0, False)])
def test_default_lost_buffer_bridges_a_shopper_hidden_for_seconds(hidden_s: float, same_id: bool) -> None:
    # Standing still (browsing), hidden behind someone for hidden_s, then seen again on the same spot.
    hidden = round(hidden_s * 10)
    scores: list[float | None] = [0.4] * 10 + [None] * hidden + [0.4] * 10
    frames = [
        Detections.empty() if s is None else Detections.from_arrays([[100, 200, 140, 300]], [s]) for s in scores
    ]
    tracker = ByteTracker()
    ids = [tracker.update(d, i / 10).tracked.tracker_id.tolist() for i, d in enumerate(frames)]
    assert ids[9] == [1]
    assert (ids[-1] == [1]) == same_id
