"""Batched pre-processing in torch: NV12 (or BGR) frames -> letterboxed RGB network input, on the frames' device.

The GPU path never copies pixels to the host: NVDEC's NV12 surfaces are copied (device to device)
into a ring of frame slots, and a batch is converted in one pass of a dozen kernels.

Resize first, convert colour second: bilinear resizing is a weighted average and the YUV -> RGB
transform is affine, so they commute (up to the final clamp), and the colour arithmetic runs at
network resolution (9x fewer pixels for 1080p). Each chroma sample first covers its 2x2 luma block,
as in OpenCV's ``COLOR_YUV2BGR_NV12``, so the result matches OpenCV's convert-then-letterbox to
rounding (``tests/gpu/test_preprocess.py`` bounds the difference).
The geometry is :func:`rva.detect.yolo.letterbox`'s, so boxes map back with the same
:class:`~rva.detect.yolo.Letterbox`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from rva.detect.yolo import PAD_VALUE, Letterbox

#: YUV -> RGB matrices for limited-range ("TV") video: rows R, G, B over (Y - 16, U - 128, V - 128).
YUV_MATRICES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "bt601": ((1.164, 0.0, 1.596), (1.164, -0.391, -0.813), (1.164, 2.018, 0.0)),
    "bt709": ((1.164, 0.0, 1.793), (1.164, -0.213, -0.533), (1.164, 2.112, 0.0)),
}
Matrix = Literal["bt601", "bt709"]


def letterbox_geometry(frame_w: int, frame_h: int, size: tuple[int, int]) -> Letterbox:
    """The :class:`Letterbox` :func:`rva.detect.yolo.letterbox` uses for a frame of this size.

    Args:
        frame_w: Frame width.
        frame_h: Frame height.
        size: Network input ``(height, width)``.

    """
    th, tw = size
    scale = min(tw / frame_w, th / frame_h)
    nw, nh = round(frame_w * scale), round(frame_h * scale)
    return Letterbox(scale, float((tw - nw) // 2), float((th - nh) // 2), frame_w, frame_h)


def _place(rgb: Tensor, out: Tensor, lb: Letterbox) -> None:
    """Write ``(b, 3, nh, nw)`` RGB in ``[0, 1]`` into ``out``'s centre and the grey border around it."""
    nh, nw = rgb.shape[2:]
    top, left = int(lb.pad_y), int(lb.pad_x)
    grey = PAD_VALUE / 255.0
    out[:, :, :top].fill_(grey)
    out[:, :, top + nh :].fill_(grey)
    out[:, :, top : top + nh, :left].fill_(grey)
    out[:, :, top : top + nh, left + nw :].fill_(grey)
    out[:, :, top : top + nh, left : left + nw].copy_(rgb)


_MATRICES: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}


def _matrix(name: Matrix, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The YUV -> RGB matrix scaled to ``[0, 1]`` output, made once per device.

    A host-to-device copy per batch would make the CPU wait for the GPU's queue.
    """
    key = (name, dtype, device)
    m = _MATRICES.get(key)
    if m is None:
        m = _MATRICES[key] = torch.tensor(YUV_MATRICES[name], dtype=torch.float32).div_(255.0).to(device, dtype)
    return m


def _resized_size(lb: Letterbox) -> tuple[int, int]:
    return round(lb.frame_h * lb.scale), round(lb.frame_w * lb.scale)


def nv12_to_input(
    nv12: Tensor,
    out: Tensor,
    *,
    frame_size: tuple[int, int],
    matrix: Matrix = "bt601",
    work_dtype: torch.dtype | None = None,
) -> Letterbox:
    """Convert a batch of NV12 frames into letterboxed RGB network input, in place.

    Args:
        nv12: ``(b, h * 3 // 2, w)`` uint8: the luma plane, then the interleaved ``U, V`` plane.
        out: ``(b, 3, H, W)`` float tensor on the same device (any memory format) to fill with RGB
            in ``[0, 1]``; ``H, W`` is the network input.
        frame_size: ``(w, h)`` of the frames.
        matrix: The stream's YUV matrix (limited range): ``bt601`` (SD, and what libx264 tags by
            default) or ``bt709`` (most HD cameras).
        work_dtype: Arithmetic dtype; default ``out``'s (fp16 on the GPU, fp32 on the CPU).

    Returns:
        The :class:`Letterbox` that maps network-input pixels back to the frames.

    Raises:
        ValueError: shapes or devices disagree.

    """
    w, h = frame_size
    if nv12.dtype != torch.uint8 or nv12.dim() != 3 or tuple(nv12.shape[1:]) != (h * 3 // 2, w) or h % 2 or w % 2:
        raise ValueError(f"nv12_to_input: expected (b, {h * 3 // 2}, {w}) uint8 with even sides, got "
                         f"{tuple(nv12.shape)} {nv12.dtype}")
    if out.dim() != 4 or out.shape[0] != nv12.shape[0] or out.shape[1] != 3 or out.device != nv12.device:
        raise ValueError(f"nv12_to_input: out should be ({nv12.shape[0]}, 3, H, W) on {nv12.device}, "
                         f"got {tuple(out.shape)} on {out.device}")
    dtype = work_dtype or out.dtype
    lb = letterbox_geometry(w, h, (int(out.shape[2]), int(out.shape[3])))
    size = _resized_size(lb)
    b = nv12.shape[0]
    y = F.interpolate(nv12[:, :h].unsqueeze(1).to(dtype), size=size, mode="bilinear", align_corners=False)
    uv = nv12[:, h:].reshape(b, h // 2, w // 2, 2).permute(0, 3, 1, 2)
    # Each chroma sample covers its 2x2 luma block (as OpenCV's converter has it), then resize.
    uv = uv.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3).to(dtype)
    uv = F.interpolate(uv, size=size, mode="bilinear", align_corners=False)
    yuv = torch.cat((y - 16.0, uv - 128.0), 1)  # (b, 3, nh, nw): Y', U', V'
    m = _matrix(matrix, dtype, nv12.device)
    rgb = torch.einsum("rc,bchw->brhw", m, yuv).clamp_(0.0, 1.0)
    _place(rgb, out, lb)
    return lb


def bgr_to_input(images: Sequence[Tensor], out: Tensor) -> list[Letterbox]:
    """Letterbox BGR uint8 ``(h, w, 3)`` frames (any sizes, on ``out``'s device) into RGB input rows.

    Frames of one size are resized together. This is the path for frames that arrive decoded on
    the CPU (the :class:`~rva.detect.base.Detector` interface); NVDEC frames take :func:`nv12_to_input`.
    """
    if len(images) != out.shape[0]:
        raise ValueError(f"bgr_to_input: {len(images)} images for {out.shape[0]} output rows")
    boxes: list[Letterbox] = []
    for i, image in enumerate(images):
        h, w = int(image.shape[0]), int(image.shape[1])
        lb = letterbox_geometry(w, h, (int(out.shape[2]), int(out.shape[3])))
        chw = image.permute(2, 0, 1).flip(0).unsqueeze(0).to(out.dtype)
        if _resized_size(lb) != (h, w):
            chw = F.interpolate(chw, size=_resized_size(lb), mode="bilinear", align_corners=False)
        _place((chw / 255.0).clamp_(0.0, 1.0), out[i : i + 1], lb)
        boxes.append(lb)
    return boxes
