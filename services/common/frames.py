"""Frames on the wire: :class:`rva.core.Frame` <-> ``rva.decode.v1.VideoFrame``, validated at the edge."""

from __future__ import annotations

import re
from collections.abc import Mapping

import cv2
import numpy as np
import numpy.typing as npt

from rva.core import Frame
from rva.decode.v1 import decode_pb2 as pb
from rva.vision.v1 import vision_pb2

_CAMERA = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_SIDE = 16384


def encode_frame(
    frame: Frame,
    stream_id: str,
    *,
    encoding: str = "bgr24",
    jpeg_quality: int = 90,
    trace_context: Mapping[str, str] | None = None,
    decoded_unix_s: float = 0.0,
) -> pb.VideoFrame:
    """Wrap a frame's pixels (raw BGR, lossless; or JPEG) with its metadata and trace context."""
    w, h = frame.size
    if encoding == "jpeg":
        ok, buf = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise ValueError(f"camera {frame.camera}: JPEG encoding failed")
        image, enc = buf.tobytes(), pb.IMAGE_ENCODING_JPEG
    else:
        image, enc = np.ascontiguousarray(frame.image).tobytes(), pb.IMAGE_ENCODING_BGR24
    return pb.VideoFrame(
        meta=vision_pb2.FrameMeta(camera=frame.camera, index=frame.index, pts=frame.pts, width=w, height=h),
        image=image,
        encoding=enc,
        stream_id=stream_id,
        trace_context=dict(trace_context or {}),
        decoded_unix_s=decoded_unix_s,
    )


def decode_frame(msg: pb.VideoFrame) -> Frame:
    """Unwrap a ``VideoFrame``.

    Raises:
        ValueError: A field is missing or inconsistent (the message says which, expected vs actual).

    """
    meta = msg.meta
    if not _CAMERA.match(meta.camera):
        raise ValueError(f"VideoFrame.meta.camera: expected 1-64 letters, digits, _ or -, got {meta.camera!r}")
    w, h = int(meta.width), int(meta.height)
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise ValueError(f"VideoFrame.meta: expected 1..{MAX_SIDE} px width and height, got {w}x{h}")
    if msg.encoding == pb.IMAGE_ENCODING_BGR24:
        if len(msg.image) != w * h * 3:
            raise ValueError(f"VideoFrame.image: expected {w * h * 3} bytes of BGR24 for {w}x{h}, got {len(msg.image)}")
        image: npt.NDArray[np.uint8] = np.frombuffer(msg.image, np.uint8).reshape(h, w, 3)
    elif msg.encoding == pb.IMAGE_ENCODING_JPEG:
        decoded = cv2.imdecode(np.frombuffer(msg.image, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise ValueError(f"VideoFrame.image: {len(msg.image)} bytes are not a JPEG image")
        if decoded.shape[:2] != (h, w):
            raise ValueError(f"VideoFrame.image: JPEG is {decoded.shape[1]}x{decoded.shape[0]}, meta says {w}x{h}")
        image = np.asarray(decoded, np.uint8)
    else:
        raise ValueError(f"VideoFrame.encoding: expected BGR24 or JPEG, got {pb.ImageEncoding.Name(msg.encoding)}")
    if not np.isfinite(meta.pts):
        raise ValueError(f"VideoFrame.meta.pts: expected a finite time, got {meta.pts}")
    return Frame(camera=meta.camera, index=int(meta.index), pts=float(meta.pts), image=image)
