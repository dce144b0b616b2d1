"""The torch backend: an Ultralytics ``.pt`` YOLO run in fp16, channels-last, replayed as CUDA graphs.

:class:`TorchYoloEngine` owns the network and one static input buffer per batch bucket. Callers
write pre-processed frames straight into :meth:`~TorchYoloEngine.input_buffer` (no extra copy) and
call :meth:`~TorchYoloEngine.run`; a batch of ``n`` runs the graph of the smallest bucket >= ``n``
(the padding rows are computed and ignored). Capturing a graph per bucket removes the ~300 kernel
launches of a forward pass from the CPU's critical path: on a GPU the small models are otherwise
launch-bound at small batches.

:class:`TorchDetector` wraps engine + :class:`~rva.gpu.nms.BatchDecoder` as a
:class:`~rva.detect.base.Detector` (BGR NumPy frames in, :class:`~rva.core.Detections` out) for
code that decodes on the CPU; the multi-stream GPU worker drives the engine directly.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from rva.core.detections import Detections
from rva.detect.base import Detector
from rva.detect.yolo import ModelInfo
from rva.gpu.nms import BatchDecoder, letterbox_rows
from rva.gpu.preprocess import bgr_to_input
from rva.gpu.yolo_torch import fuse, load_checkpoint

#: Batch sizes a graph is captured for (a batch runs in the smallest one that holds it).
DEFAULT_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128)


class TorchYoloEngine:
    """A YOLO network on one device, with static per-bucket inputs and (on CUDA) graph replay.

    Not thread-safe: one thread drives an engine. On CUDA all work is queued on :attr:`stream`.
    """

    def __init__(
        self,
        weights: str | Path,
        *,
        device: str | torch.device = "cuda:0",
        input_hw: tuple[int, int] = (384, 640),
        half: bool | None = None,
        buckets: Sequence[int] = DEFAULT_BUCKETS,
        cuda_graphs: bool = True,
    ) -> None:
        """Load, fuse and place the network; capture graphs lazily (see :meth:`prepare`).

        Args:
            weights: Ultralytics detect/pose ``.pt`` checkpoint.
            device: Where to run.
            input_hw: Network input ``(height, width)``, multiples of 32 (384x640 fits 16:9 frames).
            half: fp16 weights and activations (default: on CUDA).
            buckets: Batch sizes to prepare; the largest is the biggest batch accepted.
            cuda_graphs: Replay captured graphs on CUDA (off: eager, for debugging and timing).

        Raises:
            ModelError: the checkpoint cannot be loaded.
            ValueError: ``input_hw`` is not a multiple of 32 or no bucket is given.

        """
        if input_hw[0] % 32 or input_hw[1] % 32:
            raise ValueError(f"input_hw must be multiples of 32, got {input_hw}")
        if not buckets:
            raise ValueError("at least one batch bucket is needed")
        self.device = torch.device(device)
        self.is_cuda = self.device.type == "cuda"
        self.dtype = torch.float16 if (self.is_cuda if half is None else half) else torch.float32
        self.input_hw = input_hw
        self.buckets = tuple(sorted(set(buckets)))
        self.max_batch = self.buckets[-1]
        model, self.info = load_checkpoint(weights)
        self.model = fuse(model).to(self.device, self.dtype).to(memory_format=torch.channels_last).eval()
        self.use_graphs = cuda_graphs and self.is_cuda
        self.stream = torch.cuda.Stream(self.device) if self.is_cuda else None
        self._inputs: dict[int, Tensor] = {}
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Tensor]] = {}
        self._pool: object | None = None
        #: Device resources built around this engine by its users (a worker's frame ring and batch
        #: graphs), kept so the next worker on this engine reuses them instead of re-capturing.
        self.cache: dict[object, object] = {}

    @property
    def model_info(self) -> ModelInfo:
        """Class names and keypoint layout from the checkpoint."""
        return self.info

    def capture_stream(self) -> torch.cuda.Stream:
        """The side stream graphs are captured on (one per engine, on its device)."""
        stream = self.cache.get("capture_stream")
        if stream is None:
            stream = self.cache["capture_stream"] = torch.cuda.Stream(self.device)
        return stream  # type: ignore[return-value]

    def stream_context(self) -> contextlib.AbstractContextManager[object]:
        """Context that makes :attr:`stream` current (a no-op on the CPU)."""
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    def bucket_for(self, n: int) -> int:
        """The bucket a batch of ``n`` runs in."""
        if not 1 <= n <= self.max_batch:
            raise ValueError(f"batch of {n} outside 1..{self.max_batch}")
        return self.buckets[bisect.bisect_left(self.buckets, n)]

    def _input(self, bucket: int) -> Tensor:
        buf = self._inputs.get(bucket)
        if buf is None:
            h, w = self.input_hw
            buf = torch.full((bucket, 3, h, w), 114 / 255, dtype=self.dtype, device=self.device)
            buf = buf.contiguous(memory_format=torch.channels_last)
            self._inputs[bucket] = buf
        return buf

    def input_buffer(self, n: int) -> Tensor:
        """The ``(n, 3, h, w)`` rows to write the next batch into (a view of the bucket's static input)."""
        return self._input(self.bucket_for(n))[:n]

    @torch.inference_mode()
    def run(self, n: int) -> Tensor:
        """Run the network on the first ``n`` rows of the bucket's input; returns ``(n, channels, anchors)``.

        On CUDA the result is a view of the graph's static output: read it (on :attr:`stream`)
        before the next :meth:`run`.
        """
        bucket = self.bucket_for(n)
        with self.stream_context():
            if self.use_graphs:
                graph, out = self._graphs.get(bucket) or self._capture(bucket)
                graph.replay()
                return out[:n]
            return self.model(self._input(bucket)[:n])  # type: ignore[no-any-return]

    def _capture(self, bucket: int) -> tuple[torch.cuda.CUDAGraph, Tensor]:
        x = self._input(bucket)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up: cuDNN autotuning, anchor tables, allocator
                self.model(x)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # An explicit capture stream on this engine's device (torch's default one lives on the first
        # device that captured, which breaks a second GPU).
        with torch.cuda.device(self.device), torch.cuda.graph(graph, pool=self._pool, stream=self.capture_stream()):
            out = self.model(x)
        self._pool = graph.pool()
        self._graphs[bucket] = (graph, out)
        return graph, out

    @torch.inference_mode()
    def prepare(self, buckets: Sequence[int] | None = None) -> None:
        """Capture (or warm up) the given buckets now, so the first batches do not pay for it."""
        for bucket in buckets or self.buckets:
            if self.use_graphs:
                with self.stream_context():
                    if bucket not in self._graphs:
                        self._capture(bucket)
            else:
                self.run(bucket)
        if self.is_cuda:
            torch.cuda.synchronize(self.device)


class TorchDetector(Detector):
    """:class:`TorchYoloEngine` + :class:`~rva.gpu.nms.BatchDecoder` behind the :class:`Detector` interface."""

    def __init__(
        self,
        weights: str | Path,
        *,
        class_map: Mapping[str, str],
        fallen_classes: Sequence[str] = (),
        confidence: float = 0.25,
        iou: float = 0.5,
        device: str | torch.device = "cuda:0",
        input_hw: tuple[int, int] = (384, 640),
        buckets: Sequence[int] = DEFAULT_BUCKETS,
        cuda_graphs: bool = True,
    ) -> None:
        """Load the model (see :class:`TorchYoloEngine` for the arguments).

        Raises:
            ModelError: the checkpoint cannot be loaded or has no class in ``class_map``.

        """
        self.engine = TorchYoloEngine(
            weights, device=device, input_hw=input_hw, buckets=buckets, cuda_graphs=cuda_graphs
        )
        self.decoder = BatchDecoder(self.engine.info, class_map, fallen_classes, confidence, iou)
        self.names = dict(self.engine.info.names)
        self.labels = dict(self.decoder.head.labels)

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Detect people in BGR uint8 frames of any size; boxes come back in frame pixels."""
        out: list[Detections] = []
        for chunk in _chunks(images, self.engine.max_batch):
            out.extend(self._detect(chunk))
        return out

    @torch.inference_mode()
    def _detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        engine = self.engine
        with engine.stream_context():
            frames = [torch.from_numpy(np.ascontiguousarray(im)).to(engine.device, non_blocking=True) for im in images]
            boxes = bgr_to_input(frames, engine.input_buffer(len(frames)))
            decoded = self.decoder(engine.run(len(frames)), letterbox_rows(boxes).to(engine.device))
            decoded.settle()
            packed, counts = decoded.packed.cpu().numpy(), decoded.counts.cpu().numpy()
        return self.decoder.unpack(packed, counts)


def _chunks(items: Sequence[npt.NDArray[np.uint8]], size: int) -> Iterator[Sequence[npt.NDArray[np.uint8]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
