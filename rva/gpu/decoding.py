"""The decode side of a GPU worker: paced decode threads writing NV12 frames into a shared frame ring.

A :class:`DecodeSet` owns some streams, one thread per stream by default: a low-latency NVDEC call
blocks its thread for the frame's whole decode (5-15 ms when many sessions are busy), so a thread
serving several 30 fps streams falls behind long before the engines are busy (bench/gpu_notes.md,
run 2). With ``pace_fps`` a stream's packets are due at that rate from a staggered start, like
cameras pushing frames; a frame's *capture time* is its due time, and every latency is measured
from it. Each frame is copied device-to-device into a free slot of a :class:`FrameRing` (the decoder
reuses its surfaces) and announced by a :class:`FrameTicket`; with no free slot the frame is dropped
and counted, as a live source would (or, for throughput runs, the thread waits).

A worker runs its decode sets in its own process (threads) or in child processes
(:mod:`rva.gpu.decode_procs`), which keeps ~100 decode threads off the inference thread's GIL.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from rva.gpu.nvdec_source import Nv12Decoder, NvdecDecoder, PyAVNv12Decoder

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One camera input: ``path`` is a file or URL the decoder can open; ``size`` ``(w, h)`` if known."""

    camera: str
    path: str
    loop: bool = True
    size: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class FrameTicket:
    """A decoded frame waiting in a ring slot: where it came from and when (monotonic seconds)."""

    stream: int
    index: int
    pts: float
    captured: float
    decoded: float
    slot: int


class FrameRing:
    """NV12 frames of one size in (device) memory, and a free list over some of its slots.

    Several free lists may share one tensor (the worker's and each decode process's share of it).
    """

    def __init__(self, data: torch.Tensor, slots: Sequence[int] | None = None) -> None:
        """Manage ``slots`` (default all) of ``data``, a ``(n, h * 3 // 2, w)`` uint8 tensor."""
        self.data = data
        self.height, self.width = int(data.shape[1]) * 2 // 3, int(data.shape[2])
        self._all = list(range(data.shape[0]) if slots is None else slots)
        self._free = list(self._all)
        self._cond = threading.Condition()

    @classmethod
    def allocate(cls, slots: int, width: int, height: int, device: torch.device) -> FrameRing:
        """A new ring of ``slots`` frames."""
        return cls(torch.empty((slots, height * 3 // 2, width), dtype=torch.uint8, device=device))

    def reset(self) -> None:
        """Mark every managed slot free (a new worker taking over the ring)."""
        with self._cond:
            self._free = list(self._all)

    def acquire(self, timeout: float = 0.0) -> int | None:
        """A free slot, waiting up to ``timeout`` seconds for one; None if none came."""
        with self._cond:
            if not self._free and timeout > 0:
                self._cond.wait_for(lambda: bool(self._free), timeout)
            return self._free.pop() if self._free else None

    def release(self, slots: Sequence[int]) -> None:
        """Return slots to the free list."""
        with self._cond:
            self._free.extend(slots)
            self._cond.notify(len(slots))

    @property
    def free(self) -> int:
        """Slots free now."""
        with self._cond:
            return len(self._free)


DecoderFactory = Callable[[StreamSpec, torch.device, "torch.cuda.Stream | None"], Nv12Decoder]


def nvdec_factory(spec: StreamSpec, device: torch.device, stream: torch.cuda.Stream | None) -> Nv12Decoder:
    """Open ``spec`` with NVDEC on ``device`` (looping inputs are never flushed)."""
    return NvdecDecoder(spec.path, device.index or 0, stream, flush_at_end=not spec.loop)


def pyav_factory(spec: StreamSpec, device: torch.device, stream: torch.cuda.Stream | None) -> Nv12Decoder:
    """Open ``spec`` with PyAV on the CPU (machines without NVDEC; tests)."""
    return PyAVNv12Decoder(spec.path, device)


def probe_size(spec: StreamSpec, device: torch.device, open_decoder: DecoderFactory) -> tuple[int, int]:
    """``(w, h)`` of a stream: its declared ``size``, else what a decoder opened on it reports."""
    if spec.size is not None:
        return spec.size
    dec = open_decoder(spec, device, None)
    try:
        return dec.width, dec.height
    finally:
        dec.close()


def prefer_blocking_sync(gpu: int) -> bool:
    """Make CUDA waits in this process sleep instead of spin (call before CUDA starts here).

    ~100 decode threads spin-waiting on 16 cores starve each other; sleeping costs tens of µs a wait.
    Returns whether the flag took (False: cuda-python missing, or the context already exists).
    """
    try:
        from cuda.bindings import driver as cu

        cu.cuInit(0)
        _, dev = cu.cuDeviceGet(gpu)
        (err,) = cu.cuDevicePrimaryCtxSetFlags(dev, cu.CUctx_flags.CU_CTX_SCHED_BLOCKING_SYNC)
        return bool(err == cu.CUresult.CUDA_SUCCESS)
    except Exception as err:  # optional tuning: never fatal
        log.info("blocking CUDA sync not set: %s", err)
        return False


def copy_frame(dst: torch.Tensor, src: torch.Tensor, stream: torch.cuda.Stream | None) -> None:
    """Copy a frame into a ring slot with the copy engine, never an SM kernel.

    A decoder surface with a row pitch is not dense, and torch would copy it with a kernel; in a
    decode process that kernel makes the GPU switch contexts away from inference. A 2-D memcpy
    (``cudaMemcpy2DAsync``) runs on a copy engine instead.
    """
    if stream is None or src.is_contiguous() or src.stride(1) != 1:
        dst.copy_(src, non_blocking=True)
        return
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        dst.copy_(src, non_blocking=True)
        return
    rows, width = int(src.shape[0]), int(src.shape[1])
    (err,) = cudart.cudaMemcpy2DAsync(dst.data_ptr(), dst.stride(0), src.data_ptr(), src.stride(0), width, rows,
                                      cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream.cuda_stream)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"cudaMemcpy2DAsync failed: {err}")


@dataclass
class DecodeStats:
    """What a decode set did."""

    decoded: int = 0
    dropped: int = 0
    recreated: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DecodeStats) -> None:
        """Accumulate ``other`` into this."""
        self.decoded += other.decoded
        self.dropped += other.dropped
        self.recreated += other.recreated
        self.errors.extend(other.errors)


class DecodeSet:
    """Decode threads for a set of streams, paced, each frame into a ring slot and out as a ticket (see module)."""

    def __init__(
        self,
        streams: Sequence[tuple[int, StreamSpec]],
        ring: FrameRing,
        emit: Callable[[FrameTicket], None],
        *,
        device: torch.device,
        open_decoder: DecoderFactory = nvdec_factory,
        threads: int = 0,
        pace_fps: float | None = 30.0,
        drop_when_full: bool = True,
    ) -> None:
        """Prepare; :meth:`open` opens the inputs, :meth:`go` starts decoding.

        Args:
            streams: ``(global stream id, spec)`` pairs; tickets carry the id.
            ring: Where frames go (slots taken from its free list).
            emit: Receives each ticket (from the decode threads).
            device: The decoders' device.
            open_decoder: Opens one input.
            threads: Decode threads (0: one per stream).
            pace_fps: Packets due at this rate per stream; None decodes as fast as it goes.
            drop_when_full: Drop a frame when the ring is full (live) instead of waiting (throughput).

        """
        self.streams = list(streams)
        self.ring = ring
        self.emit = emit
        self.device = device
        self.open_decoder = open_decoder
        self.pace_fps = pace_fps
        self.drop_when_full = drop_when_full
        n = len(self.streams)
        self._threads_wanted = max(1, min(threads or n, n))
        self._stop = threading.Event()
        self._go = threading.Event()
        self.t0 = 0.0
        self.stats = DecodeStats()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def open(self) -> list[str]:
        """Start the threads; return once every input is open (or failed: the errors are returned)."""
        k = self._threads_wanted
        shares = [self.streams[i::k] for i in range(k)]
        opened = threading.Barrier(k + 1)
        for i, share in enumerate(shares):
            t = threading.Thread(target=self._run, args=(share, opened), name=f"rva-decode-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        opened.wait()
        return list(self.stats.errors)

    def go(self, t0: float) -> None:
        """Start decoding; paced packets are due from ``t0`` (monotonic)."""
        self.t0 = t0
        self._go.set()

    def release(self, slots: Sequence[int]) -> None:
        """Return consumed slots to the ring."""
        self.ring.release(slots)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop and join the threads."""
        self._stop.set()
        self._go.set()
        for t in self._threads:
            t.join(timeout)

    def _run(self, share: list[tuple[int, StreamSpec]], opened: threading.Barrier) -> None:
        cuda_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        decoders: dict[int, tuple[Nv12Decoder, StreamSpec]] = {}
        errors: list[str] = []
        try:
            for gid, spec in share:
                try:
                    decoders[gid] = (dec := self.open_decoder(spec, self.device, cuda_stream), spec)
                    # Pre-roll: an input counts as open once its first frame decoded (session set-up
                    # and first-call costs stay out of the paced run; that frame is not delivered).
                    with torch.cuda.stream(cuda_stream) if cuda_stream is not None else contextlib.nullcontext():
                        while dec.decode() == []:
                            pass
                except Exception as err:
                    errors.append(f"{spec.camera}: {type(err).__name__}: {err}")
        finally:
            with self._lock:
                self.stats.errors.extend(errors)
            opened.wait()
        self._go.wait()
        try:
            with torch.cuda.stream(cuda_stream) if cuda_stream is not None else contextlib.nullcontext():
                counts = self._loop(decoders, cuda_stream)
        except Exception as err:  # a dead decode thread must be visible, not silent
            log.exception("decode thread failed")
            counts = (0, 0)
            with self._lock:
                self.stats.errors.append(f"{type(err).__name__}: {err}")
        with self._lock:
            self.stats.decoded += counts[0] + counts[1]
            self.stats.dropped += counts[1]
            self.stats.recreated += sum(int(getattr(d, "recreated", 0)) for d, _ in decoders.values())
        for dec, _ in decoders.values():
            dec.close()

    def _loop(self, decoders: dict[int, tuple[Nv12Decoder, StreamSpec]],
              cuda_stream: torch.cuda.Stream | None) -> tuple[int, int]:
        pace, total = self.pace_fps, max(1, len(self.streams))
        # Heap of (due, stream, frames so far): earliest-due first. Paced: a monotonic time, starts
        # spread over one frame interval (golden-ratio steps by stream id: even for any subset of ids).
        # Unpaced: a virtual clock (round robin).
        heap = [((self.t0 + (gid * 0.6180339887) % 1.0 / pace) if pace else float(gid), gid, 0) for gid in decoders]
        heapq.heapify(heap)
        stored = dropped = 0
        while heap and not self._stop.is_set():
            due, gid, k = heapq.heappop(heap)
            if pace and (delay := due - time.monotonic()) > 0:
                time.sleep(delay)
            dec, spec = decoders[gid]
            frames = dec.decode()
            if frames is None:
                if spec.loop:
                    dec.rewind()
                    heapq.heappush(heap, (due, gid, k))
                continue
            for frame in frames:
                if self._store(gid, k, frame, due if pace else time.monotonic(), cuda_stream):
                    stored += 1
                else:
                    dropped += 1
                k += 1
            # The next packet of this stream arrives one frame interval later.
            heapq.heappush(heap, (due + (1.0 / pace if pace else float(total)), gid, k))
        return stored, dropped

    def _store(self, gid: int, index: int, frame: torch.Tensor, captured: float,
               cuda_stream: torch.cuda.Stream | None) -> bool:
        ring = self.ring
        slot = ring.acquire()
        while slot is None and not self.drop_when_full and not self._stop.is_set():
            slot = ring.acquire(timeout=0.1)  # back-pressure: throughput runs lose no frame
        if slot is None:
            return False
        copy_frame(ring.data[slot], frame, cuda_stream)
        if cuda_stream is not None:
            cuda_stream.synchronize()  # the copy must finish before the decoder reuses its surface
        pts = index / (self.pace_fps or 30.0)
        self.emit(FrameTicket(gid, index, pts, captured, time.monotonic(), slot))
        return True
