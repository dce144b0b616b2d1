"""The whole per-batch GPU work as one CUDA graph per batch bucket: ring slots -> packed detections.

One replay gathers the batch's NV12 frames from the frame ring, letterboxes them into the network
input (:func:`~rva.gpu.preprocess.nv12_to_input`), runs the network, decodes the head and runs NMS
(:class:`~rva.gpu.nms.BatchDecoder`), and leaves ``(bucket, limit, cols)`` packed rows plus a
``(bucket, 3)`` table of ``kept, converged, overflow`` in static outputs. The host issues three
calls per batch (slot indices in, replay, copies out) instead of ~150 kernel launches from Python:
under the GIL, shared with a dozen decode threads, that Python time is what bounded the first
version (bench/gpu_notes.md, run 1).

Outputs are overwritten by the next replay: copy them out on the same stream first. NMS runs a fixed
number of passes inside the graph; a frame that needs more (``converged == 0``) is recomputed
exactly by :meth:`BatchGraphs.exact` on fresh buffers, from the same ring slots.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from rva.gpu.nms import BatchDecoder, letterbox_rows
from rva.gpu.preprocess import Matrix, letterbox_geometry, nv12_to_input
from rva.gpu.torch_detector import TorchYoloEngine


class BatchGraphs:
    """Per-bucket graphs of ring slots -> packed detections for one engine and one frame ring.

    On a CPU device (tests) the same computation runs eagerly. Not thread-safe for :meth:`run`
    (one inference thread); :meth:`exact` may run from another thread.
    """

    def __init__(
        self,
        engine: TorchYoloEngine,
        decoder: BatchDecoder,
        ring: Tensor,
        frame_size: tuple[int, int],
        matrix: Matrix = "bt601",
    ) -> None:
        """Bind an engine, its decoder and a ``(slots, h * 3 // 2, w)`` uint8 ring of ``frame_size`` frames."""
        self.engine = engine
        self.decoder = decoder
        self.ring = ring
        self.frame_size = frame_size
        self.matrix: Matrix = matrix
        lb = letterbox_geometry(*frame_size, engine.input_hw)
        self.letterbox = lb
        self._boxes = letterbox_rows([lb]).to(engine.device).expand(engine.max_batch, 5).contiguous()
        self._slots: dict[int, Tensor] = {}
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Tensor, Tensor]] = {}
        self._pool: object | None = None

    def _compute(self, bucket: int, slots: Tensor) -> tuple[Tensor, Tensor]:
        x = self.engine.input_buffer(bucket)
        nv12_to_input(self.ring.index_select(0, slots), x, frame_size=self.frame_size, matrix=self.matrix)
        d = self.decoder(self.engine.model(x), self._boxes[:bucket])
        return d.packed, torch.stack((d.counts, d.converged.long(), d.overflow), 1)

    def _static_slots(self, bucket: int) -> Tensor:
        slots = self._slots.get(bucket)
        if slots is None:
            slots = self._slots[bucket] = torch.zeros(bucket, dtype=torch.int64, device=self.engine.device)
        return slots

    def _capture(self, bucket: int) -> tuple[torch.cuda.CUDAGraph, Tensor, Tensor]:
        slots = self._static_slots(bucket)
        device = self.engine.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: cuDNN autotuning, lookup tables, allocator
                self._compute(bucket, slots)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.device(device), torch.cuda.graph(graph, pool=self._pool, stream=self.engine.capture_stream()):
            packed, meta = self._compute(bucket, slots)
        self._pool = graph.pool()
        self._graphs[bucket] = (graph, packed, meta)
        return graph, packed, meta

    @torch.inference_mode()
    def prepare(self, buckets: Sequence[int] | None = None) -> None:
        """Capture the graphs of ``buckets`` (default all) now, on the engine's stream."""
        if not self.engine.use_graphs:
            return
        with self.engine.stream_context():
            for bucket in buckets or self.engine.buckets:
                if bucket not in self._graphs:
                    self._capture(bucket)
        torch.cuda.synchronize(self.engine.device)

    @torch.inference_mode()
    def run(self, slots: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Queue a batch of ring slots; returns views of ``packed`` ``(n, limit, cols)`` and ``meta`` ``(n, 3)``.

        Call with the engine's stream current (``engine.stream_context()``); no host sync.
        """
        n = len(slots)
        bucket = self.engine.bucket_for(n)
        # Padding rows repeat the first frame; their results are computed and ignored.
        padded = torch.tensor([*slots, *([slots[0]] * (bucket - n))], dtype=torch.int64)
        static = self._static_slots(bucket)
        if static.is_cuda:
            static.copy_(padded.pin_memory(), non_blocking=True)
        else:
            static.copy_(padded)
        if not self.engine.use_graphs:
            packed, meta = self._compute(bucket, static)
        else:
            graph, packed, meta = self._graphs.get(bucket) or self._capture(bucket)
            graph.replay()
        return packed[:n], meta[:n]

    @torch.inference_mode()
    def exact(self, slots: Sequence[int]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Recompute frames eagerly with NMS run to convergence (the rare frames the graph's passes did not settle).

        Uses fresh buffers, so it may run while the inference thread replays graphs. Syncs.
        """
        engine = self.engine
        with engine.stream_context():
            h, w = engine.input_hw
            x = torch.empty((len(slots), 3, h, w), dtype=engine.dtype, device=engine.device)
            index = torch.tensor(list(slots), dtype=torch.int64, device=engine.device)
            nv12_to_input(self.ring.index_select(0, index), x, frame_size=self.frame_size, matrix=self.matrix)
            d = self.decoder(engine.model(x.contiguous(memory_format=torch.channels_last)),
                             self._boxes[: len(slots)])
            d.settle()
            return d.packed.cpu().numpy(), d.counts.cpu().numpy()
