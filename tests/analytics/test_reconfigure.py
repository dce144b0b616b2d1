"""CameraAnalytics.reconfigure: a new zone/line/queue definition swapped in between frames."""

import pytest
from analytics_scenes import dets

from rva.analytics import CameraAnalytics
from rva.config import CameraConfig
from rva.core.events import EventType
from rva.errors import ConfigError

FRAME = (640, 480)
PROMO = [[50, 50], [250, 50], [250, 250], [50, 250]]
BASE = {
    "id": "cam",
    "source": {"type": "file", "path": "sample"},
    "zones": [
        {"name": "promo", "polygon": PROMO, "enter_inertia_s": 0.2, "exit_inertia_s": 0.5},
        {"name": "aisle", "polygon": [[300, 50], [600, 50], [600, 250], [300, 250]], "enter_inertia_s": 0.2},
    ],
    "lines": [{"name": "door", "start": [0, 400], "end": [640, 400], "min_side_s": 0.2}],
}


def _cam(**changes) -> CameraConfig:
    return CameraConfig.model_validate({**BASE, **changes})


def _run(cam: CameraAnalytics, t0: float, t1: float, points: dict) -> list:
    events, t = [], t0
    while t < t1 - 1e-9:
        events += cam.update(dets(points), round(t, 3))
        t += 0.1
    return events


def test_a_changed_zone_closes_its_visits_and_unchanged_ones_keep_state() -> None:
    cam = CameraAnalytics(_cam(), FRAME)
    cam.update(dets({}), 0.0, started=[1, 2])
    _run(cam, 0.1, 2.0, {1: (150, 150), 2: (450, 150)})  # 1 in promo, 2 in aisle
    assert cam.zones["promo"].occupancy == 1 and cam.zones["aisle"].occupancy == 1
    aisle = cam.zones["aisle"]

    moved = [{**BASE["zones"][0], "polygon": [[60, 60], [260, 60], [260, 260], [60, 260]]}, BASE["zones"][1],
             {"name": "new", "polygon": [[0, 300], [640, 300], [640, 380], [0, 380]], "enter_inertia_s": 0.2}]
    events = cam.reconfigure(_cam(zones=moved))
    exits = [e for e in events if e.type is EventType.ZONE_EXIT]
    assert [(e.zone, e.track_id, e.attrs["reason"]) for e in exits] == [("promo", 1, "config_change")]
    assert exits[0].dwell_s == pytest.approx(exits[0].ts - exits[0].enter_ts)
    assert cam.zones["aisle"] is aisle and aisle.occupancy == 1  # untouched: its visit stays open
    assert list(cam.zones) == ["promo", "aisle", "new"]
    assert [float(v) for v in cam.camera.zones[0].polygon[0]] == [60.0, 60.0]

    later = _run(cam, 2.0, 3.0, {1: (150, 150), 2: (450, 150), 3: (100, 340)})
    enters = {(e.zone, e.track_id) for e in later if e.type is EventType.ZONE_ENTER}
    assert enters == {("promo", 1), ("new", 3)}  # 1 enters the redefined promo again; 2 did not re-enter


def test_removed_zone_closes_visits_and_a_changed_line_starts_fresh() -> None:
    cam = CameraAnalytics(_cam(), FRAME)
    _run(cam, 0.0, 1.0, {1: (150, 150)})
    events = cam.reconfigure(_cam(zones=[BASE["zones"][1]], lines=[{**BASE["lines"][0], "min_side_s": 0.5}]))
    assert [(e.type, e.zone) for e in events] == [(EventType.ZONE_EXIT, "promo")]
    assert list(cam.zones) == ["aisle"]
    assert cam.lines["door"].cfg.min_side_s == 0.5 and cam.lines["door"].in_count == 0


def test_reconfigure_is_validated_before_anything_changes() -> None:
    cam = CameraAnalytics(_cam(), FRAME)
    _run(cam, 0.0, 1.0, {1: (150, 150)})
    outside = [{**BASE["zones"][0], "polygon": [[50, 50], [900, 50], [900, 250]]}]
    with pytest.raises(ConfigError, match="outside the 640x480 frame"):
        cam.reconfigure(_cam(zones=outside))
    with pytest.raises(ConfigError, match="is not 'cam'"):
        cam.reconfigure(_cam(id="other"))
    assert cam.zones["promo"].occupancy == 1  # nothing changed


def test_reconfigure_before_any_frame_just_swaps() -> None:
    cam = CameraAnalytics(_cam(), FRAME)
    assert cam.reconfigure(_cam(zones=[])) == []
    assert list(cam.zones) == []
