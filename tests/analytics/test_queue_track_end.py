"""Queues: a track ending is not someone giving up. The stream ending leaves the line waiting."""

import pytest
from analytics_scenes import Ended, dets

from rva.analytics import QueueMonitor
from rva.config import QueueConfig
from rva.core.detections import Detections

CFG = QueueConfig(
    name="till",
    queue_polygon=[(100.0, 200.0), (300.0, 200.0), (300.0, 400.0), (100.0, 400.0)],
    service_polygon=[(100.0, 0.0), (300.0, 0.0), (300.0, 100.0), (100.0, 100.0)],
    join_after_s=1.0,
    serve_after_s=0.0,
    exit_inertia_s=1.5,
)
QUEUE = (200.0, 300.0)


def _queue_until(last_seen: float) -> QueueMonitor:
    q = QueueMonitor(CFG, "cam")
    for k in range(round(last_seen * 10) + 1):
        q.update(dets({1: QUEUE}), k / 10)
    return q


def test_stream_end_leaves_the_line_waiting():
    q = _queue_until(5.0)
    # End of stream: the tracker ends every live track at the last frame's time.
    assert q.update(Detections.empty(), 5.0, [Ended(1, 0.0, 5.0).track_id]) == []
    assert (q.joined, q.abandoned, q.waiting) == (1, 0, 1)


@pytest.mark.parametrize(("now", "emitted"), [(6.0, False), (6.5, True)])
def test_an_ended_track_abandons_once_the_inertia_runs_out(now, emitted):
    q = _queue_until(5.0)
    events = q.update(Detections.empty(), 5.5, [1])  # lost, and the tracker gives up on it
    events += q.update(Detections.empty(), now)
    assert [(str(e.type), e.ts, e.wait_s) for e in events] == ([("queue_abandon", 5.0, 5.0)] if emitted else [])
    assert q.abandoned == int(emitted) and q.waiting == 1 - int(emitted)
