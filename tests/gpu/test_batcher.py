"""The deadline batcher: when batches are released, and the thread-safe queue around it."""

from __future__ import annotations

import threading
import time

import pytest

from rva.gpu.batcher import BatchPolicy, BatchQueue, DeadlineBatcher


@pytest.mark.parametrize(
    ("max_batch", "max_wait", "arrivals", "now", "expected"),
    [
        (4, 0.010, [0.000, 0.001, 0.002], 0.005, []),  # partial and before the deadline: wait
        (4, 0.010, [0.000, 0.001, 0.002], 0.010, [0, 1, 2]),  # oldest reached its deadline: release all
        (4, 0.010, [0.000, 0.001, 0.002, 0.003], 0.003, [0, 1, 2, 3]),  # full: release at once
        (4, 0.010, [0.000, 0.001, 0.002, 0.003, 0.004, 0.005], 0.005, [0, 1, 2, 3]),  # full: oldest max_batch
        (4, 0.010, [0.000] * 9, 0.000, [0, 1, 2, 3]),
        (4, 0.000, [0.000], 0.000, [0]),  # no waiting at all
        (1, 0.010, [0.000, 0.001], 0.001, [0]),
        (8, 0.010, [], 1.000, []),  # nothing queued
    ],
)
def test_release_rule(max_batch: int, max_wait: float, arrivals: list[float], now: float, expected: list[int]) -> None:
    batcher: DeadlineBatcher[int] = DeadlineBatcher(BatchPolicy(max_batch, max_wait))
    for i, t in enumerate(arrivals):
        batcher.add(i, t)
    assert batcher.take(now) == expected
    assert len(batcher) == len(arrivals) - len(expected)


@pytest.mark.parametrize(
    ("arrivals", "expected_deadline"),
    [([], None), ([0.5], 0.508), ([0.5, 0.6], 0.508)],
)
def test_deadline_is_the_oldest_items(arrivals: list[float], expected_deadline: float | None) -> None:
    batcher: DeadlineBatcher[int] = DeadlineBatcher(BatchPolicy(4, 0.008))
    for i, t in enumerate(arrivals):
        batcher.add(i, t)
    assert batcher.deadline() == (None if expected_deadline is None else pytest.approx(expected_deadline))


@pytest.mark.parametrize(
    ("interval", "expected_median"),
    [(0.001, 9), (0.00015, 55), (0.0001, 64)],  # light load: deadline-bound; heavier: bigger, up to full
)
def test_batch_size_follows_the_load(interval: float, expected_median: int) -> None:
    """Steady arrivals, a consumer busy 5 ms per batch and free otherwise."""
    batcher: DeadlineBatcher[int] = DeadlineBatcher(BatchPolicy(64, 0.008))
    sizes, now, item, free_at = [], 0.0, 0, 0.0
    while now < 1.0:
        batcher.add(item, now)
        item += 1
        if now >= free_at and (batch := batcher.take(now)):
            sizes.append(len(batch))
            free_at = now + 0.005
        now += interval
    assert sorted(sizes)[len(sizes) // 2] == expected_median
    assert max(sizes) <= 64


def test_force_drains_before_the_deadline() -> None:
    batcher: DeadlineBatcher[int] = DeadlineBatcher(BatchPolicy(4, 10.0))
    batcher.add(1, 0.0)
    assert batcher.take(0.0) == []
    assert batcher.take(0.0, force=True) == [1]


@pytest.mark.parametrize(("max_batch", "max_wait"), [(0, 0.01), (4, -1.0), (4, 11.0)])
def test_policy_rejects_bad_values(max_batch: int, max_wait: float) -> None:
    with pytest.raises(ValueError, match="BatchPolicy"):
        BatchPolicy(max_batch, max_wait)


def test_queue_across_threads_keeps_every_item_in_order() -> None:
    queue: BatchQueue[tuple[int, int]] = BatchQueue(BatchPolicy(16, 0.005))
    got: list[tuple[int, int]] = []
    sizes: list[int] = []

    def consume() -> None:
        while batch := queue.get():
            sizes.append(len(batch))
            got.extend(batch)

    consumer = threading.Thread(target=consume)
    consumer.start()

    def produce(p: int) -> None:
        for i in range(200):
            queue.put((p, i))
            if i % 20 == 0:
                time.sleep(0.001)

    producers = [threading.Thread(target=produce, args=(p,)) for p in range(4)]
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    queue.close()
    consumer.join(5)
    assert not consumer.is_alive()
    assert len(got) == 800 and max(sizes) <= 16
    for p in range(4):  # each producer's items come out in the order it put them
        assert [i for q, i in got if q == p] == list(range(200))
    assert queue.items == 800 and queue.batches == len(sizes)


def test_queue_releases_a_partial_batch_at_its_deadline() -> None:
    queue: BatchQueue[int] = BatchQueue(BatchPolicy(64, 0.05))
    t = time.monotonic()
    queue.put(1)
    assert queue.get(timeout=2.0) == [1]
    assert 0.04 <= time.monotonic() - t < 1.0


def test_queue_get_times_out_empty() -> None:
    queue: BatchQueue[int] = BatchQueue(BatchPolicy(4, 0.01))
    t = time.monotonic()
    assert queue.get(timeout=0.05) == []
    assert time.monotonic() - t >= 0.04
