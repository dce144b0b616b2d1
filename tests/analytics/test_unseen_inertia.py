"""Zones: an occlusion is not an exit. Unseen people stay inside for ``unseen_inertia_s`` or until their
track ends; people seen outside leave after ``exit_inertia_s`` as before."""

import numpy as np
import pytest
from analytics_scenes import FPS, Scene, after, run, steps

from rva.analytics import ZoneMonitor
from rva.analytics.presence import Presence
from rva.config import ZoneConfig

SQUARE = [(100.0, 100.0), (300.0, 100.0), (300.0, 300.0), (100.0, 300.0)]
CFG = ZoneConfig(name="aisle", polygon=SQUARE, enter_inertia_s=0.4, exit_inertia_s=1.0, unseen_inertia_s=5.0)
IN, OUT = (200.0, 200.0), (400.0, 200.0)
ENTER, EXIT = "zone_enter", "zone_exit"

# name, scripted tracks, tracker ends, expected (type, track, ts, dwell_s)
CASES = [
    ("hidden 3 s < unseen inertia: one visit spanning the gap",
     {1: [(0, OUT), (1, IN), (after(3), None), (6, IN), (after(8), OUT)]}, {},
     [(ENTER, 1, 1.0, None), (EXIT, 1, 8.0, 7.0)]),
    ("hidden 6 s > unseen inertia: two visits",
     {1: [(0, OUT), (1, IN), (after(3), None), (9, IN), (after(11), OUT)]}, {},
     [(ENTER, 1, 1.0, None), (EXIT, 1, 3.0, 2.0), (ENTER, 1, 9.0, None), (EXIT, 1, 11.0, 2.0)]),
    ("hidden, then seen outside: exits at once, dated at the last inside sighting",
     {1: [(0, OUT), (1, IN), (after(3), None), (5, OUT)]}, {},
     [(ENTER, 1, 1.0, None), (EXIT, 1, 3.0, 2.0)]),
    ("seen outside 1 s: exits after the exit inertia as before",
     {1: [(0, OUT), (1, IN), (after(3), OUT)]}, {},
     [(ENTER, 1, 1.0, None), (EXIT, 1, 3.0, 2.0)]),
    ("hidden until the tracker ends the track: closes at the last inside time",
     {1: [(0, OUT), (1, IN), (after(3), None)]}, {1: 4.6},
     [(ENTER, 1, 1.0, None), (EXIT, 1, 3.0, 2.0)]),
]


def _scene(tracks: dict, ends: dict) -> Scene:
    return Scene({tid: steps(keys) for tid, keys in tracks.items()}, duration=14.0, ends=ends)


@pytest.mark.parametrize("fps", FPS)
@pytest.mark.parametrize(("name", "tracks", "ends", "expected"), CASES, ids=[c[0] for c in CASES])
def test_unseen_is_not_outside(name, tracks, ends, expected, fps):
    zone = ZoneMonitor(CFG, "cam")
    events = run(zone.update, _scene(tracks, ends), fps)
    got = [(str(e.type), e.track_id, round(e.ts, 9), e.dwell_s and round(e.dwell_s, 9)) for e in events]
    assert got == expected
    assert zone.visits == zone.exits and zone.occupancy == 0


def test_occupancy_counts_a_hidden_person_until_the_unseen_inertia():
    zone = ZoneMonitor(CFG, "cam")
    occupancy = {}
    for f in _scene({1: [(0, OUT), (1, IN), (after(3), None)]}, {}).frames(10.0):
        zone.update(f.tracked, f.ts, f.ended_ids)
        occupancy[round(f.ts, 3)] = zone.occupancy
    assert occupancy[4.5] == 1 and occupancy[7.9] == 1  # hidden, still browsing
    assert occupancy[8.0] == 0  # 5 s after the last inside sighting


@pytest.mark.parametrize(
    ("unseen", "expected"),
    [(None, 1.0), (0.0, 0.0), (7.5, 7.5)],
)
def test_presence_unseen_default_is_the_exit_inertia(unseen, expected):
    p = Presence(0.0, 1.0, unseen)
    assert p.unseen_after_s == expected
    p.update(np.array([1]), np.array([True]), 0.0)
    _, ended = p.update(np.zeros(0, np.int64), np.zeros(0, np.bool_), expected)
    assert [s.track_id for s in ended] == [1]


def test_negative_inertia_is_refused():
    with pytest.raises(ValueError, match="unseen -1"):
        Presence(0.0, 1.0, -1.0)
