"""Files the standalone runner writes.

Each is written under a ``.part`` name and renamed when complete, so a run that fails half-way never
leaves a file that looks finished.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import av
import numpy as np
import numpy.typing as npt

from rva.core import Event


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


class _AtomicFile(ABC):
    """Base for outputs written to ``name.part`` and renamed to ``name`` by :meth:`commit`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = _part(path)
        path.unlink(missing_ok=True)  # a stale result of an earlier run must not survive a failed one

    def commit(self) -> Path:
        """Close and publish under the final name."""
        self._close()
        os.replace(self.partial, self.path)
        return self.path

    @abstractmethod
    def _close(self) -> None:
        """Flush and close the partial file."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self._close()  # keep the .part for inspection; never publish it


class EventLog(_AtomicFile):
    """``events.jsonl``: one JSON event per line, flushed as it goes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._fh = self.partial.open("w", encoding="utf-8")
        self.count = 0

    def write(self, events: list[Event]) -> None:
        """Append events."""
        for e in events:
            self._fh.write(e.to_json() + "\n")
        self.count += len(events)

    def _close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class VideoWriter(_AtomicFile):
    """``annotated.mp4``: H.264 via PyAV (FFmpeg's libx264), frames stamped with their PTS."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        super().__init__(path)
        self._container = av.open(str(self.partial), mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = size[0] - size[0] % 2, size[1] - size[1] % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"preset": "veryfast", "crf": "26"}
        self._stream.codec_context.time_base = Fraction(1, 1000)
        self._last_pts = -1
        self._open = True

    def write(self, image: npt.NDArray[np.uint8], pts: float) -> None:
        """Encode one BGR frame at ``pts`` seconds."""
        h, w = self._stream.height, self._stream.width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="bgr24")
        ms = max(round(pts * 1000), self._last_pts + 1)  # mp4 needs strictly increasing PTS
        frame.pts, frame.time_base = ms, Fraction(1, 1000)
        self._last_pts = ms
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _close(self) -> None:
        if self._open:
            self._open = False
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            finally:
                self._container.close()


def write_json_atomic(path: Path, payload: dict[str, Any]) -> Path:
    """Write JSON to ``path`` via a ``.part`` file and an atomic rename."""
    partial = _part(path)
    partial.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path
