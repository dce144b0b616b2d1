"""File sources on the real vtest.avi and on broken copies of it: counts, PTS, sampling, errors."""

from __future__ import annotations

import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rva.config import CameraConfig
from rva.core import Frame
from rva.errors import SourceError
from rva.sources import PyAVSource, SourceState, SourceStatus, file_spec, open_source

pytestmark = pytest.mark.timeout(120)


def camera(path: str | Path, **kw: object) -> CameraConfig:
    analysis_fps = kw.pop("analysis_fps", None)
    return CameraConfig(id="cam", source={"type": "file", "path": str(path), **kw}, analysis_fps=analysis_fps)


def drain(path: str | Path, **kw: object) -> tuple[list[tuple[int, float]], list[SourceStatus]]:
    """All (index, pts) and status records of a file source; images are checked then dropped."""
    frames: list[tuple[int, float]] = []
    statuses: list[SourceStatus] = []
    with open_source(camera(path, **kw)) as src:
        for item in src.items(timeout=20):  # a hang fails the test instead of blocking it
            if isinstance(item, Frame):
                assert item.image.dtype == np.uint8 and item.image.ndim == 3 and item.image.shape[2] == 3
                frames.append((item.index, item.pts))
            else:
                statuses.append(item)
    return frames, statuses


@pytest.fixture(scope="module")
def vtest_all(vtest_path: Path) -> tuple[list[tuple[int, float]], list[SourceStatus]]:
    return drain(vtest_path)


def test_vtest_every_frame_in_order(vtest_all: tuple[list[tuple[int, float]], list[SourceStatus]]):
    frames, statuses = vtest_all
    assert len(frames) == 795
    assert [i for i, _ in frames] == list(range(795))
    pts = np.array([t for _, t in frames])
    assert pts[0] == 0.0 and np.all(np.diff(pts) > 0)
    assert np.allclose(np.diff(pts), 0.1)
    assert pts[-1] == pytest.approx(79.4)
    assert [s.state for s in statuses] == [SourceState.STREAMING, SourceState.ENDED]
    end = statuses[-1]
    assert end.frames == 795 and end.error is None and end.pts == pytest.approx(79.4)


def test_vtest_first_frame_is_bgr(vtest_path: Path):
    with open_source(camera(vtest_path)) as src:
        frame = next(iter(src))
    assert frame.size == (768, 576) and frame.camera == "cam" and frame.index == 0
    # OpenCV (BGR by definition) decodes the same file: channel order must match it.
    import cv2

    cap = cv2.VideoCapture(str(vtest_path))
    ok, ref = cap.read()
    cap.release()
    assert ok and np.abs(frame.image.astype(int) - ref.astype(int)).mean() < 2.0


@pytest.mark.parametrize(("analysis_fps", "total"), [(None, 795), (5, 398), (10, 795), (30, 795), (3, 239)])
def test_total_frames_and_fps_known_at_open(vtest_path: Path, analysis_fps: float | None, total: int):
    with open_source(camera(vtest_path, analysis_fps=analysis_fps)) as src:
        assert src.fps == 10.0 and src.total_frames == total
    with open_source(camera(vtest_path, loop=True)) as src:
        assert src.total_frames is None


def test_sampling_to_5_fps_by_pts(vtest_path: Path):
    frames, statuses = drain(vtest_path, analysis_fps=5)
    assert len(frames) == 398
    assert [i for i, _ in frames] == list(range(398))  # indices count delivered frames
    assert np.allclose(np.diff([t for _, t in frames]), 0.2)
    assert statuses[-1].state is SourceState.ENDED and statuses[-1].frames == 398


def test_plain_iteration_hands_status_records_to_callback(tmp_path: Path, vtest_path: Path, make_clip):
    clip = make_clip(vtest_path, tmp_path / "clip.mp4", frames=5)
    records: list[SourceStatus] = []
    with open_source(camera(clip), on_status=records.append) as src:
        assert [f.index for f in src] == [0, 1, 2, 3, 4]
    assert [r.state for r in records] == [SourceState.STREAMING, SourceState.ENDED]
    assert records[-1].to_event().attrs["frames"] == 5


def test_sample_path_means_the_bundled_clip(vtest_path: Path):
    with open_source(camera("sample")) as src:
        frame = next(iter(src))
    assert frame.size == (768, 576)


def test_loop_keeps_pts_monotonic(tmp_path: Path, vtest_path: Path, make_clip: Callable[..., Path]):
    clip = make_clip(vtest_path, tmp_path / "short.mp4", frames=12)
    with open_source(camera(clip, loop=True)) as src:
        frames = [f for f, _ in zip(src, range(40), strict=False)]
    pts = np.array([f.pts for f in frames])
    assert len(frames) == 40 and np.allclose(np.diff(pts), 0.1)  # 3+ loops, no jump back, no hole


def test_realtime_paces_at_pts(tmp_path: Path, vtest_path: Path):
    with open_source(camera(vtest_path, realtime=True)) as src:
        t0 = time.monotonic()
        frames = [f for f, _ in zip(src, range(16), strict=False)]
        elapsed = time.monotonic() - t0
    # 16 frames at 10 fps span 1.5 s of PTS; the first comes at once
    assert 1.3 < elapsed < 3.0, elapsed
    assert src.frames_dropped == 0 and frames[-1].pts == pytest.approx(1.5)


def test_realtime_drops_oldest_when_consumer_lags_and_counts(vtest_path: Path):
    with open_source(camera(vtest_path, realtime=True)) as src:
        frames = []
        for frame in src:
            frames.append(frame)
            time.sleep(0.35)  # a slow detector: 3.5 source frames per analysed one
            if len(frames) == 8:
                break
        dropped = src.frames_dropped
    assert dropped >= 8, dropped
    assert [f.index for f in frames] == list(range(8))
    gaps = np.diff([f.pts for f in frames])
    assert gaps.mean() > 0.25  # stale frames were skipped: the consumer stays near live


def test_stream_without_pts_is_timed_by_index(
    tmp_path: Path, vtest_path: Path, make_clip: Callable[..., Path]
):
    raw = make_clip(vtest_path, tmp_path / "raw.h264", frames=30, fmt="h264")
    with PyAVSource("raw", file_spec(camera(raw).source)) as src:  # type: ignore[arg-type]
        items = list(src.items(timeout=20))
        frames = [i for i in items if isinstance(i, Frame)]
        assert src.timestamps_synthesized == 30
    assert len(frames) == 30
    assert [f.pts for f in frames] == pytest.approx([i / 10 for i in range(30)])  # rate from the SPS
    end = items[-1]
    assert isinstance(end, SourceStatus) and end.state is SourceState.ENDED
    assert end.detail is not None and "30 frames had no PTS" in end.detail


def test_h264_mp4_clip(tmp_path: Path, vtest_path: Path, make_clip: Callable[..., Path]):
    clip = make_clip(vtest_path, tmp_path / "clip.mp4", frames=40)
    frames, statuses = drain(clip)
    assert len(frames) == 40 and np.allclose(np.diff([t for _, t in frames]), 0.1)
    assert statuses[-1].state is SourceState.ENDED


def _truncated(vtest: Path, dest: Path, kib: int) -> Path:
    dest.write_bytes(vtest.read_bytes()[: kib * 1024])
    return dest


def _garbage_tail(vtest: Path, dest: Path) -> Path:
    data = vtest.read_bytes()
    half = len(data) // 2
    dest.write_bytes(data[:half] + np.random.default_rng(0).bytes(len(data) - half))
    return dest


def _audio_only(_: Path, dest: Path) -> Path:
    with wave.open(str(dest), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    return dest


def _write(dest: Path, data: bytes) -> Path:
    dest.write_bytes(data)
    return dest


BROKEN = {
    "missing": (lambda v, d: d, "No such file or directory"),
    "directory": (lambda v, d: d.parent, "Is a directory"),
    "empty": (lambda v, d: _write(d, b""), "Invalid data found"),
    "random bytes": (lambda v, d: _write(d, np.random.default_rng(1).bytes(200_000)), "Invalid data"),
    "text": (lambda v, d: _write(d, b"not a video\n" * 100), "Invalid data"),
    "first 1 KiB": (lambda v, d: _truncated(v, d, 1), "Invalid data"),
    "audio only": (_audio_only, "has no video stream"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_unopenable_file_raises_source_error_at_open(case: str, tmp_path: Path, vtest_path: Path):
    make, reason = BROKEN[case]
    path = make(vtest_path, tmp_path / "broken.avi")
    t0 = time.monotonic()
    with pytest.raises(SourceError) as err:
        open_source(camera(path))
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert msg.startswith(f"cannot open video file {path}: ") and reason in msg


@pytest.mark.parametrize(
    ("case", "make", "expected_frames"),
    [
        ("first 16 KiB", lambda v, d: _truncated(v, d, 16), (1, 1)),
        ("first 64 KiB", lambda v, d: _truncated(v, d, 64), (2, 2)),
        ("first 1 MiB", lambda v, d: _truncated(v, d, 1024), (96, 98)),
        ("second half random", _garbage_tail, (300, 500)),
    ],
)
def test_file_broken_midway_ends_cleanly(
    case: str, make: object, expected_frames: tuple[int, int], tmp_path: Path, vtest_path: Path
):
    path = make(vtest_path, tmp_path / "broken.avi")  # type: ignore[operator]
    frames, statuses = drain(path)
    low, high = expected_frames
    assert low <= len(frames) <= high, (case, len(frames))
    end = statuses[-1]
    assert end.state in (SourceState.ENDED, SourceState.FAILED)
    assert end.frames == len(frames)  # the record says how many frames made it
    if end.state is SourceState.FAILED:
        assert end.error and str(path) in end.error


def test_close_mid_file_is_prompt(vtest_path: Path):
    src = open_source(camera(vtest_path))
    it: Iterator[Frame] = iter(src)
    next(it)
    t0 = time.monotonic()
    src.close()
    assert time.monotonic() - t0 < 1.0
    assert src.finished and src.state is SourceState.ENDED and src.read(0) is None
    src.close()  # twice is fine
