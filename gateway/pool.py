"""A small thread-safe object pool: database connections, query-layer objects (psycopg_pool is not a dependency)."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from rva.stores.errors import StoreUnavailable

T = TypeVar("T")


class Pool(Generic[T]):
    """At most ``size`` objects checked out at once, reused newest first; broken ones are dropped.

    Args:
        factory: Makes a new object when none is idle.
        size: Most objects in use at once; callers beyond it wait up to ``timeout_s``.
        healthy: Whether a returned object may be reused (default: always).
        close: Releases an object (at :meth:`close`).
        what: What the objects are, for the error message.
        timeout_s: How long a caller waits for a free slot before :class:`StoreUnavailable`.

    """

    def __init__(
        self, factory: Callable[[], T], size: int, *, healthy: Callable[[T], bool] = lambda _: True,
        close: Callable[[T], None] = lambda _: None, what: str = "connection", timeout_s: float = 30.0,
    ) -> None:
        self._factory = factory
        self._healthy = healthy
        self._close = close
        self._idle: queue.LifoQueue[T] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self.what = what
        self.timeout_s = timeout_s

    @contextlib.contextmanager
    def get(self) -> Iterator[T]:
        """Check an object out for the ``with`` block."""
        if not self._slots.acquire(timeout=self.timeout_s):
            raise StoreUnavailable(f"no free {self.what} within {self.timeout_s:.0f} s")
        try:
            try:
                obj = self._idle.get_nowait()
            except queue.Empty:
                obj = self._factory()
            try:
                yield obj
            finally:
                if self._healthy(obj):
                    self._idle.put(obj)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Release every idle object."""
        while True:
            try:
                self._close(self._idle.get_nowait())
            except queue.Empty:
                return
