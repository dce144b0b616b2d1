"""Read several sources fairly from one thread, for the single-process runner."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType

from rva.core import Frame
from rva.sources.base import SourceStatus, VideoSource


class MultiSource:
    """Interleaves frames and status records of several sources, one item per source per round.

    Every source decodes in its own thread; this only takes what is ready, so a stalled, dead or
    reconnecting source never delays another, and a fast one cannot starve a slow one. Sources can
    be added and removed while iterating (cameras come and go without a restart). Iteration ends
    when every source has finished, or after :meth:`close`.

    Example:
        >>> with MultiSource(open_source(c) for c in cfg.cameras) as cams:  # doctest: +SKIP
        ...     for camera_id, item in cams:
        ...         ...

    """

    def __init__(self, sources: Iterable[VideoSource] = (), *, poll_s: float = 0.5) -> None:
        """Create a reader over ``sources``.

        Args:
            sources: Sources to read; they are closed by :meth:`close` and :meth:`remove`.
            poll_s: Longest sleep between looks when no source has anything ready.

        """
        self.poll_s = poll_s
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._sources: dict[str, VideoSource] = {}
        self._closed = False
        self._start = 0  # where the next look begins: round-robin over sources
        for source in sources:
            self.add(source)

    @property
    def cameras(self) -> list[str]:
        """Ids of the sources still being read."""
        with self._lock:
            return list(self._sources)

    def add(self, source: VideoSource) -> None:
        """Start reading ``source`` too.

        Raises:
            ValueError: A source of that camera id is already being read.

        """
        with self._lock:
            if source.camera in self._sources:
                raise ValueError(f"camera {source.camera!r} is already being read")
            self._sources[source.camera] = source
        source.add_waker(self._ready.set)
        self._ready.set()

    def remove(self, camera: str) -> None:
        """Stop reading camera ``camera`` and close its source (no-op if unknown)."""
        with self._lock:
            source = self._sources.pop(camera, None)
        if source is not None:
            source.close()

    @property
    def finished(self) -> bool:
        """True once every source has finished (or :meth:`close` was called)."""
        with self._lock:
            return self._closed or not self._sources

    def read(self, timeout: float | None = None) -> tuple[str, Frame | SourceStatus] | None:
        """Return the next ``(camera id, frame or status record)`` from whichever source has one.

        Sources take turns: after serving one, the next call looks first at the one after it.

        Args:
            timeout: Seconds to wait when nothing is ready (None: until something comes).

        Returns:
            The item, or None after ``timeout``, once every source has finished, or after close.

        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            self._ready.clear()  # before looking, so an item queued meanwhile still wakes us
            with self._lock:
                sources = list(self._sources.values())
            if not sources:
                return None
            for k in range(len(sources)):
                i = (self._start + k) % len(sources)
                source = sources[i]
                item = source.read(timeout=0)
                if source.finished:
                    self._forget(source)
                if item is not None:
                    self._start = i + 1
                    return source.camera, item
            wait = self.poll_s if deadline is None else min(self.poll_s, deadline - time.monotonic())
            if wait <= 0:
                return None
            self._ready.wait(wait)
        return None

    def __iter__(self) -> Iterator[tuple[str, Frame | SourceStatus]]:
        while (item := self.read()) is not None:
            yield item

    def _forget(self, source: VideoSource) -> None:
        with self._lock:
            if self._sources.get(source.camera) is source:
                del self._sources[source.camera]

    def close(self) -> None:
        """Close every source; iteration stops."""
        self._closed = True
        with self._lock:
            sources, self._sources = list(self._sources.values()), {}
        for source in sources:
            source.close()
        self._ready.set()

    def __enter__(self) -> MultiSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
