import json
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
from analytics_scenes import Ended, Scene, after, dets, steps, walk

from rva.analytics import CameraAnalytics, Heatmap, LineCounter, QueueMonitor, ZoneMonitor
from rva.config import CameraConfig
from rva.core.detections import Detections
from rva.core.events import Event, EventType
from rva.errors import ConfigError

FRAME = (640, 480)
RAW = {
    "id": "entrance",
    "source": {"type": "file", "path": "sample"},
    "zones": [{"name": "promo", "polygon": [[50, 50], [250, 50], [250, 250], [50, 250]],
               "enter_inertia_s": 0.4, "exit_inertia_s": 1.0, "unseen_inertia_s": 1.0}],
    "lines": [{"name": "door", "start": [300, 400], "end": [600, 400], "min_side_s": 0.3}],
    "queues": [{"name": "till", "queue_polygon": [[350, 100], [600, 100], [600, 300], [350, 300]],
                "service_polygon": [[350, 20], [600, 20], [600, 90], [350, 90]],
                "join_after_s": 2.0, "exit_inertia_s": 1.5, "service_window_s": 300}],
}
PROMO, TILL, QUEUE, STREET = (150, 150), (450, 50), (450, 200), (450, 470)


def _camera(**changes) -> CameraConfig:
    return CameraConfig.model_validate({**RAW, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"zones": [{"name": "promo", "polygon": [[50, 50], [700, 50], [700, 250]]}]}, "zone 'promo'"),
        ({"lines": [{"name": "door", "start": [300, 400], "end": [600, 500]}]}, "line 'door'"),
        ({"queues": [{**RAW["queues"][0], "service_polygon": [[350, -5], [600, 20], [600, 90]]}]},
         "queue 'till'"),
    ],
)
def test_geometry_outside_the_frame_is_a_config_error(changes, message):
    with pytest.raises(ConfigError, match=f"camera 'entrance': {message}.*640x480"):
        CameraAnalytics(_camera(**changes), FRAME)


def test_monitors_are_built_from_config_and_exposed():
    cam = CameraAnalytics(_camera(), FRAME)
    assert isinstance(cam.zones["promo"], ZoneMonitor)
    assert isinstance(cam.lines["door"], LineCounter)
    assert isinstance(cam.queues["till"], QueueMonitor)
    assert isinstance(cam.heatmap, Heatmap) and cam.heatmap.shape == (30, 40)
    with pytest.raises(TypeError):
        cam.zones["x"] = cam.zones["promo"]  # read-only view


# A short scripted shift: 1 browses the promo, 2 walks in through the door and queues (first inside the
# queue area at 2.1, at the till at 8.2), 3 walks out.
SHIFT = Scene({
    1: steps([(0, (20, 150)), (1, PROMO), (after(6), (300, 150)), (after(7), None)]),
    2: walk([(0, STREET), (2, (450, 300)), (2.2, QUEUE), (5, QUEUE), (5.2, QUEUE), (8, QUEUE), (8.2, TILL)]),
    3: walk([(3, (450, 330)), (5, STREET)]),
}, duration=12.0, ends={1: 8.0, 3: 5.5})


def _drive(cam: CameraAnalytics, scene: Scene, fps: float) -> list[Event]:
    events: list[Event] = []
    for f in scene.frames(fps):
        out = cam.update(f.tracked, f.ts, started=f.started, ended=f.ended)
        assert [e.ts for e in out] == sorted(e.ts for e in out)
        events += out
    return events


def test_scripted_shift_summary():
    cam = CameraAnalytics(_camera(), FRAME)
    events = _drive(cam, SHIFT, 10.0)
    events += cam.finish(12.0)
    summary = cam.summary()
    assert summary["zones"]["promo"] == {
        "visits": 1, "peak": 1, "mean_occupancy": pytest.approx(5.0 / 12.0),
        "mean_dwell_s": pytest.approx(5.0), "occupancy": 0,
    }
    assert summary["lines"]["door"] == {"in": 1, "out": 1}
    assert summary["queues"]["till"] == {
        "joined": 1, "served": 1, "abandoned": 0, "waiting": 0, "mean_wait_s": pytest.approx(8.2 - 2.1),
        "service_rate_per_min": pytest.approx(60.0 / 12.0), "wait_estimate_s": 0.0,
    }
    kinds = [(str(e.type), e.track_id) for e in events]
    assert [kinds.count(("track_start", t)) for t in (1, 2, 3)] == [1, 1, 1]
    ends = {e.track_id: e for e in events if e.type is EventType.TRACK_END}
    assert set(ends) == {1, 3}
    assert ends[1].ts == pytest.approx(7.0) and ends[1].attrs["duration_s"] == pytest.approx(7.0)
    live = cam.live()
    json.dumps(summary), json.dumps(live)
    assert live["camera"] == "entrance" and live["ts"] == 12.0
    assert live["zones"]["promo"] == {**summary["zones"]["promo"], "capacity": None, "over_capacity": False,
                                      "track_ids": []}
    assert live["queues"]["till"]["length"] == 0 and live["queues"]["till"]["track_ids"] == []


def test_finish_leaves_present_people_open_and_settles_those_who_left():
    cam = CameraAnalytics(_camera(), FRAME)
    cam.update(dets({1: PROMO, 2: QUEUE}), 0.0)
    cam.update(dets({1: PROMO, 2: QUEUE}), 3.0)
    cam.update(dets({2: QUEUE}), 3.5)  # 1 unseen since 3.0
    events = cam.finish(3.6)
    assert events == []  # 0.6 s unseen < 1.0 s inertia: 1 is still counted inside
    assert cam.summary()["zones"]["promo"]["occupancy"] == 1
    events = cam.finish(4.5)
    assert [(str(e.type), e.track_id, e.ts, e.dwell_s) for e in events] == [("zone_exit", 1, 3.0, 3.0)]
    s = cam.summary()
    assert s["zones"]["promo"]["visits"] == 1 and s["zones"]["promo"]["occupancy"] == 0
    assert s["queues"]["till"]["waiting"] == 1  # unseen 1.0 s < 1.5 s: still waiting
    assert s["queues"]["till"]["joined"] == 1


def test_started_and_ended_accept_any_records():
    cam = CameraAnalytics(_camera(), FRAME)
    out = cam.update(dets({5: PROMO}), 1.0, started=[np.int64(5), SimpleNamespace(track_id=6, first_ts=0.5)])
    assert [(str(e.type), e.track_id, e.ts) for e in out] == [
        ("track_start", 6, 0.5), ("track_start", 5, 1.0),
    ]
    out = cam.update(Detections.empty(), 2.0, ended=[Ended(5, 1.0, 1.0)])
    # Seen once, for less than the enter inertia: the track ends and no visit is counted.
    assert [(str(e.type), e.track_id, e.ts) for e in out] == [("track_end", 5, 1.0)]
    assert out[0].attrs == {"first_ts": 1.0, "duration_s": 0.0}


def test_time_going_backwards_changes_nothing():
    cam = CameraAnalytics(_camera(), FRAME)
    cam.update(dets({1: PROMO}), 5.0)
    with pytest.raises(ValueError, match="backwards"):
        cam.update(dets({1: QUEUE}), 4.0)
    assert cam.ts == 5.0
    cam.update(dets({1: PROMO}), 6.0)  # the monitors were not half-updated


def _crowd(seed: int, fps: float = 10.0, people: int = 40, duration: float = 120.0):
    """People wandering between random waypoints, with box jitter, missed frames and occlusions.

    Yields ``(ts, tracked, started, ended)`` like a tracker would: a track ends after 2 s unseen.
    """
    rng = np.random.default_rng(seed)
    waypoints = [rng.uniform([0, 0], FRAME, (6, 2)) for _ in range(people)]
    t_in = rng.uniform(0, duration * 0.7, people)
    speed = rng.uniform(20, 120, people)
    first, last, alive = {}, {}, set(range(people))
    hidden_until = np.full(people, -1.0)
    for k in range(int(duration * fps) + 1):
        ts = k / fps
        points, ended = {}, []
        for i in sorted(alive):
            if ts < t_in[i]:
                continue
            dist = (ts - t_in[i]) * speed[i]
            legs = np.linalg.norm(np.diff(waypoints[i], axis=0), axis=1)
            j = int(np.searchsorted(np.cumsum(legs), dist))
            if j >= len(legs):
                p = None
            else:
                into = dist - (np.cumsum(legs)[j - 1] if j else 0.0)
                p = waypoints[i][j] + (waypoints[i][j + 1] - waypoints[i][j]) * into / legs[j]
            if p is not None and rng.random() < 0.01:
                hidden_until[i] = ts + rng.uniform(0.2, 3.0)  # walks behind a shelf
            visible = p is not None and ts >= hidden_until[i] and rng.random() > 0.05
            if visible:
                points[i] = tuple(np.clip(p + rng.normal(0, 3, 2), 0, FRAME))
                last[i] = ts
            elif i in last and ts - last[i] > 2.0:
                alive.discard(i)
                ended.append(Ended(i, first[i], last[i]))
        started = [i for i in points if i not in first]
        first.update({i: ts for i in started})
        yield ts, dets(points), started, ended


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_invariants_hold_for_a_noisy_crowd(seed):
    cam = CameraAnalytics(_camera(), FRAME)
    events: list[Event] = []
    peak_live = 0
    for ts, tracked, started, ended in _crowd(seed):
        events += cam.update(tracked, ts, started=started, ended=ended)
        peak_live = max(peak_live, cam.zones["promo"].occupancy)
        q = cam.queues["till"]
        assert q.joined == q.served + q.abandoned + q.waiting
    events += cam.finish(121.0)
    s = cam.summary()

    open_visit: dict[int, Event] = {}
    for e in (e for e in events if e.zone == "promo"):
        if e.type is EventType.ZONE_ENTER:
            assert e.track_id not in open_visit
            open_visit[e.track_id] = e
        else:
            enter = open_visit.pop(e.track_id)  # every exit has its enter
            assert e.enter_ts == enter.ts and e.dwell_s == e.ts - e.enter_ts >= 0
    z = s["zones"]["promo"]
    exits = [e for e in events if e.type is EventType.ZONE_EXIT]
    assert z["visits"] == len(exits) + len(open_visit) and z["occupancy"] == len(open_visit)
    assert 1 <= z["peak"] <= peak_live
    assert z["mean_dwell_s"] == pytest.approx(np.mean([e.dwell_s for e in exits]))

    crossings = [e for e in events if e.type is EventType.LINE_CROSS]
    assert s["lines"]["door"]["in"] + s["lines"]["door"]["out"] == len(crossings)

    q = s["queues"]["till"]
    assert q["joined"] == q["served"] + q["abandoned"] + q["waiting"]
    by_type = defaultdict(int)
    for e in events:
        by_type[e.type] += 1
    assert by_type[EventType.QUEUE_JOIN] == q["joined"]
    assert by_type[EventType.QUEUE_SERVED] == q["served"]
    assert by_type[EventType.QUEUE_ABANDON] == q["abandoned"]
    assert by_type[EventType.TRACK_START] >= by_type[EventType.TRACK_END] > 0
    json.dumps(s)
    json.dumps(cam.live())
