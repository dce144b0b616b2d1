"""Image work the gateway does: decode uploads safely, blur regions, render heatmaps. Pure (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from gateway.errors import Unprocessable
from rva.pipeline.annotate import render_heatmap
from rva.stores.results import HeatmapGrid

Image = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]
MAX_SIDE = 8192


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from a PNG or JPEG header, without decoding pixels (None if neither)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        i += 2 + length
    return None


def decode_image(data: bytes) -> Image:
    """A BGR image from JPEG or PNG bytes, refusing anything else and anything over 8192 px a side.

    The size is read from the header first, so a small file declaring a huge image (a decompression
    bomb) is refused before any pixel is allocated.

    Raises:
        Unprocessable: Not a JPEG/PNG, too large, or corrupt.

    """
    size = image_size(data)
    if size is None:
        raise Unprocessable("snapshot: expected a JPEG or PNG image", [{"field": "(body)", "message": "not an image",
                                                                        "type": "image"}])
    if not (0 < size[0] <= MAX_SIDE and 0 < size[1] <= MAX_SIDE):
        raise Unprocessable(f"snapshot: expected at most {MAX_SIDE}x{MAX_SIDE} pixels, got {size[0]}x{size[1]}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise Unprocessable("snapshot: the image data is corrupt")
    return np.ascontiguousarray(image)


@dataclass(frozen=True, slots=True)
class Tile:
    """A region searched at ``scale`` (boxes found in it count from ``min_score``)."""

    x: int
    y: int
    w: int
    h: int
    scale: float
    min_score: float


def split_tiles(width: int, height: int, min_score: float, frac: float = 0.6) -> list[Tile]:
    """Four overlapping tiles of ``frac`` of each side, searched at twice the scale (none for small images)."""
    if width < 320 or height < 240:
        return []
    tw, th = int(width * frac), int(height * frac)
    return [Tile(x, y, tw, th, 2.0, min_score) for y in (0, height - th) for x in (0, width - tw)]


def upscale(image: Image, tile: Tile) -> Image:
    """The tile's pixels at its scale."""
    crop = image[tile.y : tile.y + tile.h, tile.x : tile.x + tile.w]
    size = (round(tile.w * tile.scale), round(tile.h * tile.scale))
    return np.ascontiguousarray(cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR))


def blur_boxes(image: Image, boxes: Sequence[Box], sigma: float, margin: float = 0.15) -> Image:
    """A copy with each box (grown by ``margin`` of its size, clipped to the image) Gaussian-blurred."""
    out = image.copy()
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in boxes:
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        a, b = max(0, int(x1 - mx)), max(0, int(y1 - my))
        c, d = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
        if c - a < 2 or d - b < 2:
            continue
        # Pixelate first, then blur: a Gaussian alone can be partly inverted on small faces.
        region = out[b:d, a:c]
        small = cv2.resize(region, (max(1, (c - a) // 8), max(1, (d - b) // 8)), interpolation=cv2.INTER_AREA)
        region[:] = cv2.GaussianBlur(cv2.resize(small, (c - a, d - b), interpolation=cv2.INTER_LINEAR),
                                     (0, 0), sigma)
    return out


def blur_all(image: Image, sigma: float) -> Image:
    """The whole image blurred (layout stays readable, people do not)."""
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), np.uint8)


def encode_jpeg(image: Image, quality: int = 85) -> bytes:
    """JPEG bytes of a BGR image."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())


def heatmap_png(grid: HeatmapGrid, background: Image | None) -> bytes:
    """The heatmap drawn over a (privacy-filtered) snapshot, or over grey when there is none, as PNG."""
    rows, cols = (grid.grid.shape if grid.grid.ndim == 2 and grid.grid.size else (0, 0))
    cell = grid.cell_px or 16
    if rows == 0:  # no heat yet: the view alone, grey like under heat
        canvas = (cv2.cvtColor(cv2.cvtColor(background, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
                  if background is not None else np.full((288, 384, 3), 96, np.uint8))
        ok, buf = cv2.imencode(".png", canvas)
        return bytes(buf.tobytes())
    width, height = cols * cell, rows * cell
    if background is None:
        background = np.full((height, width, 3), 96, np.uint8)
    else:
        bh, bw = background.shape[:2]
        if not (width - cell < bw <= width and height - cell < bh <= height):
            background = np.asarray(cv2.resize(background, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
    img = render_heatmap(background, grid.grid.astype(np.float32), cell)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("PNG encoding failed")
    return bytes(buf.tobytes())
