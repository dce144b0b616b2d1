"""Pure pieces of the sources: frame sampling by PTS, reconnect backoff, the monotonic PTS clock."""

from __future__ import annotations

import itertools
import random
import threading

import numpy as np
import pytest

from rva.sources import Backoff, FrameChannel, FrameSampler, PtsClock, SourceState, SourceStatus


def kept(sampler: FrameSampler, pts: list[float]) -> list[float]:
    return [t for t in pts if sampler.keep(t)]


def rate_table(src_fps: float, seconds: float) -> list[float]:
    return [i / src_fps for i in range(round(src_fps * seconds))]


@pytest.mark.parametrize(
    ("src_fps", "target", "seconds", "expected_count"),
    [
        (10, 5, 79.5, 398),  # vtest.avi: 795 frames -> every other one
        (10, 10, 10, 100),  # equal rates keep everything
        (10, 20, 10, 100),  # a slower source than the target keeps everything
        (30, 7, 60, 420),  # non-divisor rates: exactly 7 per second over a minute, no drift
        (25, 1, 3600, 3600),  # an hour at 1 fps: still exact (grid from an integer, not a sum)
        (29.97, 5, 600, 3000),  # NTSC rate
        (10, 3, 10, 30),
    ],
)
def test_sampler_keeps_target_rate_without_drift(
    src_fps: float, target: float, seconds: float, expected_count: int
):
    out = kept(FrameSampler(target), rate_table(src_fps, seconds))
    assert len(out) == expected_count
    gaps = np.diff(out)
    # each kept frame is the first at/after its grid point: spacing within one source frame of 1/target
    assert gaps.min() >= 1 / target - 1 / src_fps - 1e-9
    assert gaps.max() <= max(1 / target, 1 / src_fps) + 1 / src_fps + 1e-9


@pytest.mark.parametrize(
    ("pts", "target", "expected"),
    [
        ([0.0, 0.1, 0.2, 0.3, 0.4], 5, [0.0, 0.2, 0.4]),
        # float noise: 0.1 * 3 = 0.30000000000000004, 0.7 - 0.1 = 0.6 - 1e-16 still count as on the grid
        ([0.0, 0.1, 0.2, 0.1 * 3, 0.4, 0.5, 0.7 - 0.1], 5, [0.0, 0.2, 0.4, 0.7 - 0.1]),
        # forward jump (an outage): keep the first frame after it, then the grid goes on, no catch-up burst
        ([0.0, 0.2, 10.05, 10.15, 10.25, 10.35, 10.45], 5, [0.0, 0.2, 10.05, 10.25, 10.45]),
        # backward jump (a restarted clock): a new grid starts there
        ([5.0, 5.1, 5.2, 0.0, 0.1, 0.2], 5, [5.0, 5.2, 0.0, 0.2]),
        # jittery live timestamps
        ([0.0, 0.099, 0.201, 0.298, 0.402, 0.5], 5, [0.0, 0.201, 0.402]),
        # offset start: the grid starts at the first frame
        ([100.0, 100.5, 101.0, 101.5, 102.0], 1, [100.0, 101.0, 102.0]),
    ],
)
def test_sampler_table(pts: list[float], target: float, expected: list[float]):
    assert kept(FrameSampler(target), pts) == expected


def test_sampler_reset_and_validation():
    s = FrameSampler(5)
    assert s.keep(0.0) and not s.keep(0.1)
    s.reset()
    assert s.keep(0.1)
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="target_fps"):
            FrameSampler(bad)


@pytest.mark.parametrize(
    ("initial", "maximum", "expected"),
    [
        (0.5, 10.0, [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),
        (1.0, 1.0, [1.0, 1.0, 1.0]),
        (0.25, 1.0, [0.25, 0.5, 1.0, 1.0]),
    ],
)
def test_backoff_doubles_to_the_ceiling(initial: float, maximum: float, expected: list[float]):
    b = Backoff(initial, maximum, jitter=0.0)
    assert [b.next() for _ in expected] == expected
    b.reset()
    assert b.next() == initial


def test_backoff_jitter_only_shortens_and_survives_many_failures():
    b = Backoff(0.5, 10.0, jitter=0.2, rng=random.Random(7))
    delays = [b.next() for _ in range(2000)]
    ceilings = [min(10.0, 0.5 * 2 ** min(i, 10)) for i in range(2000)]
    assert all(0.8 * c <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays[10:20])) == 10  # jittered, not all equal
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(1.0, 2.0, jitter=1.0)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (raw pts or None, restart gap or "restart" / None) -> output
        ([0.0, 0.1, 0.2], [0.0, 0.1, 0.2]),
        # no PTS at all: index / fps
        ([None, None, None, None], [0.0, 0.1, 0.2, 0.3]),
        # first frame without PTS (what FFmpeg's RTSP client gives), then real ones
        ([None, 0.1, 0.2], [0.0, 0.1, 0.2]),
        # a hole in the middle: previous PTS + one interval
        ([1.0, 1.1, None, 1.3], [1.0, 1.1, 1.2, 1.3]),
        # reconnect after a 4.5 s outage; the new connection's clock starts at 0 again
        ([0.0, 0.1, ("gap", 4.5), 0.0, 0.1], [0.0, 0.1, 4.6, 4.7]),
        # file loop: one interval after the last frame
        ([0.0, 0.1, 0.2, ("gap", None), 0.0, 0.1], [0.0, 0.1, 0.2, 0.3, 0.4]),
        # backwards / repeated inside a segment: spliced on one interval later
        ([0.0, 0.1, 0.1, 0.2], [0.0, 0.1, 0.2, 0.3]),
        ([5.0, 5.1, 2.0, 2.1], [5.0, 5.1, 5.2, 5.3]),
        # forward jumps inside a segment are real time: kept
        ([0.0, 0.1, 7.0, 7.1], [0.0, 0.1, 7.0, 7.1]),
    ],
)
def test_pts_clock_table(steps: list[object], expected: list[float]):
    clock = PtsClock(interval=0.1)
    out = []
    for step in steps:
        if isinstance(step, tuple):
            clock.restart(step[1])
        else:
            out.append(clock.map(step))  # type: ignore[arg-type]
    assert out == pytest.approx(expected)
    assert all(b > a for a, b in itertools.pairwise(out))


def test_channel_drops_oldest_frames_but_never_statuses():
    ch = FrameChannel(2, drop_oldest=True)
    status = SourceStatus("c", SourceState.STREAMING, 0.0)
    ch.put_frame("f0")
    ch.put_status(status)
    for name in ("f1", "f2", "f3"):
        assert ch.put_frame(name)
    assert ch.dropped == 2
    assert [ch.get(0) for _ in range(4)] == [status, "f2", "f3", None]
    ch.close()
    assert not ch.put_frame("late") and ch.get(None) is None


def test_channel_blocks_when_full_and_close_unblocks():
    ch = FrameChannel(1, drop_oldest=False)
    assert ch.put_frame("a")
    results: list[bool] = []
    t = threading.Thread(target=lambda: results.append(ch.put_frame("b")))
    t.start()
    t.join(0.2)
    assert t.is_alive()  # blocked: back-pressure, nothing dropped
    assert ch.get(0) == "a"
    t.join(2)
    assert results == [True] and ch.get(0) == "b" and ch.dropped == 0
    t = threading.Thread(target=lambda: results.append(ch.put_frame("c") and ch.put_frame("d")))
    t.start()
    t.join(0.2)
    ch.close()
    t.join(2)
    assert not t.is_alive() and results[-1] is False


def test_status_to_event():
    st = SourceStatus("cam1", SourceState.STREAMING, 1.7e9, pts=12.5, gap_s=3.25, frames=40)
    ev = st.to_event()
    assert ev.type == "source_state" and ev.camera == "cam1" and ev.ts == 12.5
    assert ev.attrs == {"state": "streaming", "ts_wall": 1.7e9, "frames": 40, "gap_s": 3.25}
    rec = SourceStatus(
        "cam1", SourceState.RECONNECTING, 1.0, error="Connection refused", attempt=2, retry_in_s=0.9
    )
    assert rec.to_event().ts == 0.0
    assert rec.to_event().attrs["attempt"] == 2 and rec.to_event().attrs["error"] == "Connection refused"
