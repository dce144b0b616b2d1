import numpy as np
import pytest

from rva.core import NO_TRACK, Detections, Direction, Event, EventType


def _dets(n: int, keypoints: bool = False) -> Detections:
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 500, (n, 2))
    wh = rng.uniform(10, 100, (n, 2))
    return Detections(
        xyxy=np.hstack([xy, xy + wh]),
        confidence=rng.uniform(0, 1, n),
        class_id=rng.integers(0, 2, n),
        tracker_id=np.arange(n),
        keypoints=rng.uniform(0, 1, (n, 17, 3)) if keypoints else None,
        data={"fallen": rng.uniform(0, 1, n) > 0.5},
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xyxy": np.zeros((2, 3)), "confidence": [1, 1], "class_id": [0, 0], "tracker_id": [0, 0]}, "xyxy"),
        ({"xyxy": np.zeros((2, 4)), "confidence": [1], "class_id": [0, 0], "tracker_id": [0, 0]}, "confidence"),
        ({"xyxy": np.zeros((2, 4)), "confidence": [1, 1], "class_id": [0], "tracker_id": [0, 0]}, "class_id"),
        ({"xyxy": np.zeros((1, 4)), "confidence": [1], "class_id": [0], "tracker_id": [0],
          "keypoints": np.zeros((1, 17, 2))}, "keypoints"),
        ({"xyxy": np.zeros((1, 4)), "confidence": [1], "class_id": [0], "tracker_id": [0],
          "data": {"fallen": [True, False]}}, "fallen"),
    ],
)
def test_detections_rejects_bad_shapes(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


@pytest.mark.parametrize("n", [0, 1, 7])
@pytest.mark.parametrize("keypoints", [False, True])
def test_detections_proto_round_trip(n: int, keypoints: bool) -> None:
    d = _dets(n, keypoints)
    back = Detections.from_proto(d.to_proto())
    np.testing.assert_allclose(back.xyxy, d.xyxy)
    np.testing.assert_allclose(back.confidence, d.confidence)
    np.testing.assert_array_equal(back.class_id, d.class_id)
    np.testing.assert_array_equal(back.tracker_id, d.tracker_id)
    np.testing.assert_array_equal(back.flag("fallen"), d.flag("fallen"))
    if keypoints:
        assert back.keypoints is not None
        np.testing.assert_allclose(back.keypoints, d.keypoints)
    else:
        assert back.keypoints is None


def test_detections_mask_index_and_anchors() -> None:
    d = Detections.from_arrays([[0, 0, 10, 20], [10, 10, 30, 50]], [0.9, 0.3], data={"fallen": [False, True]})
    assert (d.tracker_id == NO_TRACK).all()
    kept = d[d.confidence > 0.5]
    assert len(kept) == 1 and kept.flag("fallen").tolist() == [False]
    np.testing.assert_allclose(d.anchors, [[5, 20], [20, 50]])
    np.testing.assert_allclose(d.area, [200, 800])
    assert len(d.with_tracker_id([4, 5]).tracked) == 2
    assert len(Detections.merge([d, d])) == 4


def test_detections_from_proto_rejects_ragged() -> None:
    msg = _dets(2).to_proto()
    del msg.xyxy[-1]
    with pytest.raises(ValueError, match="multiple of 4"):
        Detections.from_proto(msg)


@pytest.mark.parametrize(
    "event",
    [
        Event(EventType.ZONE_EXIT, "cam1", 12.5, track_id=3, zone="entrance", dwell_s=4.0, enter_ts=8.5),
        Event(EventType.LINE_CROSS, "cam1", 1.0, track_id=1, line="door", direction=Direction.OUT),
        Event(EventType.QUEUE_SERVED, "c", 3.0, track_id=9, queue="till", wait_s=41.5),
        Event(EventType.SOURCE_STATE, "c", 0.0, attrs={"state": "reconnecting", "gap_s": 2.5}),
    ],
)
def test_event_round_trips(event: Event) -> None:
    assert Event.from_proto(event.to_proto()) == event
    assert Event.from_dict(event.to_dict()) == event


def test_event_id_is_deterministic_and_distinguishes_events() -> None:
    a = Event(EventType.LINE_CROSS, "cam1", 1.0, track_id=1, line="door", direction=Direction.IN)
    same = Event(EventType.LINE_CROSS, "cam1", 1.0, track_id=1, line="door", direction=Direction.IN)
    other = Event(EventType.LINE_CROSS, "cam1", 1.0, track_id=1, line="door", direction=Direction.OUT)
    assert a.event_id("s1") == same.event_id("s1")
    assert a.event_id("s1") != other.event_id("s1")
    assert a.event_id("s1") != a.event_id("s2")
    msg = a.to_proto("s1")
    assert msg.event_id == a.event_id("s1") and msg.schema_version == 1 and msg.store == "s1"


def test_event_from_proto_rejects_unknown_schema_version() -> None:
    msg = Event(EventType.ZONE_ENTER, "c", 1.0, track_id=1, zone="z").to_proto("s")
    msg.schema_version = 99
    with pytest.raises(ValueError, match="schema_version 99"):
        Event.from_proto(msg)
