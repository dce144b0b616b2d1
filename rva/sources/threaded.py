"""A source whose frames come from its own background thread through a bounded, counted queue."""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from rva.core import Frame
from rva.sources.base import TERMINAL_STATES, SourceState, SourceStatus, StatusCallback, VideoSource

log = logging.getLogger(__name__)


class _Decoded(NamedTuple):
    pts: float
    image: npt.NDArray[np.uint8]


class FrameChannel:
    """A queue of decoded frames and status records between one producer and one consumer thread.

    At most ``capacity`` frames wait at once. When full, the producer either blocks (files: every
    frame is analysed) or drops the oldest waiting frame and counts it (live: the consumer always
    gets the freshest frame). Status records are never dropped and keep their place in the order.
    """

    def __init__(self, capacity: int, *, drop_oldest: bool) -> None:
        """Create a channel.

        Args:
            capacity: Frames that may wait at once (>= 1).
            drop_oldest: Drop the oldest waiting frame instead of blocking when full.

        """
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._cond = threading.Condition()
        self._items: deque[Any] = deque()
        self._frames = 0
        self._closed = False
        self._wakers: list[Callable[[], None]] = []

    def add_waker(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from the producer thread) after every put."""
        with self._cond:
            self._wakers.append(wake)

    def put_frame(self, item: object) -> bool:
        """Queue a frame; False if the channel was closed (the producer should stop)."""
        with self._cond:
            if self.drop_oldest:
                while self._frames >= self.capacity:
                    self._drop_oldest_frame()
            else:
                self._cond.wait_for(lambda: self._frames < self.capacity or self._closed)
            if self._closed:
                return False
            self._items.append(item)
            self._frames += 1
            self._cond.notify_all()
            wakers = list(self._wakers)
        for wake in wakers:
            wake()
        return True

    def put_status(self, status: SourceStatus) -> None:
        """Queue a status record (never dropped)."""
        with self._cond:
            if self._closed:
                return
            self._items.append(status)
            self._cond.notify_all()
            wakers = list(self._wakers)
        for wake in wakers:
            wake()

    def get(self, timeout: float | None) -> Any:
        """Pop the oldest item; None after ``timeout`` seconds or once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout) or not self._items:
                return None
            item = self._items.popleft()
            if not isinstance(item, SourceStatus):
                self._frames -= 1
                self._cond.notify_all()
            return item

    def close(self) -> None:
        """Wake both sides; later puts are refused and gets return None."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._frames = 0
            self._cond.notify_all()

    def _drop_oldest_frame(self) -> None:
        for i, item in enumerate(self._items):
            if not isinstance(item, SourceStatus):
                del self._items[i]
                self._frames -= 1
                self.dropped += 1
                return


class ThreadedSource(VideoSource):
    """Base of sources that decode in a daemon thread: subclasses implement :meth:`_produce`.

    The producer calls :meth:`_deliver` per frame and :meth:`_emit` per state change, and checks
    :attr:`_stop` between blocking steps. Frames get their ``index`` when the consumer reads them,
    so indices stay sequential even when frames were dropped.
    """

    def __init__(
        self,
        camera: str,
        *,
        queue_size: int,
        drop_oldest: bool,
        on_status: StatusCallback | None = None,
        join_timeout_s: float = 1.0,
    ) -> None:
        super().__init__(camera, on_status)
        self._channel = FrameChannel(queue_size, drop_oldest=drop_oldest)
        self._stop = threading.Event()
        self._state = SourceState.CONNECTING
        self._last_pts: float | None = None
        self._next_index = 0
        self._finished = False
        self._join_timeout_s = join_timeout_s
        self._thread = threading.Thread(target=self._main, name=f"rva-source-{camera}", daemon=True)

    # --- producer side ---------------------------------------------------------------------------

    @abstractmethod
    def _produce(self) -> None:
        """Decode until the input ends, fails for good, or :attr:`_stop` is set."""

    def _start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        try:
            self._produce()
        except Exception as err:  # a bug or an unforeseen FFmpeg error must not die silently
            log.exception("camera %s: source thread crashed", self.camera)
            self._emit(SourceState.FAILED, error=f"{type(err).__name__}: {err}")
        if self._state not in TERMINAL_STATES:
            self._emit(SourceState.ENDED, detail="closed" if self._stop.is_set() else None)

    def _emit(self, state: SourceState, **fields: Any) -> None:
        """Enter ``state`` and queue its record; ``fields`` fill :class:`SourceStatus`."""
        self._state = state
        fields.setdefault("pts", self._last_pts)
        status = SourceStatus(camera=self.camera, state=state, ts_wall=time.time(), **fields)
        level = logging.WARNING if status.error else logging.INFO
        log.log(level, "camera %s: %s%s", self.camera, state, f" ({status.error})" if status.error else "")
        self._channel.put_status(status)

    def _deliver(self, pts: float, image: npt.NDArray[np.uint8]) -> bool:
        """Queue a frame; False once the source is closed."""
        self._last_pts = pts
        return self._channel.put_frame(_Decoded(pts, image))

    # --- consumer side ---------------------------------------------------------------------------

    @property
    def state(self) -> SourceState:
        """The producer's current state."""
        return self._state

    @property
    def frames_dropped(self) -> int:
        """Frames dropped because the consumer lagged (only when ``drop_oldest``)."""
        return self._channel.dropped

    @property
    def frames_delivered(self) -> int:
        """Frames the consumer has read."""
        return self._next_index

    @property
    def finished(self) -> bool:
        """True once the terminal record was read or the source was closed."""
        return self._finished

    def add_waker(self, wake: Callable[[], None]) -> None:
        """Register ``wake``, called from the decode thread after each frame or record is queued."""
        self._channel.add_waker(wake)

    def read(self, timeout: float | None = None) -> Frame | SourceStatus | None:
        """Return the next frame or status record (see :meth:`VideoSource.read`)."""
        if self._finished:
            return None
        item = self._channel.get(timeout)
        if item is None:
            return None
        if isinstance(item, SourceStatus):
            if item.state in TERMINAL_STATES:
                self._finished = True
            return replace(item, frames=self._next_index, dropped=self._channel.dropped)
        frame = Frame(camera=self.camera, index=self._next_index, pts=item.pts, image=item.image)
        self._next_index += 1
        return frame

    def close(self) -> None:
        """Stop the thread and drop what is queued.

        Waits up to ``join_timeout_s`` for the thread. A thread blocked inside FFmpeg on a silent
        network read is left to finish by itself within the source's read timeout; it holds no
        lock and is a daemon, so it never blocks the caller or interpreter exit.
        """
        self._stop.set()
        self._channel.close()
        self._finished = True
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(self._join_timeout_s)
        if self._state not in TERMINAL_STATES:
            self._state = SourceState.ENDED
