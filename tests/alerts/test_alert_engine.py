"""The alert engine as tables: each rule kind, holds, cooldowns, falls, a camera going offline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rva.alerts import AlertEngine, AlertRuleConfig, AlertState
from rva.analytics import CameraAnalytics
from rva.config import CameraConfig
from rva.core.detections import Detections
from rva.core.events import Event, EventType

NOBODY = Detections.empty()


def rule(**kw: Any) -> AlertRuleConfig:
    return AlertRuleConfig.model_validate({"name": "r", "cooldown_s": 60, **kw})


def view(waiting: int = 0, wait: float | None = 0.0, occupancy: int = 0, capacity: int | None = None,
         max_length: int | None = None, inside: tuple[int, ...] = ()) -> dict[str, Any]:
    """A ``CameraAnalytics.live()`` view of camera ``c``: zone ``z``, queue ``till``."""
    return {"camera": "c", "ts": 0.0, "lines": {},
            "zones": {"z": {"occupancy": occupancy, "capacity": capacity, "track_ids": list(inside)}},
            "queues": {"till": {"waiting": waiting, "wait_estimate_s": wait, "max_length": max_length}}}


@pytest.mark.parametrize(("r", "timeline", "fired_at"), [
    # (stream time, live view) -> times an alert fired
    (rule(kind="queue_length", threshold=3), [(0, view(4)), (1, view(5)), (61, view(4))], [0, 61]),  # cooldown
    (rule(kind="queue_length", threshold=3, for_s=10), [(0, view(4)), (5, view(4)), (10, view(4))], [10]),  # held
    (rule(kind="queue_length", threshold=3, for_s=10), [(0, view(4)), (5, view(1)), (12, view(4))], []),  # cleared
    (rule(kind="queue_length", threshold=3), [(0, view(3))], []),  # must exceed, not reach
    (rule(kind="queue_wait", threshold=120), [(0, view(2, 100.0)), (1, view(2, 130.0)), (2, view(2, None))], [1]),
    (rule(kind="occupancy"), [(0, view(occupancy=9, capacity=10)), (1, view(occupancy=11, capacity=10))], [1]),
    (rule(kind="occupancy"), [(0, view(occupancy=50))], []),  # no threshold, no capacity: nothing to exceed
    (rule(kind="occupancy", threshold=5, camera="other"), [(0, view(occupancy=9))], []),  # another camera
    (rule(kind="occupancy", threshold=5, target="elsewhere"), [(0, view(occupancy=9))], []),  # another zone
    (rule(kind="occupancy", threshold=5, enabled=False), [(0, view(occupancy=9))], []),
    (rule(kind="queue_length", threshold=3, cooldown_s=10), [(100, view(4)), (5, view(4))], [100, 5]),  # new stream
])
def test_live_rules(r: AlertRuleConfig, timeline: list[tuple[float, dict[str, Any]]], fired_at: list[float]) -> None:
    engine = AlertEngine("s1", [r])
    fired = [e.ts for t, v in timeline for e in engine.on_frame("c", v, NOBODY, t)]
    assert fired == fired_at


def test_an_alert_is_an_event_with_its_rule_target_and_numbers() -> None:
    r = rule(name="long_queue", kind="queue_length", threshold=3, severity="critical", sinks=["ops"])
    (alert,) = AlertEngine("s1", [r]).on_frame("c", view(5), NOBODY, 12.5)
    assert (alert.type, alert.camera, alert.ts, alert.queue, alert.zone) == (EventType.ALERT, "c", 12.5, "till", None)
    assert alert.attrs == {"rule": "long_queue", "kind": "queue_length", "severity": "critical", "value": 5.0,
                           "threshold": 3.0, "message": "queue length at c/till: 5 > 3", "sinks": ["ops"]}
    # it travels as any event does
    assert Event.from_proto(alert.to_proto("s1")) == alert


def test_two_rules_on_one_target_in_one_frame_are_two_events() -> None:
    engine = AlertEngine("s1", [rule(name="a", kind="queue_length", threshold=3),
                                rule(name="b", kind="queue_length", threshold=4)])
    alerts = engine.on_frame("c", view(5), NOBODY, 1.0)
    assert [a.attrs["rule"] for a in alerts] == ["a", "b"]
    assert alerts[0].event_id("s1") != alerts[1].event_id("s1")  # JetStream would drop one otherwise


def test_one_cameras_frame_does_not_clear_anothers_hold() -> None:
    engine = AlertEngine("s1", [rule(kind="queue_length", threshold=3, for_s=5)])
    other = {**view(0), "camera": "d"}
    fired = []
    for t in range(7):
        fired += engine.on_frame("c", view(4), NOBODY, float(t))
        fired += engine.on_frame("d", other, NOBODY, float(t))
    assert [(a.camera, a.ts) for a in fired] == [("c", 5.0)]


def test_a_held_queue_fires_once_per_cooldown_over_300_frames() -> None:
    """Five people stand in a real queue polygon for 30 s (300 frames at 10 fps) through CameraAnalytics."""
    camera = CameraConfig.model_validate({
        "id": "c", "source": {"type": "file", "path": "x.mp4"}, "frame_size": [640, 480],
        "queues": [{"name": "till", "queue_polygon": [[0, 0], [400, 0], [400, 400], [0, 400]],
                    "service_polygon": [[450, 0], [640, 0], [640, 400], [450, 400]]}]})
    analytics = CameraAnalytics(camera, (640, 480))
    engine = AlertEngine("s1", [rule(kind="queue_length", threshold=3, for_s=2, cooldown_s=10)])
    people = Detections(xyxy=[[40 + 60 * i, 100, 90 + 60 * i, 300] for i in range(5)], confidence=np.full(5, 0.9),
                        class_id=np.zeros(5), tracker_id=np.arange(1, 6))
    fired, true_from = [], None
    for frame in range(300):
        ts = frame / 10
        analytics.update(people, ts, started=range(1, 6) if frame == 0 else ())
        live = analytics.live()
        if true_from is None and live["queues"]["till"]["waiting"] > 3:
            true_from = ts
        fired += engine.on_frame("c", live, people, ts)
    assert true_from is not None and true_from <= 3.0  # people count as queueing after join_after_s
    times = [a.ts for a in fired]
    assert times == pytest.approx([true_from + 2, true_from + 12, true_from + 22])
    # exactly one alert in every 10 s cooldown window from the first
    assert all(sum(t0 <= t < t0 + 10 for t in times) == 1 for t0 in times)


# -- falls ---------------------------------------------------------------------------------------------

def posture_frames(*stretches: tuple[str, float]) -> list[tuple[float, bool]]:
    """``("up", 1.5), ("down", 3)`` -> [(ts, fallen)] at 10 fps."""
    out, t = [], 0.0
    for what, seconds in stretches:
        for _ in range(round(seconds * 10)):
            out.append((round(t, 1), what == "down"))
            t += 0.1
    return out


def person(fallen: bool, tid: int = 7) -> Detections:
    return Detections(xyxy=[[10, 10, 50, 120]], confidence=[0.8], class_id=[0], tracker_id=[tid],
                      data={"fallen": np.array([fallen])})


@pytest.mark.parametrize(("stretches", "for_s", "cooldown_s", "fired_at"), [
    ([("up", 1.5), ("down", 3)], 2.0, 300, [3.5]),  # seen walking, then down for 2 s
    ([("down", 5)], 2.0, 300, []),  # down from the first frame (the jacket on the grass)
    ([("up", 0.5), ("down", 5)], 2.0, 300, []),  # never upright long enough to have fallen
    ([("up", 2), ("down", 1), ("up", 0.3), ("down", 1.5)], 2.0, 300, []),  # flicker shorter than for_s
    ([("up", 2), ("down", 1), ("up", 0.1), ("down", 2.5)], 2.0, 300, [5.1]),  # a fall after a flicker counts
    ([("up", 2), ("down", 30)], 2.0, 10, [4.0, 14.0, 24.0]),  # still down: once per cooldown
])
def test_fall_rule(stretches: list[tuple[str, float]], for_s: float, cooldown_s: float,
                   fired_at: list[float]) -> None:
    engine = AlertEngine("s1", [rule(kind="fall", for_s=for_s, cooldown_s=cooldown_s, severity="critical")],
                         upright_s=1.0)
    fired = [a for t, fallen in posture_frames(*stretches) for a in engine.on_frame("c", view(), person(fallen), t)]
    assert [a.ts for a in fired] == pytest.approx(fired_at)
    for a in fired:
        assert a.track_id == 7 and a.attrs["kind"] == "fall" and a.attrs["severity"] == "critical"
        assert a.attrs["value"] >= for_s and a.attrs["message"].startswith("person 7 down at c for ")


def test_upright_check_off_fires_on_a_track_fallen_from_the_start() -> None:
    engine = AlertEngine("s1", [rule(kind="fall", for_s=2)], upright_s=0.0)
    fired = [a.ts for t, f in posture_frames(("down", 3)) for a in engine.on_frame("c", view(), person(f), t)]
    assert fired == [2.0]


def test_fall_rule_with_a_zone_fires_only_inside_it() -> None:
    engine = AlertEngine("s1", [rule(kind="fall", for_s=1, target="z")])
    frames = posture_frames(("up", 2), ("down", 3))
    outside = [a for t, f in frames for a in engine.on_frame("c", view(inside=()), person(f), t)]
    assert outside == []
    inside = [a for t, f in frames for a in engine.on_frame("c", view(inside=(8,)), person(f, tid=8), t + 100)]
    assert [(a.track_id, a.zone) for a in inside] == [(8, "z")]


def test_state_carries_over_a_rules_reload() -> None:
    r = rule(kind="queue_length", threshold=3, cooldown_s=60)
    first = AlertEngine("s1", [r])
    assert len(first.on_frame("c", view(5), NOBODY, 0.0)) == 1
    again = AlertEngine("s1", [r], state=first.state)
    assert again.on_frame("c", view(5), NOBODY, 1.0) == []  # still cooling down
    assert len(AlertEngine("s1", [r], state=AlertState()).on_frame("c", view(5), NOBODY, 1.0)) == 1


# -- event rules ---------------------------------------------------------------------------------------

def offline(ts: float, state: str = "reconnecting", camera: str = "c") -> Event:
    return Event(EventType.SOURCE_STATE, camera, ts, attrs={"state": state})


def exit_after(ts: float, dwell: float, zone: str = "z") -> Event:
    return Event(EventType.ZONE_EXIT, "c", ts, 3, zone=zone, dwell_s=dwell, enter_ts=ts - dwell)


@pytest.mark.parametrize(("r", "events", "fired_at"), [
    (rule(kind="camera_offline", cooldown_s=60), [offline(0), offline(5), offline(70, "failed")], [0, 70]),
    (rule(kind="camera_offline"), [offline(0, "streaming"), offline(1, "ended")], []),
    (rule(kind="camera_offline", camera="d"), [offline(0)], []),
    (rule(kind="dwell", threshold=300), [exit_after(10, 400), exit_after(20, 500), exit_after(90, 301)], [10, 90]),
    (rule(kind="dwell", threshold=300), [exit_after(10, 300)], []),
    (rule(kind="dwell", threshold=300, target="z"), [exit_after(10, 400, zone="other")], []),
])
def test_event_rules(r: AlertRuleConfig, events: list[Event], fired_at: list[float]) -> None:
    engine = AlertEngine("s1", [r])
    assert [a.ts for e in events for a in engine.on_event(e)] == fired_at


def test_event_alert_messages() -> None:
    engine = AlertEngine("s1", [rule(name="cam", kind="camera_offline"), rule(name="long", kind="dwell",
                                                                                threshold=300)])
    (a,) = engine.on_event(offline(3))
    assert (a.attrs["message"], a.attrs["severity"], a.attrs["value"]) == ("camera c is reconnecting", "warning", None)
    (b,) = engine.on_event(exit_after(10, 400))
    assert b.attrs["message"] == "dwell in c/z: 400 s > 300 s" and (b.zone, b.track_id) == ("z", 3)
