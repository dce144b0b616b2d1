"""Deadline-based batch assembly across streams: a pure policy object and a thread-safe queue around it.

Frames of many cameras arrive one by one; the GPU wants them in batches. A batch is released when
``max_batch`` frames wait, or when the oldest waiting frame has waited ``max_wait_s`` (its
deadline), whichever comes first, and the consumer takes it only when it is free. So under light
load a frame waits at most ``max_wait_s``, and under heavy load batches fill up by themselves while
the previous one runs: the batch size follows the load with no tuning. (Triton's dynamic batcher,
``max_queue_delay_microseconds``, works the same way.)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a batch is released.

    Attributes:
        max_batch: Largest batch; a full one is released at once.
        max_wait_s: Longest a frame waits for others before a partial batch is released.

    """

    max_batch: int = 64
    max_wait_s: float = 0.008

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"BatchPolicy.max_batch must be >= 1, got {self.max_batch}")
        if not 0 <= self.max_wait_s <= 10:
            raise ValueError(f"BatchPolicy.max_wait_s must be in [0, 10] s, got {self.max_wait_s}")


class DeadlineBatcher(Generic[T]):
    """The batching policy over a FIFO of items, driven by the caller's clock. Pure: no threads, no sleeping."""

    def __init__(self, policy: BatchPolicy) -> None:
        """Create an empty batcher."""
        self.policy = policy
        self._items: deque[tuple[float, T]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, now: float) -> None:
        """Queue ``item``, arrived at ``now`` (seconds, any monotonic clock)."""
        self._items.append((now, item))

    def deadline(self) -> float | None:
        """When the oldest waiting item's deadline expires (None when empty)."""
        return self._items[0][0] + self.policy.max_wait_s if self._items else None

    def ready(self, now: float) -> bool:
        """Whether a batch is due: ``max_batch`` items wait, or the oldest one's deadline has passed."""
        if len(self._items) >= self.policy.max_batch:
            return True
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def take(self, now: float, *, force: bool = False) -> list[T]:
        """Pop the next batch (oldest first, at most ``max_batch``) if one is due, else ``[]``.

        Args:
            now: The current time on the clock :meth:`add` was given.
            force: Release whatever waits even before its deadline (draining at shutdown).

        """
        if not self._items or not (force or self.ready(now)):
            return []
        n = min(len(self._items), self.policy.max_batch)
        return [self._items.popleft()[1] for _ in range(n)]


class BatchQueue(Generic[T]):
    """A :class:`DeadlineBatcher` shared by producer threads and one consumer thread.

    Producers :meth:`put`; the consumer blocks in :meth:`get` until a batch is due. After
    :meth:`close`, ``get`` drains what is left and then returns ``[]``.
    """

    def __init__(self, policy: BatchPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        """Create an open, empty queue whose deadlines run on ``clock``."""
        self._batcher: DeadlineBatcher[T] = DeadlineBatcher(policy)
        self._clock = clock
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0
        self.items = 0

    @property
    def policy(self) -> BatchPolicy:
        """The batching policy."""
        return self._batcher.policy

    def __len__(self) -> int:
        with self._cond:
            return len(self._batcher)

    def put(self, item: T) -> None:
        """Queue an item; wakes the consumer when it completes a batch or is the first to wait."""
        with self._cond:
            self._batcher.add(item, self._clock())
            n = len(self._batcher)
            if n == 1 or n >= self._batcher.policy.max_batch:
                self._cond.notify()

    def put_many(self, items: list[T]) -> None:
        """Queue several items at once (one lock round trip)."""
        with self._cond:
            now = self._clock()
            before = len(self._batcher)
            for item in items:
                self._batcher.add(item, now)
            if before == 0 or len(self._batcher) >= self._batcher.policy.max_batch:
                self._cond.notify()

    def get(self, timeout: float | None = None) -> list[T]:
        """Block until a batch is due and return it; ``[]`` on timeout or once closed and empty."""
        end = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                now = self._clock()
                batch = self._batcher.take(now, force=self._closed)
                if batch:
                    self.batches += 1
                    self.items += len(batch)
                    return batch
                if self._closed:
                    return []
                deadline = self._batcher.deadline()
                wait_until = deadline if end is None else end if deadline is None else min(deadline, end)
                if end is not None and now >= end:
                    return []
                self._cond.wait(None if wait_until is None else max(0.0, wait_until - now))

    def close(self) -> None:
        """Stop accepting the wait: the consumer drains what is queued, then gets ``[]``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
