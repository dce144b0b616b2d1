"""A :class:`~rva.sources.base.VideoSource` whose frames stay on the GPU: NVDEC behind the PyAV source's interface.

:class:`NvdecSource` decodes one file or stream with :class:`~rva.gpu.nvdec_source.NvdecDecoder` in a
background thread and its ``read`` returns :class:`GpuFrame` (pixels stay on the GPU as NV12;
``to_frame`` downloads a BGR :class:`~rva.core.Frame`) and the usual
:class:`~rva.sources.base.SourceStatus` records: the documented extension of the interface, with the
same states, indices, timestamps, wakers and ``close`` as the PyAV sources (it reuses their
:class:`~rva.sources.threaded.ThreadedSource`). The multi-stream GPU worker does not go through it: its
decode threads drive the decoders directly to share threads and a frame ring across streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from rva.core import Frame
from rva.gpu.nvdec_source import NvdecDecoder
from rva.sources.base import SourceState, SourceStatus, StatusCallback
from rva.sources.threaded import ThreadedSource


@dataclass(frozen=True, slots=True)
class GpuFrame:
    """A decoded frame whose pixels stay on the GPU (the NVDEC counterpart of :class:`~rva.core.Frame`).

    Attributes:
        camera: Camera id.
        index: Sequence number among the frames the source delivered.
        pts: Presentation time in seconds.
        nv12: ``(h * 3 // 2, w)`` uint8 NV12 pixels, owned by this frame.

    """

    camera: str
    index: int
    pts: float
    nv12: Tensor

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.nv12.shape[1]), int(self.nv12.shape[0]) * 2 // 3

    def to_frame(self) -> Frame:
        """Download and convert to a CPU BGR :class:`~rva.core.Frame` (for code that wants NumPy pixels)."""
        bgr = cv2.cvtColor(np.ascontiguousarray(self.nv12.cpu().numpy()), cv2.COLOR_YUV2BGR_NV12)
        return Frame(camera=self.camera, index=self.index, pts=self.pts, image=bgr)


class NvdecSource(ThreadedSource):
    """A file or stream decoded by NVDEC in a background thread; ``read`` returns :class:`GpuFrame`.

    Frames are copied out of the decoder's surfaces into their own tensors (the decoder reuses its
    surfaces), so a reader may keep them. ``loop`` replays a file forever (benchmarks).
    """

    def __init__(
        self,
        camera: str,
        path: str | Path,
        *,
        gpu: int = 0,
        loop: bool = False,
        queue_size: int = 8,
        on_status: StatusCallback | None = None,
    ) -> None:
        """Start decoding ``path`` on GPU ``gpu``.

        Raises:
            SourceError: PyNvVideoCodec is missing or the input cannot be opened.

        """
        super().__init__(camera, queue_size=queue_size, drop_oldest=False, on_status=on_status)
        self._cuda_stream = torch.cuda.Stream(device=gpu)
        self._decoder = NvdecDecoder(str(path), gpu, self._cuda_stream, flush_at_end=not loop)
        self._loop = loop
        self._start()

    @property
    def fps(self) -> float | None:
        """The input's declared frame rate."""
        return self._decoder.fps

    def _produce(self) -> None:
        self._emit(SourceState.STREAMING, pts=0.0)
        index = 0
        while not self._stop.is_set():
            frames = self._decoder.decode()
            if frames is None:
                if not self._loop:
                    break
                self._decoder.rewind()
                continue
            with torch.cuda.stream(self._cuda_stream):
                owned = [f.clone() for f in frames]
            self._cuda_stream.synchronize()  # the decoder may overwrite its surface on the next call
            for frame in owned:
                if not self._deliver(index / self._decoder.fps, frame):  # type: ignore[arg-type]
                    return
                index += 1
        self._decoder.close()

    def read(self, timeout: float | None = None) -> GpuFrame | SourceStatus | None:  # type: ignore[override]
        """The next :class:`GpuFrame` or status record (see :meth:`VideoSource.read`)."""
        item = super().read(timeout)
        if isinstance(item, Frame):
            return GpuFrame(camera=item.camera, index=item.index, pts=item.pts, nv12=item.image)  # type: ignore[arg-type]
        return item
