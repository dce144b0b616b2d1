"""Tracking and analytics of many cameras on CPU worker processes, fed by the GPU workers' batches.

Each camera belongs to one process (``stream % processes``), which holds its
:class:`~rva.pipeline.camera.CameraPipeline` (ByteTrack + analytics: the same pure objects the
standalone runner and the services use). Batches are split per process and sent over
``multiprocessing`` queues as compact NumPy rows (:mod:`rva.gpu.packed`); a camera's frames stay in
order because one dispatch thread sends them and each process reads its queue in order. Processes
sidestep the GIL, so 16 cores track ~100 cameras while the parent process decodes and infers.

Each process records, per frame, the capture time and the time its ``step`` returned (the moment its
events exist): the frame -> event latency. Both are ``time.monotonic()``, one clock for all
processes on Linux. Torch-free: the processes never import it.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rva.config import CameraConfig, TrackerConfig
from rva.gpu.packed import unpack_rows

if TYPE_CHECKING:
    from rva.gpu.worker import DetectionBatch


@dataclass
class PoolReport:
    """What the processes measured during one run (between :meth:`AnalyticsPool.start_run` and ``finish_run``).

    Attributes:
        stream: ``(n,)`` stream index of each processed frame.
        captured: ``(n,)`` capture time (monotonic s) of each frame.
        decoded: ``(n,)`` when it was decoded into its ring slot.
        ready: ``(n,)`` when its detections reached host memory.
        done: ``(n,)`` when its tracking + analytics step returned.
        events: Events emitted, by type (including those closed at the end of the run).
        tracked: Confirmed-track rows seen, summed over frames.
        step_s: Time spent inside ``CameraPipeline.step``, summed over processes.
        cpu_s: CPU time the processes used during the run.
        wall_s: Wall time of the run, per process, summed.

    """

    stream: npt.NDArray[np.int64]
    captured: npt.NDArray[np.float64]
    decoded: npt.NDArray[np.float64]
    ready: npt.NDArray[np.float64]
    done: npt.NDArray[np.float64]
    events: Counter[str] = field(default_factory=Counter)
    tracked: int = 0
    step_s: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0


def _serve(inbox: Any, outbox: Any, tracker: dict[str, Any]) -> None:
    """A worker process: build pipelines on ``reset``, step them on ``frames``, report on ``finish``."""
    from rva.pipeline.camera import CameraPipeline

    tracker_cfg = TrackerConfig.model_validate(tracker)
    pipes: dict[int, CameraPipeline] = {}
    streams: list[int] = []
    times: list[list[float]] = [[], [], []]  # captured, decoded, ready
    done: list[float] = []
    events: Counter[str] = Counter()
    tracked = 0
    step_s = cpu0 = wall0 = 0.0
    kpt_shape: tuple[int, int] | None = None
    fallen = np.zeros(0, np.bool_)
    while True:
        msg = inbox.get()
        kind = msg[0]
        if kind == "frames":
            _, ids, pts, stamps, counts, rows = msg
            for j in range(len(ids)):
                dets = unpack_rows(rows[j, : min(int(counts[j]), rows.shape[1])], kpt_shape, fallen)
                t = time.perf_counter()
                step = pipes[int(ids[j])].step(dets, float(pts[j]))
                step_s += time.perf_counter() - t
                done.append(time.monotonic())
                for event in step.events:
                    events[str(event.type)] += 1
                tracked += len(step.tracked)
            streams.extend(ids.tolist())
            for column, values in zip(times, stamps, strict=True):
                column.extend(values.tolist())
        elif kind == "reset":
            _, cameras, frame_size, kpt_shape, fallen = msg
            pipes = {i: CameraPipeline(CameraConfig.model_validate(c), tracker_cfg, frame_size) for i, c in cameras}
            streams, times, done, events, tracked, step_s = [], [[], [], []], [], Counter(), 0, 0.0
            cpu0, wall0 = time.process_time(), time.monotonic()
            outbox.put(("ready",))
        elif kind == "finish":
            for pipe in pipes.values():
                for event in pipe.finish():
                    events[str(event.type)] += 1
            outbox.put(("report", PoolReport(
                np.asarray(streams, np.int64), np.asarray(times[0]), np.asarray(times[1]), np.asarray(times[2]),
                np.asarray(done), events, tracked, step_s, time.process_time() - cpu0, time.monotonic() - wall0,
            )))
        elif kind == "stop":
            return


class AnalyticsPool:
    """``processes`` CPU processes running each camera's tracker and analytics (see the module docstring)."""

    def __init__(
        self,
        processes: int,
        tracker: TrackerConfig,
        *,
        start_method: str = "spawn",
    ) -> None:
        """Start the processes (spawned: safe next to CUDA and threads in the parent).

        Args:
            processes: Worker processes (>= 1).
            tracker: ByteTrack parameters for every camera.
            start_method: ``multiprocessing`` start method.

        """
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        ctx: Any = mp.get_context(start_method)
        self._inboxes = [ctx.Queue() for _ in range(processes)]
        self._outbox = ctx.Queue()
        self._procs = [ctx.Process(target=_serve, args=(q, self._outbox, tracker.model_dump(mode="json")), daemon=True,
                                   name=f"rva-analytics-{i}") for i, q in enumerate(self._inboxes)]
        for proc in self._procs:
            proc.start()
        self._lock = threading.Lock()
        self.frames_sent = 0

    @property
    def processes(self) -> int:
        """Number of worker processes."""
        return len(self._procs)

    def start_run(
        self,
        cameras: Sequence[CameraConfig],
        frame_size: tuple[int, int],
        kpt_shape: tuple[int, int] | None,
        fallen: npt.NDArray[np.bool_],
        timeout: float = 120,
    ) -> None:
        """Give every process fresh pipelines for its cameras and wait until they are ready.

        Args:
            cameras: Stream ``i``'s camera is ``cameras[i]``.
            frame_size: ``(w, h)`` of the decoded frames.
            kpt_shape: The model's keypoint layout (None: detector), to unpack rows.
            fallen: Per model class id, whether it means a person lying down.
            timeout: Seconds to wait for the processes.

        """
        n = len(self._procs)
        for p, inbox in enumerate(self._inboxes):
            mine = [(i, cam.model_dump(mode="json")) for i, cam in enumerate(cameras) if i % n == p]
            inbox.put(("reset", mine, frame_size, kpt_shape, fallen))
        for _ in range(n):
            self._outbox.get(timeout=timeout)
        self.frames_sent = 0

    def submit(self, batch: DetectionBatch) -> None:
        """Send a batch's frames to the processes owning their cameras (thread-safe)."""
        tickets = batch.tickets
        ids = np.fromiter((t.stream for t in tickets), np.int64, len(tickets))
        pts = np.fromiter((t.pts for t in tickets), np.float64, len(tickets))
        stamps = np.array([[t.captured for t in tickets], [t.decoded for t in tickets],
                           [batch.ready] * len(tickets)])
        owner = ids % len(self._procs)
        with self._lock:
            for p in np.unique(owner):
                sel = np.flatnonzero(owner == p)
                counts = batch.counts[sel]
                width = int(min(max(int(counts.max()), 1), batch.packed.shape[1]))
                rows = np.ascontiguousarray(batch.packed[sel, :width])
                self._inboxes[int(p)].put(("frames", ids[sel], pts[sel], stamps[:, sel], counts, rows))
            self.frames_sent += len(tickets)

    def finish_run(self, timeout: float = 60) -> PoolReport:
        """End the run: close every camera's tracks and analytics, and merge the processes' reports."""
        for inbox in self._inboxes:
            inbox.put(("finish",))
        reports: list[PoolReport] = [self._outbox.get(timeout=timeout)[1] for _ in self._procs]
        def cat(key: str) -> npt.NDArray[Any]:
            return np.concatenate([getattr(r, key) for r in reports])

        merged = PoolReport(cat("stream"), cat("captured"), cat("decoded"), cat("ready"), cat("done"))
        for r in reports:
            merged.events.update(r.events)
            merged.tracked += r.tracked
            merged.step_s += r.step_s
            merged.cpu_s += r.cpu_s
            merged.wall_s += r.wall_s
        return merged

    def close(self, timeout: float = 5.0) -> None:
        """Stop the processes."""
        for inbox in self._inboxes:
            inbox.put(("stop",))
        for proc in self._procs:
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
