"""The per-GPU worker set: decoding -> frame ring -> deadline batcher -> one CUDA graph per batch -> dispatch.

One :class:`GpuWorker` per GPU (:func:`start_workers` makes one per device and shares the sink):

* **decoding** (:mod:`rva.gpu.decoding`): paced NVDEC decode threads, one per stream, copy each frame
  into a slot of the worker's :class:`~rva.gpu.decoding.FrameRing` and announce it with a ticket. They
  run in child processes (:mod:`rva.gpu.decode_procs`; ``decode_processes``) so that ~100 threads
  do not share the inference thread's GIL, or in this process (``decode_processes=0``).
* the **batcher** (:class:`~rva.gpu.batcher.BatchQueue`) releases a batch when ``max_batch`` frames
  wait or the oldest has waited ``max_wait_s``.
* the **inference thread** replays one CUDA graph per batch (:class:`~rva.gpu.batch_graph.BatchGraphs`:
  NV12 slots -> letterboxed input -> network -> head decoding + NMS -> packed rows) and starts the
  asynchronous copy of the rows to pinned host memory: three Python calls a batch, no wait for the GPU.
* the **dispatch thread** waits for each batch's copy, frees its ring slots and hands a
  :class:`DetectionBatch` to the sink (e.g. :class:`~rva.gpu.analytics_pool.AnalyticsPool`, which
  runs tracking and analytics on CPU processes). ``in_flight`` batches may be in the GPU queue at once.

Everything also runs on a CPU device with :func:`~rva.gpu.decoding.pyav_factory` (tests).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from rva.gpu.batch_graph import BatchGraphs
from rva.gpu.batcher import BatchPolicy, BatchQueue
from rva.gpu.decode_procs import DecodeProcesses
from rva.gpu.decoding import (
    DecoderFactory,
    DecodeSet,
    DecodeStats,
    FrameRing,
    FrameTicket,
    StreamSpec,
    nvdec_factory,
    probe_size,
)
from rva.gpu.nms import BatchDecoder
from rva.gpu.preprocess import Matrix
from rva.gpu.torch_detector import TorchYoloEngine

log = logging.getLogger(__name__)

__all__ = ["DetectionBatch", "FrameTicket", "GpuWorker", "StreamSpec", "WorkerSettings", "start_workers"]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Knobs of one worker set (see the module docstring).

    Attributes:
        decode_processes: Child processes that decode (None: one per ``streams_per_process``
            streams; 0: decode threads in the worker's own process). Each is one more CUDA context
            the GPU time-slices with inference, and each holds one GIL for its decode threads: on
            the H100, 2 processes for 96 streams beat 1 (decoding lagged) and 4-7 (GPU time lost).
        streams_per_process: Streams per decode process when ``decode_processes`` is None.
        decode_threads: Decode threads per process (0: one per stream).
        policy: When batches are released.
        ring_slots: Frames the ring holds (decoded, waiting or being inferred).
        pace_fps: Packets due at this rate per stream (live cameras); None: as fast as it goes.
        in_flight: Batches queued on the GPU ahead of the dispatch thread.
        matrix: The streams' YUV matrix.
        drop_when_full: Drop a frame when the ring is full (live) instead of waiting (throughput runs).
        blocking_sync: Decode processes sleep in CUDA waits instead of spinning.

    """

    decode_processes: int | None = None
    streams_per_process: int = 48
    decode_threads: int = 0
    policy: BatchPolicy = field(default_factory=lambda: BatchPolicy(64, 0.008))
    ring_slots: int = 512
    pace_fps: float | None = 30.0
    in_flight: int = 3
    matrix: Matrix = "bt601"
    drop_when_full: bool = True
    blocking_sync: bool = True


@dataclass(slots=True)
class DetectionBatch:
    """What the dispatch thread hands to the sink: the frames of a batch and their packed detections.

    Attributes:
        tickets: The frames, in batch order.
        packed: ``(n, limit, cols)`` rows (see :mod:`rva.gpu.packed`), host memory.
        counts: ``(n,)`` kept boxes per frame.
        ready: Monotonic time the rows reached the host.
        gpu: Index of the worker that made it.

    """

    tickets: list[FrameTicket]
    packed: npt.NDArray[np.float32]
    counts: npt.NDArray[np.int64]
    ready: float
    gpu: int = 0


@dataclass
class WorkerStats:
    """Counters of one worker (read after :meth:`GpuWorker.stop`)."""

    decode: DecodeStats = field(default_factory=DecodeStats)
    batches: int = 0
    frames_out: int = 0
    nms_settled: int = 0
    overflow: int = 0
    errors: list[str] = field(default_factory=list)


class GpuWorker:
    """Decode, batch and infer a set of streams on one device; results go to ``sink`` (see module docstring).

    One worker at a time per engine: the frame ring and the captured batch graphs live in the
    engine's cache and are reused by the next worker on it.
    """

    def __init__(
        self,
        streams: Sequence[StreamSpec],
        engine: TorchYoloEngine,
        decoder: BatchDecoder,
        sink: Callable[[DetectionBatch], None],
        settings: WorkerSettings | None = None,
        *,
        open_decoder: DecoderFactory = nvdec_factory,
        stream_ids: Sequence[int] | None = None,
    ) -> None:
        """Prepare the worker; :meth:`open` opens the inputs, :meth:`go` starts them.

        Args:
            streams: The inputs this worker decodes (one resolution per worker).
            engine: The network, on this worker's device.
            decoder: Head decoding + NMS matching the engine's model.
            sink: Receives each :class:`DetectionBatch` (called in the dispatch thread; keep it quick).
            settings: Processes, threads, batching, pacing.
            open_decoder: Opens one input (a module-level function: decode processes import it).
            stream_ids: Global index of each stream, carried by its tickets (default ``0..n-1``).

        """
        self.streams = list(streams)
        self.engine = engine
        self.decoder = decoder
        self.sink = sink
        self.settings = settings or WorkerSettings()
        if self.settings.policy.max_batch > engine.max_batch:
            raise ValueError(f"max_batch {self.settings.policy.max_batch} exceeds the engine's {engine.max_batch}")
        self.device = engine.device
        self._open_decoder = open_decoder
        ids = list(range(len(self.streams)) if stream_ids is None else stream_ids)
        if len(ids) != len(self.streams):
            raise ValueError(f"{len(ids)} stream ids for {len(self.streams)} streams")
        self._pairs = list(zip(ids, self.streams, strict=True))
        self.queue: BatchQueue[FrameTicket] = BatchQueue(self.settings.policy)
        self._dispatch: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._in_flight = threading.Semaphore(self.settings.in_flight)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.stats = WorkerStats()
        self._lock = threading.Lock()
        self.t0 = 0.0
        self.ring: FrameRing | None = None
        self.graphs: BatchGraphs | None = None
        self._decode: DecodeSet | DecodeProcesses | None = None

    # --- life ----------------------------------------------------------------------------------------

    def start(self, t0: float | None = None) -> None:
        """:meth:`open` the inputs, then :meth:`go`."""
        self.open()
        self.go(t0)

    def open(self) -> None:
        """Allocate (or reuse) the ring and graphs, start decoding's processes/threads, open every input.

        Raises:
            RuntimeError: no input could be opened (the reasons are in ``stats.errors``).

        """
        if not self.streams:
            raise ValueError("a worker needs at least one stream")
        width, height = probe_size(self.streams[0], self.device, self._open_decoder)
        s = self.settings
        key = ("ring", width, height, s.ring_slots, s.matrix, id(self.decoder))
        cached = self.engine.cache.get(key)
        if cached is None:
            ring = FrameRing.allocate(s.ring_slots, width, height, self.device)
            if self.device.type == "cpu":
                ring.data.share_memory_()  # decode processes write into it
            cached = self.engine.cache[key] = (ring, BatchGraphs(self.engine, self.decoder, ring.data,
                                                                 (width, height), s.matrix))
        ring, graphs = cached  # type: ignore[misc]
        self.ring, self.graphs = ring, graphs
        ring.reset()
        graphs.prepare()
        processes = s.decode_processes
        if processes is None:
            processes = math.ceil(len(self.streams) / max(1, s.streams_per_process))
        if processes == 0:
            self._decode = DecodeSet(self._pairs, ring, self.queue.put, device=self.device,
                                     open_decoder=self._open_decoder, threads=s.decode_threads,
                                     pace_fps=s.pace_fps, drop_when_full=s.drop_when_full)
        else:
            self._decode = DecodeProcesses(
                self._pairs, ring, self.queue.put_many, device=self.device, open_decoder=self._open_decoder,
                processes=processes, threads=s.decode_threads, pace_fps=s.pace_fps,
                drop_when_full=s.drop_when_full, blocking_sync=s.blocking_sync)
        errors = self._decode.open()
        self.stats.errors.extend(errors)
        if len(errors) >= len(self.streams):
            self._decode.stop(1.0)
            raise RuntimeError(f"worker on {self.device}: no input could be opened: {errors[:3]}")
        self._spawn(f"rva-infer-{self.device}", self._infer_loop)
        self._spawn(f"rva-dispatch-{self.device}", self._dispatch_loop)

    def go(self, t0: float | None = None) -> None:
        """Start decoding; paced streams are due from ``t0`` (monotonic; default now + 0.1 s)."""
        assert self._decode is not None, "open() first"
        self.t0 = time.monotonic() + 0.1 if t0 is None else t0
        self._decode.go(self.t0)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop decoding, finish the batches already decoded, and join the threads."""
        if self._decode is not None:
            self._decode.stop(timeout)
            self.stats.decode = self._decode.stats
        self._stop.set()
        self.queue.close()
        for thread in self._threads:
            thread.join(timeout)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guard, args=(target,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _guard(self, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception as err:  # a dead thread must not hang the others silently
            log.exception("GPU worker thread %s failed", threading.current_thread().name)
            with self._lock:
                self.stats.errors.append(f"{threading.current_thread().name}: {type(err).__name__}: {err}")
            self._stop.set()
            self.queue.close()
            self._dispatch.put(None)

    # --- inference and dispatch ----------------------------------------------------------------------

    def _infer_loop(self) -> None:
        engine, graphs = self.engine, self.graphs
        assert graphs is not None
        with torch.inference_mode(), engine.stream_context():
            while True:
                tickets = self.queue.get(timeout=0.2)
                if not tickets:
                    if self._stop.is_set() and len(self.queue) == 0:
                        break
                    continue
                packed, meta = graphs.run([t.slot for t in tickets])
                host = (_to_host(packed), _to_host(meta))
                done = torch.cuda.Event() if engine.is_cuda else None
                if done is not None:
                    done.record()
                self._in_flight.acquire()
                self._dispatch.put((tickets, host, done))
        self._dispatch.put(None)

    def _dispatch_loop(self) -> None:
        graphs, decode = self.graphs, self._decode
        assert graphs is not None and decode is not None
        while (item := self._dispatch.get()) is not None:
            tickets, host, done = item
            if done is not None:
                done.synchronize()
            packed, meta = host[0].numpy(), host[1].numpy()
            counts = meta[:, 0].astype(np.int64)
            unsettled = np.flatnonzero(meta[:, 1] == 0)
            if len(unsettled):
                # NMS needed more passes than the graph runs: recompute those frames exactly.
                rows, kept = graphs.exact([tickets[i].slot for i in unsettled])
                packed, counts = packed.copy(), counts.copy()
                packed[unsettled], counts[unsettled] = rows, kept
            decode.release([t.slot for t in tickets])
            with self._lock:
                self.stats.batches += 1
                self.stats.frames_out += len(tickets)
                self.stats.nms_settled += len(unsettled)
                self.stats.overflow += int(meta[:, 2].sum())
            self._in_flight.release()
            self.sink(DetectionBatch(tickets, packed, counts, time.monotonic(), self.device.index or 0))


def _to_host(t: torch.Tensor) -> torch.Tensor:
    """Start an asynchronous copy into pinned host memory (plain copy on the CPU)."""
    if not t.is_cuda:
        return t.clone()
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    return out


def start_workers(
    streams: Sequence[StreamSpec],
    engines: Sequence[TorchYoloEngine],
    decoders: Sequence[BatchDecoder],
    sink: Callable[[DetectionBatch], None],
    settings: WorkerSettings | None = None,
    *,
    open_decoder: DecoderFactory = nvdec_factory,
    t0: float | None = None,
) -> list[GpuWorker]:
    """Split ``streams`` over one worker per engine (one engine per GPU), open every input, then start all.

    Streams go round-robin to the GPUs; every worker calls the same ``sink`` (it must be thread-safe).
    Paced streams are due from ``t0`` (default: 0.1 s after the last input opened; see ``GpuWorker.t0``).
    """
    workers = []
    for g, (engine, decoder) in enumerate(zip(engines, decoders, strict=True)):
        ids = list(range(g, len(streams), len(engines)))
        workers.append(GpuWorker([streams[i] for i in ids], engine, decoder, sink, settings,
                                 open_decoder=open_decoder, stream_ids=ids))
    try:
        for worker in workers:
            worker.open()
    except Exception:
        for worker in workers:
            worker.stop(1.0)
        raise
    t0 = time.monotonic() + 0.1 if t0 is None else t0
    for worker in workers:
        worker.go(t0)
    return workers
