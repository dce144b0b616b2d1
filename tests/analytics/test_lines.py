import numpy as np
import pytest
from analytics_scenes import FPS, Scene, after, brief, dets, run, steps, walk

from rva.analytics import LineCounter, segment_crossings, side_of_line
from rva.config import LineConfig
from rva.core.detections import NO_TRACK, Detections
from rva.core.events import Direction

# Horizontal, drawn left to right: its right side is BELOW it on screen, so walking up the image is "in".
CFG = LineConfig(name="door", start=(100.0, 200.0), end=(300.0, 200.0), min_side_s=0.3)
BELOW, ABOVE = (200.0, 260.0), (200.0, 140.0)
NEAR_BELOW, NEAR_ABOVE = (200.0, 205.0), (200.0, 195.0)

# name, tracks (walk keys, or ("steps", keys)), ends, expected (direction, track, crossing ts)
CASES = [
    ("walks up across: in, dated when the foot crossed", {1: [(0, (200, 300)), (2, (200, 100))]}, {},
     [("in", 1, 1.0)]),
    ("walks down across: out", {1: [(0, (200, 100)), (2, (200, 300))]}, {}, [("out", 1, 1.0)]),
    ("one-frame flicker across: nothing",
     {1: ("steps", [(0, NEAR_BELOW), (1.0, NEAR_ABOVE), (after(1.0), NEAR_BELOW)])}, {}, []),
    ("on the other side 0.2 s < min_side_s: nothing",
     {1: ("steps", [(0, NEAR_BELOW), (1.0, NEAR_ABOVE), (1.2, NEAR_BELOW)])}, {}, []),
    ("crosses, back 0.2 s later, across again: one in, at the last crossing",
     {1: [(0, BELOW), (0.8, BELOW), (1.0, ABOVE), (1.2, BELOW), (1.4, ABOVE)]}, {}, [("in", 1, 1.3)]),
    ("crosses, stays, crosses back, stays: in then out",
     {1: [(0, (200, 300)), (2, (200, 100)), (4, (200, 100)), (6, (200, 300))]}, {},
     [("in", 1, 1.0), ("out", 1, 5.0)]),
    ("crosses beyond the segment's end: nothing", {1: [(0, (400, 300)), (2, (400, 100))]}, {}, []),
    ("walks around the end, then back through the segment: one out",
     {1: [(0, (200, 300)), (1, (400, 300)), (2, (400, 100)), (3, (200, 100)), (5, (200, 300))]}, {},
     [("out", 1, 4.0)]),
    ("track ends before min_side_s: nothing", {1: [(0, (200, 300)), (2, (200, 100))]}, {1: 1.2}, []),
    ("two people cross together: two counts",
     {1: [(0, (150, 300)), (2, (150, 100))], 2: [(0, (250, 100)), (4, (250, 300))]}, {},
     [("in", 1, 1.0), ("out", 2, 2.0)]),
    ("unconfirmed id -1 crossing: nothing", {NO_TRACK: [(0, (200, 300)), (2, (200, 100))]}, {}, []),
]


def _scene(tracks: dict, ends: dict) -> Scene:
    paths = {
        tid: steps(keys[1]) if isinstance(keys, tuple) else walk(keys) for tid, keys in tracks.items()
    }
    return Scene(paths, duration=8.0, ends=ends)


@pytest.mark.parametrize("fps", FPS)
@pytest.mark.parametrize(("name", "tracks", "ends", "expected"), CASES, ids=[c[0] for c in CASES])
def test_line_scripts(name, tracks, ends, expected, fps):
    line = LineCounter(CFG, "cam")
    events = run(line.update, _scene(tracks, ends), fps)
    got = [(str(e.direction), e.track_id, e.ts) for e in events]
    assert [g[:2] for g in got] == [x[:2] for x in expected]
    for (_, _, ts), (_, _, ets) in zip(got, expected, strict=True):
        assert ts == pytest.approx(ets, abs=1e-6)
    assert line.in_count == sum(e.direction is Direction.IN for e in events)
    assert line.out_count == sum(e.direction is Direction.OUT for e in events)
    assert all(e.line == "door" and e.camera == "cam" for e in events)


@pytest.mark.parametrize(("name", "tracks", "ends", "expected"), CASES, ids=[c[0] for c in CASES])
def test_line_frame_rate_does_not_matter(name, tracks, ends, expected):
    results = [brief(run(LineCounter(CFG, "cam").update, _scene(tracks, ends), fps)) for fps in FPS]
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize(
    ("start", "end", "walk_from", "walk_to", "direction"),
    [
        # Drawn left to right: right = below on screen. Walking up the image is "in".
        ((100, 200), (300, 200), (200, 300), (200, 100), "in"),
        # Drawn right to left: right = above on screen. Walking up the image is "out".
        ((300, 200), (100, 200), (200, 300), (200, 100), "out"),
        # Drawn top to bottom: facing down the screen, the right hand is on the screen's left.
        ((200, 100), (200, 300), (100, 200), (300, 200), "in"),
        ((200, 100), (200, 300), (300, 200), (100, 200), "out"),
        # Diagonal, drawn towards the bottom right: (0, 400) is on its right.
        ((0, 0), (400, 400), (100, 300), (300, 100), "in"),
    ],
)
def test_in_is_right_to_left_on_screen(start, end, walk_from, walk_to, direction):
    line = LineCounter(LineConfig(name="l", start=start, end=end, min_side_s=0.3), "cam")
    events = run(line.update, Scene({1: walk([(0, walk_from), (2, walk_to)])}, duration=4.0), 10.0)
    assert [str(e.direction) for e in events] == [direction]
    # "in" walks start on the right of start->end, i.e. where side_of_line is positive.
    assert (side_of_line(np.array([walk_from]), start, end)[0] > 0) == (direction == "in")


def test_min_side_zero_counts_every_crossing():
    line = LineCounter(CFG.model_copy(update={"min_side_s": 0.0}), "cam")
    scene = _scene({1: ("steps", [(0, NEAR_BELOW), (1.0, NEAR_ABOVE), (after(1.0), NEAR_BELOW)])}, {})
    events = run(line.update, scene, 10.0)
    assert [str(e.direction) for e in events] == ["in", "out"]


def test_crossing_waits_for_an_observation_after_min_side_s():
    # Crossed at 1.0, then unseen: nothing yet. Seen on the new side at 3.0: counted, dated 1.0.
    line = LineCounter(CFG, "cam")
    assert line.update(dets({1: (200, 210)}), 0.9) == []
    assert line.update(dets({1: (200, 190)}), 1.1) == []
    assert line.update(Detections.empty(), 2.0) == []
    events = line.update(dets({1: (200, 150)}), 3.0)
    assert [(str(e.direction), round(e.ts, 6)) for e in events] == [("in", 1.0)]
    assert line.side_of(1) == -1


@pytest.mark.parametrize(
    ("p0", "p1", "crossed", "u"),
    [
        ((200, 300), (200, 100), True, 0.5),
        ((200, 250), (200, 150), True, 0.5),
        ((100, 300), (100, 100), True, 0.5),  # through the start point: counts
        ((99, 300), (99, 100), False, None),  # just beyond it: does not
        ((400, 300), (400, 100), False, None),
        ((200, 300), (200, 200), False, None),  # ends on the line: not across yet
        ((150, 250), (250, 250), False, None),  # parallel
        ((0, 300), (400, 100), True, 0.5),
    ],
)
def test_segment_crossings(p0, p1, crossed, u):
    hit, frac = segment_crossings(np.array([p0], float), np.array([p1], float), (100, 200), (300, 200))
    assert bool(hit[0]) is crossed
    if u is not None:
        assert frac[0] == pytest.approx(u)
