"""Analytics on real pedestrian trajectories: TUD-Stadtmitte ground truth (MOT15), clean and detector-noisy.

Ten people walk across a 640x480 street scene for 7.1 s at 25 fps. From the annotation, exactly one
of them crosses x = 320 left to right (id 2) and one right to left (id 7); five visits touch the
left half. The noisy versions add the box jitter, misses under occlusion and false positives of
:func:`rva.evaluation.perturb`; false positives carry ``NO_TRACK`` ids, and every true box keeps its
ground-truth id (a perfect tracker), so any miscount is the analytics' own.
"""

import numpy as np
import pytest

from rva.analytics import LineCounter, ZoneMonitor, side_of_line
from rva.config import LineConfig, ZoneConfig
from rva.core.detections import Detections
from rva.evaluation import NOISE_LEVELS, perturb, tud_sequence

# Drawn top to bottom: its right is the screen's left, so walking left to right is "in".
LINE = LineConfig(name="middle", start=(320, 150), end=(320, 420), min_side_s=0.3)
ZONE = ZoneConfig(name="left", polygon=[(0, 150), (320, 150), (320, 420), (0, 420)],
                  enter_inertia_s=0.3, exit_inertia_s=1.0)


@pytest.fixture(scope="module")
def stadtmitte():
    return tud_sequence("TUD-Stadtmitte")


def _truth(seq) -> dict:
    """Crossings and zone visits read off the annotation directly: first vs last side, inside runs."""
    paths: dict[int, list[tuple[float, float]]] = {}
    for frame in seq.as_tracks():
        for tid, (x, y) in zip(frame.tracker_id.tolist(), frame.anchors.tolist(), strict=True):
            paths.setdefault(tid, []).append((x, y))
    n_in = n_out = visits = 0
    for pts in paths.values():
        side = np.sign(side_of_line(np.array(pts), LINE.start, LINE.end))
        n_in += int(side[0] > 0 > side[-1])
        n_out += int(side[0] < 0 < side[-1])
        inside = np.array([0 <= x < 320 and 150 <= y < 420 for x, y in pts])
        visits += int(np.count_nonzero(np.diff(inside.astype(int), prepend=0) == 1))
    return {"in": n_in, "out": n_out, "visits": visits}


def _count(frames: list[Detections], step: int) -> dict:
    line, zone = LineCounter(LINE, "tud"), ZoneMonitor(ZONE, "tud")
    for k in range(0, len(frames), step):
        line.update(frames[k], k / 25.0)
        zone.update(frames[k], k / 25.0)
    return {"in": line.in_count, "out": line.out_count, "visits": zone.visits, "peak": zone.peak,
            "mean_occupancy": zone.mean_occupancy()}


def _naive_crossings(frames: list[Detections]) -> int:
    """What a counter without hysteresis or id filtering reports: every side change of an id."""
    last: dict[int, float] = {}
    count = 0
    for frame in frames:
        sides = np.sign(side_of_line(frame.anchors, LINE.start, LINE.end))
        for tid, s in zip(frame.tracker_id.tolist(), sides.tolist(), strict=True):
            count += int(tid in last and s != 0 and s != last[tid])
            last[tid] = s or last.get(tid, s)
    return count


def test_ground_truth_scene(stadtmitte):
    assert _truth(stadtmitte) == {"in": 1, "out": 1, "visits": 5}


@pytest.mark.parametrize("step", [1, 2, 5], ids=["25fps", "12.5fps", "5fps"])
def test_clean_trajectories_at_any_frame_rate(stadtmitte, step):
    got = _count(stadtmitte.as_tracks(), step)
    assert {k: got[k] for k in ("in", "out", "visits")} == _truth(stadtmitte)
    assert got["peak"] == 3


@pytest.mark.parametrize("step", [1, 2, 5], ids=["25fps", "12.5fps", "5fps"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_noisy_detections_count_what_really_happened(stadtmitte, level, seed, step):
    noisy = [d.with_tracker_id(d.data["gt_id"]) for d in perturb(stadtmitte, NOISE_LEVELS[level], seed)]
    clean = _count(stadtmitte.as_tracks(), 1)
    got = _count(noisy, step)
    assert {k: got[k] for k in ("in", "out", "visits", "peak")} == {**_truth(stadtmitte), "peak": 3}
    assert got["mean_occupancy"] == pytest.approx(clean["mean_occupancy"], rel=0.1)
    if step == 1:  # the same frames through a counter without hysteresis: flicker and id -1 counted
        assert _naive_crossings(noisy) > 2 * (clean["in"] + clean["out"])
