"""One camera's bounded frame buffer between its reader thread and the gRPC stream (asyncio).

Live sources (network, USB, or a file paced in real time) drop the oldest frame when the buffer is
full, counting it, so a slow consumer never makes the view lag; plain files make the reader wait
instead, so a file is analysed completely however slow the consumer is. Status records are never
dropped (they are rare and carry the stream's state).
"""

from __future__ import annotations

import asyncio
import collections
import threading

from rva.core import Frame
from rva.sources import SourceStatus

Item = Frame | SourceStatus


class CameraFeed:
    """A bounded, thread-safe buffer read from asyncio.

    Args:
        camera: Camera id.
        capacity: Frames held at most.
        live: Drop the oldest frame when full (True) or make the producer wait (False).

    """

    def __init__(self, camera: str, capacity: int, live: bool) -> None:
        self.camera = camera
        self.capacity = capacity
        self.live = live
        self.dropped = 0
        self.decoded = 0
        self.ended = False
        self._items: collections.deque[tuple[Item, float]] = collections.deque()
        self._frames = 0
        self._cond = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def __len__(self) -> int:
        with self._cond:
            return self._frames

    def put(self, item: Item, stop: threading.Event, ts: float) -> bool:
        """Add an item from the reader thread; False if ``stop`` was set while waiting for room.

        Args:
            item: Frame or status record.
            stop: Set to abandon a wait for room (shutdown).
            ts: ``time.monotonic()`` when the item was read (buffer latency starts here).

        """
        with self._cond:
            if isinstance(item, Frame):
                self.decoded += 1
                while self._frames >= self.capacity:
                    if self.live:
                        self._drop_oldest_frame()
                        break
                    self._cond.wait(0.2)
                    if stop.is_set():
                        return False
                self._frames += 1
            self._items.append((item, ts))
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        return True

    def _drop_oldest_frame(self) -> None:
        for i, (queued, _) in enumerate(self._items):
            if isinstance(queued, Frame):
                del self._items[i]
                self._frames -= 1
                self.dropped += 1
                return

    def pop(self) -> tuple[Item, float] | None:
        """Take the oldest item, or None when empty (never blocks)."""
        with self._cond:
            if not self._items:
                return None
            item = self._items.popleft()
            if isinstance(item[0], Frame):
                self._frames -= 1
                self._cond.notify_all()
            return item

    def add_waiter(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        """Have ``event`` set (in ``loop``) whenever an item arrives."""
        with self._cond:
            self._waiters.append((loop, event))
        if self._items:
            loop.call_soon_threadsafe(event.set)

    def remove_waiter(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        """Undo :meth:`add_waiter`."""
        with self._cond:
            if (loop, event) in self._waiters:
                self._waiters.remove((loop, event))
