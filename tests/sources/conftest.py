"""Fixtures of the source tests: small clips made from vtest.avi, reading with deadlines."""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import pytest

from rva.core import Frame
from rva.sources import MultiSource, SourceStatus, VideoSource


def _make_clip(src: Path, dest: Path, *, frames: int, fmt: str | None = None, codec: str = "libx264") -> Path:
    """Re-encode the first ``frames`` frames of ``src`` at 10 fps into ``dest``."""
    with av.open(str(src)) as inp, av.open(str(dest), "w", format=fmt) as out:
        enc = out.add_stream(codec, rate=10, options={"preset": "ultrafast"} if codec == "libx264" else {})
        enc.width, enc.height, enc.pix_fmt = 768, 576, "yuv420p"
        for i, frame in enumerate(inp.decode(video=0)):
            if i == frames:
                break
            f = frame.reformat(format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, 10)
            out.mux(enc.encode(f))
        out.mux(enc.encode())
    return dest


@pytest.fixture
def make_clip() -> Callable[..., Path]:
    """``make_clip(src, dest, frames=N, fmt=None)``: re-encode a short H.264 clip of ``src``."""
    return _make_clip


Item = tuple[str, Frame | SourceStatus]


def _read_until(
    reader: MultiSource | VideoSource,
    done: Callable[[list[Item]], bool],
    timeout: float,
    arrivals: dict[int, float] | None = None,
) -> list[Item]:
    """Read items until ``done(items)`` holds; fail the test after ``timeout`` seconds.

    ``arrivals`` (if given) gets ``id(item) -> time.monotonic()`` of each item as it was read.
    """
    items: list[Item] = []
    deadline = time.monotonic() + timeout
    while not done(items):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"condition not met within {timeout} s; last items: {items[-5:]}")
        got = reader.read(timeout=min(left, 0.5))
        if got is not None and arrivals is not None:
            arrivals[id(got[1] if isinstance(got, tuple) else got)] = time.monotonic()
        if isinstance(got, tuple):
            items.append(got)
        elif got is not None:
            items.append((reader.camera, got))  # type: ignore[union-attr]
        elif reader.finished:
            raise AssertionError(f"reader finished before the condition held; last items: {items[-5:]}")
    return items


@pytest.fixture
def read_until() -> Callable[..., list[Item]]:
    """``read_until(reader, done, timeout, arrivals=None)``: see :func:`_read_until`."""
    return _read_until
