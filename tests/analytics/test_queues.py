import pytest
from analytics_scenes import FPS, Scene, after, brief, dets, run, steps

from rva.analytics import QueueMonitor
from rva.config import QueueConfig
from rva.core.detections import Detections
from rva.core.events import EventType

CFG = QueueConfig(
    name="till",
    queue_polygon=[(100, 100), (300, 100), (300, 400), (100, 400)],
    service_polygon=[(100, 20), (300, 20), (300, 90), (100, 90)],
    join_after_s=2.0,
    exit_inertia_s=1.5,
    service_window_s=60.0,
)
QUEUE, QUEUE2, TILL, AWAY = (200.0, 250.0), (150.0, 300.0), (200.0, 50.0), (500.0, 250.0)
JOIN, SERVED, ABANDON = "queue_join", "queue_served", "queue_abandon"

# Scripted checkout: who does what, and when.
SCRIPT = {
    1: [(0, QUEUE), (10, TILL), (after(12), AWAY)],  # joins at 0, served at 10: waited 10
    2: [(1, QUEUE2), (20, TILL), (after(22), AWAY)],  # joins at 1, served at 20: waited 19
    3: [(2, QUEUE), (after(8), AWAY)],  # joins at 2, walks off at 8: abandoned after 6
    4: [(3, QUEUE), (after(4), AWAY)],  # 1 s in the queue area: never joined
    5: [(5, QUEUE2)],  # joins at 5, track ends at 12 (last seen 12.0): abandoned after 7
    6: [(15, QUEUE)],  # joins at 15, still waiting at the end
    7: [(16, TILL)],  # the cashier: at the till without queueing, not a customer
    8: [(21, QUEUE2), (22.2, TILL)],  # 1.2 s in the queue, then served: joins at 21, waited 1.2
}
ENDS = {5: after(12)}
EXPECTED = [
    (JOIN, 1, 0.0), (JOIN, 2, 1.0), (JOIN, 3, 2.0), (JOIN, 5, 5.0), (ABANDON, 3, 8.0),
    (SERVED, 1, 10.0), (ABANDON, 5, 12.0), (JOIN, 6, 15.0), (SERVED, 2, 20.0), (JOIN, 8, 21.0),
    (SERVED, 8, 22.2),
]
WAITS = {(SERVED, 1): 10.0, (SERVED, 2): 19.0, (ABANDON, 3): 6.0, (ABANDON, 5): 7.0, (SERVED, 8): 1.2}
# stream time -> (length, service rate per minute, wait estimate in s)
CHECKPOINTS = {
    1.8: (0, None, None),  # 1 has not been there 2 s yet
    2.0: (1, None, None),
    9.8: (3, None, None),  # 1, 2 and 5 waiting (3 abandoned at 8.0, known from 9.5)
    15.0: (1, 4.0, 15.0),  # one served in 15 s; only 2 waits: 1 / (4 / 60 s)
    25.0: (1, 7.2, 25.0 / 3),  # three served in 25 s; 6 waits
}


def _instant(**changes) -> QueueConfig:
    """The queue config with joins and services counted at the first observation."""
    return CFG.model_copy(update={"join_after_s": 0.0, "serve_after_s": 0.0, **changes})


def _scene() -> Scene:
    return Scene({tid: steps(keys) for tid, keys in SCRIPT.items()}, duration=25.0, ends=ENDS)


@pytest.mark.parametrize("fps", FPS)
def test_scripted_queue(fps):
    queue = QueueMonitor(CFG, "cam")
    events, seen = [], {}
    for f in _scene().frames(fps):
        events += queue.update(f.tracked, f.ts, f.ended_ids)
        assert queue.joined == queue.served + queue.abandoned + queue.waiting
        key = round(f.ts, 6)
        if key in CHECKPOINTS:
            seen[key] = (queue.length, queue.service_rate(), queue.wait_time_estimate())
    assert brief(sorted(events, key=lambda e: e.ts)) == EXPECTED
    for e in events:
        assert e.queue == "till"
        if e.type is not EventType.QUEUE_JOIN:
            assert e.wait_s == pytest.approx(WAITS[(str(e.type), e.track_id)], abs=1e-9)
            assert e.wait_s == e.ts - e.enter_ts
    assert (queue.joined, queue.served, queue.abandoned, queue.waiting) == (6, 3, 2, 1)
    assert queue.mean_wait_s == pytest.approx((10 + 19 + 1.2) / 3)
    assert queue.waiting_ids == [6]
    for ts, (length, rate, estimate) in CHECKPOINTS.items():
        got_length, got_rate, got_estimate = seen[ts]
        assert got_length == length, ts
        assert got_rate == (None if rate is None else pytest.approx(rate)), ts
        assert got_estimate == (None if estimate is None else pytest.approx(estimate)), ts


def test_queue_frame_rate_does_not_matter():
    results = []
    for fps in FPS:
        queue = QueueMonitor(CFG, "cam")
        events = []
        for f in _scene().frames(fps):
            events += queue.update(f.tracked, f.ts, f.ended_ids)
        results.append((brief(events), [round(e.wait_s or 0, 6) for e in events],
                        round(queue.service_rate() or 0, 6), round(queue.wait_time_estimate() or 0, 6)))
    assert all(r == results[0] for r in results)


def test_service_rate_uses_the_trailing_window():
    queue = QueueMonitor(_instant(service_window_s=10.0), "cam")
    queue.update(dets({1: QUEUE, 2: QUEUE, 3: QUEUE}), 0.0)
    queue.update(dets({1: TILL, 2: QUEUE, 3: QUEUE}), 3.0)
    queue.update(dets({2: TILL, 3: QUEUE}), 4.0)
    assert queue.service_rate() == pytest.approx(2 * 60 / 4.0)  # stream only 4 s old: window 4 s
    assert queue.wait_time_estimate() == pytest.approx(1 / (30 / 60))
    queue.update(dets({3: QUEUE}), 13.5)  # the serve at 3.0 has left the 10 s window
    assert queue.service_rate() == pytest.approx(1 * 60 / 10.0)
    assert queue.service_rate(20.0) == 0.0
    assert queue.wait_time_estimate(20.0) is None  # people wait, nobody served lately: no estimate


def test_estimate_is_zero_with_nobody_waiting():
    queue = QueueMonitor(_instant(), "cam")
    queue.update(dets({1: QUEUE}), 0.0)
    queue.update(dets({1: TILL}), 5.0)
    assert queue.wait_time_estimate() == 0.0
    assert queue.length == 0


def test_served_track_does_not_rejoin_when_it_walks_back_through_the_queue():
    queue = QueueMonitor(_instant(), "cam")
    for t, p in ((0.0, QUEUE), (3.0, TILL), (4.0, QUEUE), (8.0, QUEUE), (9.0, AWAY), (20.0, AWAY)):
        queue.update(dets({1: p}), t)
    assert (queue.joined, queue.served, queue.abandoned, queue.waiting) == (1, 1, 0, 0)


def test_over_length():
    queue = QueueMonitor(_instant(max_length=1), "cam")
    queue.update(dets({1: QUEUE}), 0.0)
    assert not queue.over_length()
    queue.update(dets({1: QUEUE, 2: QUEUE2}), 0.1)
    assert queue.over_length()
    queue.update(Detections.empty(), 10.0)
    assert queue.length == 0 and queue.abandoned == 2


@pytest.mark.parametrize(
    ("name", "script", "served_at"),
    [
        ("one frame over the till's edge is not a service",
         [(0, QUEUE), (5.0, TILL), (after(5.0), QUEUE)], None),
        ("0.4 s at the till is not a service yet", [(0, QUEUE), (5.0, TILL), (5.4, QUEUE)], None),
        ("served after 0.5 s at the till, dated on arrival", [(0, QUEUE), (5.0, TILL), (6.0, QUEUE)], 5.0),
        ("flicker, then really served", [(0, QUEUE), (3.0, TILL), (after(3.0), QUEUE), (5.0, TILL)], 5.0),
    ],
)
@pytest.mark.parametrize("fps", FPS)
def test_service_needs_serve_after_s_at_the_till(name, script, served_at, fps):
    queue = QueueMonitor(CFG.model_copy(update={"serve_after_s": 0.5}), "cam")
    events = run(queue.update, Scene({1: steps(script)}, duration=8.0), fps)
    served = [e.ts for e in events if e.type is EventType.QUEUE_SERVED]
    assert served == ([] if served_at is None else [pytest.approx(served_at)])
    assert queue.joined == 1 and queue.abandoned == 0
    assert queue.waiting == (1 if served_at is None else 0)
