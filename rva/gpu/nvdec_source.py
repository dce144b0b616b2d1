"""NVDEC decoding with PyNvVideoCodec into GPU memory: one input, frame by frame, as NV12 torch tensors.

:class:`NvdecDecoder` decodes one input (file or stream URL FFmpeg can demux) packet by packet and
returns NV12 frames as torch views of the decoder's own surfaces (valid until its next call). The GPU
worker's decode threads use it directly and copy each frame into their frame ring;
:class:`rva.gpu.gpu_source.NvdecSource` puts it behind the ``VideoSource`` interface.
:class:`PyAVNv12Decoder` is the same contract on the CPU (PyAV), so the whole worker runs, and is
tested, on a machine without a GPU.

PyNvVideoCodec is imported on first use, so this module imports on machines without it.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import torch
from torch import Tensor

from rva.errors import SourceError

log = logging.getLogger(__name__)


class Nv12Decoder(Protocol):
    """One input decoded to NV12 ``(h * 3 // 2, w)`` uint8 tensors, frame by frame."""

    width: int
    height: int
    fps: float

    def decode(self) -> list[Tensor] | None:
        """Feed the next packet; return the frames it completed (often one), ``None`` at the end of input.

        The tensors may be views of decoder-owned memory, valid only until the next call.
        """

    def rewind(self) -> None:
        """Start again from the first frame (looping test inputs)."""

    def close(self) -> None:
        """Release the decoder."""


def _primary_context(gpu: int) -> int:
    """The device's primary CUDA context handle (torch's), so decoder surfaces and torch share one context."""
    try:
        from cuda.bindings import driver as cu
    except ImportError:  # older cuda-python layout, or none: let PyNvVideoCodec pick (0)
        return 0
    try:
        cu.cuInit(0)
        _, dev = cu.cuDeviceGet(gpu)
        _, ctx = cu.cuDevicePrimaryCtxRetain(dev)
        return int(ctx)
    except Exception as err:  # an unexpected cuda-python version: fall back to PyNvVideoCodec's choice
        log.warning("cannot get the primary CUDA context through cuda-python (%s); decoder picks its own", err)
        return 0


class _CudaArray:
    """A raw device pointer described by the CUDA Array Interface (for ``torch.as_tensor``)."""

    def __init__(self, ptr: int, shape: tuple[int, ...], strides: tuple[int, ...] | None = None) -> None:
        self.__cuda_array_interface__ = {
            "shape": shape, "strides": strides, "typestr": "|u1", "data": (ptr, False), "version": 3,
        }


class NvdecDecoder:
    """PyNvVideoCodec demuxer + decoder of one input, NV12 frames in GPU memory.

    Args:
        path: File path or URL.
        gpu: CUDA device ordinal.
        stream: torch CUDA stream the decoder's copies run on (the caller copies frames out on it).
        share_context: Decode in torch's primary context (default); ``False`` lets PyNvVideoCodec choose.
        flush_at_end: Feed the demuxer's end-of-stream packet to the decoder (last frames out). Off for
            inputs that :meth:`rewind` and carry on: a flushed decoder is not fed again.

    Raises:
        SourceError: PyNvVideoCodec is missing, or the input cannot be opened.

    """

    #: Packets after a rewind that may yield no frame before the decoder is re-created.
    REWIND_PATIENCE = 8

    def __init__(self, path: str, gpu: int = 0, stream: torch.cuda.Stream | None = None,
                 *, share_context: bool = True, flush_at_end: bool = True) -> None:
        try:
            import PyNvVideoCodec as nvc
        except ImportError as err:
            raise SourceError(f"NVDEC decoding needs PyNvVideoCodec: {err}") from err
        self._nvc = nvc
        self.path = path
        self.gpu = gpu
        self._stream = stream
        self._context = _primary_context(gpu) if share_context else 0
        self.flush_at_end = flush_at_end
        self._demuxer = self._open_demuxer()
        self.width = int(self._demuxer.Width())
        self.height = int(self._demuxer.Height())
        self.fps = float(self._demuxer.FrameRate() or 30.0)
        self.low_latency = True
        self._decoder = self._create_decoder()
        self._packets = iter(self._demuxer)
        self._dry_since_rewind: int | None = None
        self.recreated = 0
        self.access = ""

    def _create_decoder(self) -> Any:
        nvc = self._nvc
        kwargs: dict[str, Any] = {
            "gpuid": self.gpu, "codec": self._demuxer.GetNvCodecId(), "cudacontext": self._context,
            "cudastream": self._stream.cuda_stream if self._stream is not None else 0, "usedevicememory": True,
        }
        if self.low_latency:
            # Low-latency display: a frame comes out of the packet that completes it (IPPP streams, as
            # cameras send), instead of 4 packets later.
            try:
                return nvc.CreateDecoder(**kwargs, latency=nvc.DisplayDecodeLatencyType.LOW)
            except (TypeError, AttributeError):
                self.low_latency = False
        return nvc.CreateDecoder(**kwargs)

    def _open_demuxer(self) -> Any:
        try:
            return self._nvc.CreateDemuxer(filename=self.path)
        except Exception as err:  # the bindings raise plain RuntimeError/ValueError subclasses
            raise SourceError(f"cannot open {self.path} for NVDEC: {err}") from err

    def decode(self) -> list[Tensor] | None:
        """See :meth:`Nv12Decoder.decode`."""
        try:
            packet = next(self._packets)
        except StopIteration:
            return None
        if not self.flush_at_end and getattr(packet, "bsl", 1) == 0:
            return None  # the end-of-stream packet: keep the decoder unflushed for the next round
        if self.low_latency:
            packet.decode_flag = self._nvc.VideoPacketFlag.ENDOFPICTURE
        frames = [self._tensor(f) for f in self._decoder.Decode(packet)]
        if self._dry_since_rewind is not None:
            self._dry_since_rewind = None if frames else self._dry_since_rewind + 1
            if self._dry_since_rewind is not None and self._dry_since_rewind >= self.REWIND_PATIENCE:
                # The decoder does not take the restarted stream: start a fresh one on it.
                log.warning("NVDEC %s: no frame %d packets after rewinding; re-creating the decoder",
                            self.path, self.REWIND_PATIENCE)
                self._decoder = self._create_decoder()
                self.recreated += 1
                self.rewind()
        return frames

    def _tensor(self, frame: Any) -> Tensor:
        """View a decoded frame as ``(h * 3 // 2, w)`` uint8 (cropping any row pitch)."""
        h, w = self.height, self.width
        rows = h * 3 // 2
        device = torch.device("cuda", self.gpu)
        if not self.access or self.access.startswith("dlpack"):
            try:
                t = torch.from_dlpack(frame)
                if t.dim() == 3 and t.shape[-1] == 1:
                    t = t[..., 0]
                if t.dim() == 2 and t.shape[0] == rows and t.shape[1] >= w:
                    if not self.access:
                        self.access = f"dlpack shape {tuple(t.shape)} strides {t.stride()}"
                    return t[:, :w]
            except Exception as err:
                if self.access:
                    raise
                log.info("NVDEC frame: DLPack export unusable (%s); using the plane pointer", err)
        self.access = "pointer"
        return torch.as_tensor(_CudaArray(int(frame.GetPtrToPlane(0)), (rows, w)), device=device)

    def rewind(self) -> None:
        """Re-open the input; the decoder carries on (the stream restarts at a key frame)."""
        self._demuxer = self._open_demuxer()
        self._packets = iter(self._demuxer)
        self._dry_since_rewind = 0

    def close(self) -> None:
        """Drop the decoder and demuxer."""
        self.__dict__.pop("_decoder", None)
        self.__dict__.pop("_demuxer", None)


class PyAVNv12Decoder:
    """The :class:`Nv12Decoder` contract on the CPU with PyAV (tests and machines without NVDEC)."""

    def __init__(self, path: str, device: str | torch.device = "cpu") -> None:
        """Open ``path``; frames are put on ``device``.

        Raises:
            SourceError: the input cannot be opened.

        """
        import av

        self._av = av
        self.path = path
        self.device = torch.device(device)
        try:
            self._container = av.open(path)
        except av.FFmpegError as err:
            raise SourceError(f"cannot open {path}: {err}") from err
        stream = self._container.streams.video[0]
        self.width, self.height = int(stream.codec_context.width), int(stream.codec_context.height)
        self.fps = float(stream.average_rate or 30.0)
        self._frames = self._container.decode(video=0)

    def decode(self) -> list[Tensor] | None:
        """See :meth:`Nv12Decoder.decode`."""
        frame = next(self._frames, None)
        if frame is None:
            return None
        return [torch.from_numpy(frame.to_ndarray(format="nv12")).to(self.device)]

    def rewind(self) -> None:
        """Start from the first frame again."""
        self._container.close()
        self._container = self._av.open(self.path)
        self._frames = self._container.decode(video=0)

    def close(self) -> None:
        """Close the input."""
        self._container.close()
