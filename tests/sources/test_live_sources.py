"""Live sources for real: an RTSP server on loopback that is killed, restarted and paused mid-run.

Every wait is bounded; a second camera (a file) must keep delivering while the live one is down.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from rva.config import CameraConfig
from rva.core import Frame
from rva.sources import MultiSource, SourceState, SourceStatus, open_source

if TYPE_CHECKING:
    from conftest import RtspServer

Item = tuple[str, Frame | SourceStatus]

pytestmark = pytest.mark.timeout(90)

ReadUntil = Callable[..., list[Item]]


def stream_camera(url: str, **kw: object) -> CameraConfig:
    source = {"type": "stream", "url": url, "backoff_initial_s": 0.25, "backoff_max_s": 1.0,
              "open_timeout_s": 3.0, "read_timeout_s": 2.0, **kw}
    return CameraConfig(id="live", source=source)


def file_camera(**kw: object) -> CameraConfig:
    return CameraConfig(id="file", source={"type": "file", "path": "sample", "loop": True, **kw})


def frames_of(items: list[Item], cam: str) -> list[Frame]:
    return [x for c, x in items if c == cam and isinstance(x, Frame)]


def statuses_of(items: list[Item], cam: str) -> list[SourceStatus]:
    return [x for c, x in items if c == cam and isinstance(x, SourceStatus)]


def count_frames(cam: str, n: int) -> Callable[[list[Item]], bool]:
    return lambda items: len(frames_of(items, cam)) >= n


def last_state(cam: str, state: SourceState) -> Callable[[list[Item]], bool]:
    return lambda items: any(s.state is state for s in statuses_of(items[-1:], cam))


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def test_rtsp_survives_server_restart_while_file_keeps_going(
    rtsp_server: RtspServer, vtest_path: Path, read_until: ReadUntil
):
    wall: dict[int, float] = {}  # id(item) -> when it was read
    live_cam, file_cam = stream_camera(rtsp_server.url), file_camera(realtime=True)
    with MultiSource([open_source(live_cam), open_source(file_cam)]) as cams:

        def read(done: Callable[[list[Item]], bool], timeout: float) -> list[Item]:
            return read_until(cams, done, timeout, wall)

        # 1. The live camera streams.
        before = read(count_frames("live", 20), timeout=20)
        states = [s.state for s in statuses_of(before, "live")]
        assert states == [SourceState.CONNECTING, SourceState.STREAMING]

        # 2. The server dies: the source notices and retries with backoff.
        rtsp_server.kill()
        killed_at = time.monotonic()
        outage = read(last_state("live", SourceState.RECONNECTING), timeout=5)
        # let it fail a few times against the closed port
        outage += read(lambda items: time.monotonic() - killed_at > 2.5, timeout=10)
        retries = [s for s in statuses_of(outage, "live") if s.state is SourceState.RECONNECTING]
        assert len(retries) >= 2 and all(s.error and s.retry_in_s for s in retries)
        assert "Connection refused" in (retries[-1].error or "")

        # 3. It comes back: the source reconnects within 5 s of the restart.
        rtsp_server.start()
        restarted_at = time.monotonic()
        back = read(last_state("live", SourceState.STREAMING), timeout=10)
        assert time.monotonic() - restarted_at < 5.0
        after = read(count_frames("live", 10), timeout=10)

    live = frames_of(before + outage + back + after, "live")
    pts = np.array([f.pts for f in live])
    assert np.all(np.diff(pts) > 0)  # monotonic across the reconnect
    assert [f.index for f in live] == list(range(len(live)))
    resumed = statuses_of(back, "live")[-1]
    last_before = frames_of(before + outage, "live")[-1]
    assert resumed.gap_s is not None and resumed.gap_s >= restarted_at - killed_at - 0.5
    # the first new frame continues from the last one plus the wall-clock gap
    first_after = frames_of(after, "live")[0]
    assert first_after.pts == pytest.approx(last_before.pts + resumed.gap_s, abs=1e-6)
    assert resumed.pts == first_after.pts

    # The file camera never stalled: steady ~10 fps through the whole outage.
    file_frames = frames_of(before + outage + back + after, "file")
    file_wall = np.array([wall[id(f)] for f in file_frames if killed_at <= wall[id(f)] <= restarted_at])
    assert len(file_wall) >= 0.7 * 10 * (restarted_at - killed_at)
    assert np.diff(file_wall).max() < 0.6


def test_unreachable_camera_backs_off_while_another_delivers(
    read_until: ReadUntil, free_port: Callable[[], int]
):
    closed = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/nothing"
    t0 = time.monotonic()
    with MultiSource([open_source(stream_camera(closed)), open_source(file_camera())]) as cams:
        items = read_until(cams, lambda it: len(statuses_of(it, "live")) >= 5, timeout=10)
        elapsed = time.monotonic() - t0
    retries = statuses_of(items, "live")
    assert retries[0].state is SourceState.CONNECTING
    assert {s.state for s in retries[1:]} == {SourceState.RECONNECTING}
    assert [s.attempt for s in retries[1:]] == [1, 2, 3, 4]
    ceilings = [0.25, 0.5, 1.0, 1.0]  # doubling to backoff_max_s, jitter only shortens
    delays = [s.retry_in_s or 0.0 for s in retries[1:]]
    assert all(0.8 * c - 1e-9 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert all("Connection refused" in (s.error or "") for s in retries[1:])
    assert all("hunter2" not in (s.error or "") and "***@127.0.0.1" in (s.error or "") for s in retries[1:])
    # meanwhile the file camera (not paced) poured frames out
    assert len(frames_of(items, "file")) > 50
    assert elapsed < 6


def test_silent_server_times_out_at_open(blackhole: int, read_until: ReadUntil):
    cam = stream_camera(f"rtsp://127.0.0.1:{blackhole}/x", open_timeout_s=1.0, read_timeout_s=1.0)
    t0 = time.monotonic()
    with open_source(cam) as src:
        items = read_until(src, last_state("live", SourceState.RECONNECTING), timeout=8)
        took = time.monotonic() - t0
        t1 = time.monotonic()
    assert time.monotonic() - t1 < 1.5  # close() did not wait for FFmpeg
    assert 0.8 < took < 4.0, took
    assert "cannot open stream" in (statuses_of(items, "live")[-1].error or "")


def test_close_is_prompt_while_ffmpeg_blocks_in_open(blackhole: int, read_until: ReadUntil):
    cam = stream_camera(f"rtsp://127.0.0.1:{blackhole}/x", open_timeout_s=5.0, read_timeout_s=5.0)
    src = open_source(cam)
    read_until(src, last_state("live", SourceState.CONNECTING), timeout=5)
    time.sleep(0.3)  # now inside av.open, waiting on a server that never answers
    t0 = time.monotonic()
    src.close()
    assert time.monotonic() - t0 < 1.5
    assert src.finished and src.state is SourceState.ENDED


def test_stalled_stream_is_declared_lost_within_read_timeout(rtsp_server: RtspServer, read_until: ReadUntil):
    with open_source(stream_camera(rtsp_server.url, read_timeout_s=1.0)) as src:
        read_until(src, count_frames("live", 10), timeout=20)
        rtsp_server.pause()  # SIGSTOP: the TCP connection stays open, nothing flows
        paused_at = time.monotonic()
        read_until(src, last_state("live", SourceState.RECONNECTING), timeout=8)
        assert time.monotonic() - paused_at < 3.5
        rtsp_server.resume()
        back = read_until(src, count_frames("live", 3), timeout=15)
    assert any(s.state is SourceState.STREAMING and s.gap_s for s in statuses_of(back, "live"))


def test_usb_camera_missing_reconnects_instead_of_raising(read_until: ReadUntil):
    cam = CameraConfig(id="usb", source={"type": "usb", "device": "/dev/video-rva-missing"})
    with open_source(cam) as src:
        items = read_until(src, last_state("usb", SourceState.RECONNECTING), timeout=8)
    err = statuses_of(items, "usb")[-1].error or ""
    assert "/dev/video-rva-missing" in err and "No such file or directory" in err


def test_multisource_add_remove_and_fairness(vtest_path: Path, read_until: ReadUntil):
    def cam(cid: str) -> CameraConfig:
        return CameraConfig(id=cid, source={"type": "file", "path": str(vtest_path)})

    with MultiSource([open_source(cam("a")), open_source(cam("b"))]) as cams:
        # Let both fill their queues (4 frames each), then take turns strictly.
        read_until(cams, lambda it: len(frames_of(it, "a")) and len(frames_of(it, "b")), timeout=20)
        time.sleep(0.5)
        items = read_until(cams, lambda it: len(it) >= 8, timeout=20)
        order = [c for c, _ in items]
        assert order in (["a", "b"] * 4, ["b", "a"] * 4)
        cams.add(open_source(cam("c")))
        with pytest.raises(ValueError, match="already"):
            cams.add(open_source(cam("c")))
        items = read_until(cams, count_frames("c", 5), timeout=20)
        cams.remove("a")
        assert cams.cameras == ["b", "c"]
        items = read_until(cams, lambda it: len(it) >= 20, timeout=20)
        assert {c for c, _ in items} == {"b", "c"}
