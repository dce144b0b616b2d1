"""One async interface over the detector backends: frames in, detections out, batched across cameras.

* Triton (:class:`TritonBackend`): every frame is its own request, up to ``max_inflight`` at once;
  Triton's dynamic batcher groups them (across cameras and across inference replicas).
* In-process (:class:`LocalBackend`, onnxruntime, the no-Triton default): frames queue up and run in
  micro-batches of at most ``max_batch`` (waiting at most ``max_delay_ms`` for one to fill) in a
  worker thread, so the event loop keeps serving. :meth:`LocalBackend.swap` replaces its detector
  between two batches (a model update).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from rva.config import DetectorConfig
from rva.core.detections import Detections
from rva.detect import Detector, create_detector
from rva.detect.triton_detector import BackendUnavailableError, TritonDetector
from rva.service_config import InferenceServiceConfig

__all__ = ["AsyncDetector", "BackendUnavailableError", "LocalBackend", "TritonBackend", "open_backend"]


class AsyncDetector(Protocol):
    """What the inference service calls."""

    kind: str
    names: dict[int, str]
    labels: dict[int, str]
    input_hw: tuple[int, int]

    async def detect(self, image: npt.NDArray[np.uint8], headers: Mapping[str, str] | None = None) -> Detections:
        """Detections of one frame (raises BackendUnavailableError when the backend is down)."""
        ...

    async def close(self) -> None:
        """Release the backend."""
        ...


class TritonBackend:
    """Single-frame requests to Triton, at most ``max_inflight`` in flight."""

    kind = "triton"

    def __init__(self, detector: TritonDetector) -> None:
        self.detector = detector
        self.names = detector.names
        self.labels = detector.labels
        self.input_hw = detector.input_hw
        self._slots = asyncio.Semaphore(detector.cfg.max_inflight)

    async def detect(self, image: npt.NDArray[np.uint8], headers: Mapping[str, str] | None = None) -> Detections:
        """Detections of one frame (Triton batches concurrent calls)."""
        async with self._slots:
            return (await self.detector.detect_async([image], headers))[0]

    async def close(self) -> None:
        """Close both channels."""
        await self.detector.aclose()
        self.detector.close()


class LocalBackend:
    """Any :class:`~rva.detect.Detector` in this process, micro-batched in a worker thread.

    ``detector`` may be replaced at any time with :meth:`swap`; each batch runs on the detector in
    place when it starts.
    """

    kind = "onnx"

    def __init__(self, detector: Detector, max_batch: int = 8, max_delay_ms: float = 5.0) -> None:
        self.detector = detector
        self.names = detector.names
        self.labels = detector.labels
        self.input_hw = getattr(detector, "input_hw", (0, 0))
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000
        self._queue: asyncio.Queue[tuple[npt.NDArray[np.uint8], asyncio.Future[Detections]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.batch_sizes: list[int] = []
        # swap() runs in any thread; it guards which detector is in place and which one a batch holds
        self._swap_lock = threading.Lock()
        self._busy: Detector | None = None
        self._retired: list[Detector] = []

    def swap(self, detector: Detector) -> None:
        """Put ``detector`` in place (thread-safe): the next batch runs on it; the old one is closed.

        A batch in flight finishes on the old detector, which is closed right after it.
        """
        with self._swap_lock:
            old, self.detector = self.detector, detector
            if old is detector:
                return
            self.names, self.labels = detector.names, detector.labels
            self.input_hw = getattr(detector, "input_hw", (0, 0))
            in_use = old is self._busy
            if in_use:
                self._retired.append(old)
        if not in_use:
            old.close()

    async def detect(self, image: npt.NDArray[np.uint8], headers: Mapping[str, str] | None = None) -> Detections:
        """Queue one frame and wait for its batch."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._run())
        future: asyncio.Future[Detections] = asyncio.get_running_loop().create_future()
        await self._queue.put((image, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_delay_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(deadline - loop.time(), 0)))
                except TimeoutError:
                    break
            self.batch_sizes.append(len(batch))
            with self._swap_lock:
                detector = self._busy = self.detector
            try:
                found = await asyncio.to_thread(detector.detect, [image for image, _ in batch])
            except Exception as err:  # one bad batch must not stop the worker
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            finally:
                self._release()
            for (_, future), dets in zip(batch, found, strict=True):
                if not future.done():
                    future.set_result(dets)

    def _release(self) -> None:
        """The batch is done: close the detectors swapped out while it ran."""
        with self._swap_lock:
            self._busy = None
            retired, self._retired = self._retired, []
        for old in retired:
            old.close()

    async def close(self) -> None:
        """Stop the worker and free the detector."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._release()
        self.detector.close()


def open_backend(cfg: DetectorConfig, service: InferenceServiceConfig, detector: Any = None) -> AsyncDetector:
    """The backend ``cfg`` names (``detector`` overrides it, e.g. one shared by tests).

    Raises:
        BackendUnavailableError: Triton cannot be reached at start.
        ModelError: The model cannot be loaded or described.

    """
    det = detector if detector is not None else create_detector(cfg)
    if isinstance(det, TritonDetector):
        return TritonBackend(det)
    return LocalBackend(det, service.max_batch, service.max_delay_ms)
