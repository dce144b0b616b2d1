import numpy as np
import pytest
from analytics_scenes import FPS, Scene, after, brief, dets, run, steps

from rva.analytics import ZoneMonitor, points_in_polygon
from rva.config import ZoneConfig
from rva.core.detections import NO_TRACK, Detections
from rva.core.events import EventType

SQUARE = [(100.0, 100.0), (300.0, 100.0), (300.0, 300.0), (100.0, 300.0)]
CFG = ZoneConfig(name="aisle", polygon=SQUARE, enter_inertia_s=0.4, exit_inertia_s=1.0, unseen_inertia_s=1.0)
IN, OUT, IN2 = (200.0, 200.0), (400.0, 200.0), (150.0, 250.0)
ENTER, EXIT = "zone_enter", "zone_exit"

# name, scripted tracks, tracker ends, expected (type, track, ts, dwell_s)
CASES = [
    ("one visit", {1: [(0, OUT), (1, IN), (after(5), OUT)]}, {},
     [(ENTER, 1, 1.0, None), (EXIT, 1, 5.0, 4.0)]),
    ("brushes the edge for less than the enter inertia", {1: [(0, OUT), (1, IN), (after(1.2), OUT)]}, {}, []),
    ("occluded 0.6 s < exit inertia: one visit spanning the gap",
     {1: [(0, OUT), (1, IN), (after(3), None), (3.6, IN), (after(6), OUT)]}, {},
     [(ENTER, 1, 1.0, None), (EXIT, 1, 6.0, 5.0)]),
    ("occluded 1.6 s > exit inertia: two visits",
     {1: [(0, OUT), (1, IN), (after(3), None), (4.6, IN), (after(6), OUT)]}, {},
     [(ENTER, 1, 1.0, None), (EXIT, 1, 3.0, 2.0), (ENTER, 1, 4.6, None), (EXIT, 1, 6.0, 1.4)]),
    ("box flickers outside for 0.2 s: one visit",
     {1: [(0, OUT), (1, IN), (after(3), OUT), (after(3.2), IN), (after(6), OUT)]}, {},
     [(ENTER, 1, 1.0, None), (EXIT, 1, 6.0, 5.0)]),
    ("track ends inside: exits at its last inside time", {1: [(0, OUT), (1, IN)]}, {1: after(4)},
     [(ENTER, 1, 1.0, None), (EXIT, 1, 4.0, 3.0)]),
    ("walks away unseen: no timer after the last sighting", {1: [(0, OUT), (1, IN), (after(5), None)]}, {},
     [(ENTER, 1, 1.0, None), (EXIT, 1, 5.0, 4.0)]),
    ("ends before the enter inertia: nothing", {1: [(1, IN)]}, {1: 1.2}, []),
    ("enters already inside at the first frame", {1: [(0, IN), (after(2), OUT)]}, {},
     [(ENTER, 1, 0.0, None), (EXIT, 1, 2.0, 2.0)]),
    ("two people overlapping",
     {1: [(1, IN), (after(5), OUT)], 2: [(2, IN2), (after(8), OUT)]}, {},
     [(ENTER, 1, 1.0, None), (ENTER, 2, 2.0, None), (EXIT, 1, 5.0, 4.0), (EXIT, 2, 8.0, 6.0)]),
]


def _scene(tracks: dict, ends: dict) -> Scene:
    return Scene({tid: steps(keys) for tid, keys in tracks.items()}, duration=10.0, ends=ends)


@pytest.mark.parametrize("fps", FPS)
@pytest.mark.parametrize(("name", "tracks", "ends", "expected"), CASES, ids=[c[0] for c in CASES])
def test_zone_scripts(name, tracks, ends, expected, fps):
    zone = ZoneMonitor(CFG, "cam")
    events = run(zone.update, _scene(tracks, ends), fps)
    got = [(str(e.type), e.track_id, e.ts, e.dwell_s) for e in events]
    assert [g[:2] for g in got] == [x[:2] for x in expected]
    for (_, _, ts, dwell), (_, _, ets, edwell) in zip(got, expected, strict=True):
        assert ts == pytest.approx(ets, abs=1e-9)
        assert (dwell is None) == (edwell is None)
        if edwell is not None:
            assert dwell == pytest.approx(edwell, abs=1e-9)
    for e in events:
        assert e.zone == "aisle" and e.camera == "cam"
        if e.type is EventType.ZONE_EXIT:
            assert e.dwell_s == e.ts - e.enter_ts  # exactly, not approximately
    enters = sum(e.type is EventType.ZONE_ENTER for e in events)
    exits = sum(e.type is EventType.ZONE_EXIT for e in events)
    assert zone.visits == enters == exits + zone.occupancy
    assert zone.occupancy == 0


@pytest.mark.parametrize(("name", "tracks", "ends", "expected"), CASES, ids=[c[0] for c in CASES])
def test_zone_frame_rate_does_not_matter(name, tracks, ends, expected):
    results = []
    for fps in FPS:
        zone = ZoneMonitor(CFG, "cam")
        events = run(zone.update, _scene(tracks, ends), fps)
        results.append((brief(events), [round(e.dwell_s or 0, 6) for e in events], zone.peak,
                        round(zone.mean_occupancy(), 6), zone.mean_dwell_s and round(zone.mean_dwell_s, 6)))
    assert all(r == results[0] for r in results)


def test_zone_statistics():
    zone = ZoneMonitor(CFG, "cam")
    run(zone.update, _scene(CASES[-1][1], {}), 10.0)
    assert (zone.visits, zone.exits, zone.peak, zone.occupancy) == (2, 2, 2, 0)
    assert zone.mean_dwell_s == pytest.approx(5.0)
    # 4 + 6 person-seconds over 10 s observed.
    assert zone.mean_occupancy() == pytest.approx(1.0)


def test_peak_counts_people_together_not_a_hand_off_within_inertia():
    # One leaves at 5.0; the next arrives at 5.2 and is confirmed at 5.6, while the first is still
    # inside the exit inertia (live occupancy 2 until 6.0). They were never in the zone together.
    zone = ZoneMonitor(CFG, "cam")
    live = []
    scene = _scene({1: [(1, IN), (after(5), OUT)], 2: [(5.2, IN2), (after(8), OUT)]}, {})
    for f in scene.frames(10.0):
        zone.update(f.tracked, f.ts, f.ended_ids)
        live.append(zone.occupancy)
    assert max(live) == 2
    assert zone.peak == 1


def test_occupancy_follows_the_inertia_and_counts_occluded_people():
    zone = ZoneMonitor(CFG, "cam")
    scene = _scene({1: [(0, OUT), (1, IN), (after(3), None), (3.6, IN), (after(6), OUT)]}, {})
    occupancy = {}
    for f in scene.frames(10.0):
        zone.update(f.tracked, f.ts)
        occupancy[round(f.ts, 3)] = zone.occupancy
    assert occupancy[1.3] == 0  # still inside the enter inertia
    assert occupancy[1.4] == 1
    assert occupancy[3.3] == 1  # unseen, inside the exit inertia
    assert occupancy[6.9] == 1
    assert occupancy[7.0] == 0  # 1.0 s after the last inside sighting


def test_unconfirmed_rows_are_ignored():
    zone = ZoneMonitor(CFG.model_copy(update={"enter_inertia_s": 0.0}), "cam")
    crowd = dets({1: IN}).with_tracker_id([NO_TRACK])
    assert zone.update(Detections.merge([crowd, crowd]), 0.0) == []
    assert zone.occupancy == 0


def test_time_must_not_go_backwards():
    zone = ZoneMonitor(CFG, "cam")
    zone.update(Detections.empty(), 2.0)
    with pytest.raises(ValueError, match="backwards"):
        zone.update(Detections.empty(), 1.0)


@pytest.mark.parametrize(
    ("polygon", "points", "expected"),
    [
        (SQUARE, [(200, 200), (50, 200), (300.5, 200), (100.5, 100.5), (200, 99)], [1, 0, 0, 1, 0]),
        ([(0, 0), (100, 0), (100, 100), (50, 50), (0, 100)],
         [(50, 25), (50, 75), (90, 80), (10, 80)], [1, 0, 1, 1]),
        ([(0, 0), (10, 0), (0, 10)], np.empty((0, 2)), []),
    ],
    ids=["square", "concave", "no points"],
)
def test_points_in_polygon(polygon, points, expected):
    assert points_in_polygon(points, polygon).tolist() == [bool(x) for x in expected]


def test_points_in_polygon_matches_opencv():
    import cv2

    rng = np.random.default_rng(7)
    poly = rng.uniform(0, 500, (9, 2))
    pts = rng.uniform(-50, 550, (2000, 2))
    ours = points_in_polygon(pts, poly)
    contour = poly.astype(np.float32).reshape(-1, 1, 2)
    dist = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in pts])
    clear = np.abs(dist) > 1e-3  # skip points on the boundary, where either answer is fine
    assert np.array_equal(ours[clear], dist[clear] > 0)
