"""Decode sets in child processes, writing into the worker's frame ring through CUDA IPC.

~100 decode threads in the inference process contend for its GIL: every NVDEC call releases and
re-takes it, and the inference and dispatch threads starve (bench/gpu_notes.md, run 3). Here each
child process runs a :class:`~rva.gpu.decoding.DecodeSet` over its share of the streams and its own
share of the ring's slots; the ring tensor itself is shared (``torch.multiprocessing``: CUDA IPC on
the GPU, shared memory on the CPU). Children send tickets in small bundles; the worker returns each
freed slot to the child that owns it. A frame is in its slot before its ticket leaves the child
(the child synchronises its copy), so the parent's kernels may read it at once.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.multiprocessing as tmp

from rva.gpu.decoding import (
    DecoderFactory,
    DecodeSet,
    DecodeStats,
    FrameRing,
    FrameTicket,
    StreamSpec,
    prefer_blocking_sync,
)

log = logging.getLogger(__name__)

#: A child sends its tickets when this many wait or the oldest waited this long.
BUNDLE_TICKETS, BUNDLE_WAIT_S = 32, 0.001


@dataclass(frozen=True)
class DecodeJob:
    """What one child decodes, and how."""

    index: int
    streams: list[tuple[int, StreamSpec]]
    slots: list[int]
    device: str
    open_decoder: DecoderFactory
    threads: int
    pace_fps: float | None
    drop_when_full: bool
    blocking_sync: bool


def _child(job: DecodeJob, setup: Any, out: Any, release: Any, go: Any, t0: Any, stop: Any) -> None:
    device = torch.device(job.device)
    synced = prefer_blocking_sync(device.index or 0) if job.blocking_sync and device.type == "cuda" else False
    ring = FrameRing(setup.get(), job.slots)  # opens the shared ring (after the context flags are set)
    bundle: queue.SimpleQueue[FrameTicket | None] = queue.SimpleQueue()

    def send() -> None:
        items: list[tuple[Any, ...]] = []
        first = 0.0
        while True:
            try:
                t = bundle.get(timeout=max(0.0, first + BUNDLE_WAIT_S - time.monotonic())) if items else bundle.get()
            except queue.Empty:  # the oldest ticket waited long enough
                out.put(("tickets", items))
                items = []
                continue
            if t is None:
                if items:
                    out.put(("tickets", items))
                return
            if not items:
                first = time.monotonic()
            items.append((t.stream, t.index, t.pts, t.captured, t.decoded, t.slot))
            if len(items) >= BUNDLE_TICKETS:
                out.put(("tickets", items))
                items = []

    def refill() -> None:
        while (slots := release.get()) is not None:
            ring.release(slots)

    threads = [threading.Thread(target=f, daemon=True) for f in (send, refill)]
    for t in threads:
        t.start()
    decode = DecodeSet(job.streams, ring, bundle.put, device=device, open_decoder=job.open_decoder,
                       threads=job.threads, pace_fps=job.pace_fps, drop_when_full=job.drop_when_full)
    out.put(("opened", job.index, decode.open(), synced))
    go.wait()
    decode.go(t0.value)
    stop.wait()
    decode.stop()
    bundle.put(None)
    threads[0].join(5)
    s = decode.stats
    out.put(("stats", job.index, (s.decoded, s.dropped, s.recreated, s.errors)))
    out.close()
    out.join_thread()
    # Skip interpreter teardown: the video codec library's destructors abort ("terminate called
    # without an active exception") when they run after its threads; everything is reported.
    os._exit(0)


class DecodeProcesses:
    """The parent's side: ``processes`` children sharing ``ring`` (see the module docstring)."""

    def __init__(
        self,
        streams: Sequence[tuple[int, StreamSpec]],
        ring: FrameRing,
        emit_many: Callable[[list[FrameTicket]], None],
        *,
        device: torch.device,
        open_decoder: DecoderFactory,
        processes: int,
        threads: int = 0,
        pace_fps: float | None = 30.0,
        drop_when_full: bool = True,
        blocking_sync: bool = True,
    ) -> None:
        """Prepare ``processes`` children; :meth:`open` starts them."""
        self.ring = ring
        self.emit_many = emit_many
        n = max(1, min(processes, len(streams)))
        total = ring.data.shape[0]
        bounds = [total * p // n for p in range(n + 1)]
        self._owner = [0] * total
        for p in range(n):
            self._owner[bounds[p]:bounds[p + 1]] = [p] * (bounds[p + 1] - bounds[p])
        self._jobs = [DecodeJob(p, list(streams[p::n]), list(range(bounds[p], bounds[p + 1])), str(device),
                                open_decoder, threads, pace_fps, drop_when_full, blocking_sync) for p in range(n)]
        ctx = tmp.get_context("spawn")
        self._out = ctx.Queue()
        self._setup = [ctx.Queue() for _ in range(n)]
        self._release = [ctx.Queue() for _ in range(n)]
        for q in self._release:
            q.cancel_join_thread()  # slots released after a child exited must not block our exit
        self._go, self._stop = ctx.Event(), ctx.Event()
        self._t0 = ctx.Value("d", 0.0)
        self._procs = [
            ctx.Process(target=_child, name=f"rva-decode-proc-{p}", daemon=True,
                        args=(job, self._setup[p], self._out, self._release[p], self._go, self._t0, self._stop))
            for p, job in enumerate(self._jobs)
        ]
        self.stats = DecodeStats()
        self.blocking_sync: list[bool] = []
        self._reports = 0
        self._opened = threading.Semaphore(0)
        self._receiver = threading.Thread(target=self._receive, name="rva-decode-receiver", daemon=True)

    @property
    def processes(self) -> int:
        """Number of children."""
        return len(self._procs)

    def open(self, timeout: float = 180.0) -> list[str]:
        """Start the children and return once each has opened its inputs (errors returned)."""
        for proc in self._procs:
            proc.start()
        for q in self._setup:
            q.put(self.ring.data)
        self._receiver.start()
        deadline = time.monotonic() + timeout
        for _ in self._procs:
            if not self._opened.acquire(timeout=max(0.0, deadline - time.monotonic())):
                self.stats.errors.append("a decode process did not open its inputs in time")
                break
        return list(self.stats.errors)

    def go(self, t0: float) -> None:
        """Start decoding in every child; paced packets are due from ``t0``."""
        self._t0.value = t0
        self._go.set()

    def release(self, slots: Sequence[int]) -> None:
        """Give freed slots back to the children that own them."""
        by_owner: dict[int, list[int]] = {}
        for s in slots:
            by_owner.setdefault(self._owner[s], []).append(s)
        for p, mine in by_owner.items():
            self._release[p].put(mine)

    def _receive(self) -> None:
        while self._reports < len(self._procs):
            try:
                msg = self._out.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in self._procs):
                    self.stats.errors.append("decode processes exited without reporting")
                    return
                continue
            kind = msg[0]
            if kind == "tickets":
                self.emit_many([FrameTicket(*t) for t in msg[1]])
            elif kind == "opened":
                self.stats.errors.extend(msg[2])
                self.blocking_sync.append(bool(msg[3]))
                self._opened.release()
            elif kind == "stats":
                decoded, dropped, recreated, errors = msg[2]
                self.stats.add(DecodeStats(decoded, dropped, recreated, list(errors)))
                self._reports += 1

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the children, collect their counts, and join them."""
        self._stop.set()
        self._go.set()
        self._receiver.join(timeout)
        for q in self._release:
            q.put(None)
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
