"""Drawing for people: boxes with ids, zones, lines and queues with their live numbers, heatmaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from rva.config import CameraConfig
from rva.core import Detections

Image = npt.NDArray[np.uint8]

_ZONE = (255, 170, 60)
_QUEUE = (60, 200, 255)
_SERVICE = (90, 230, 90)
_LINE = (255, 80, 255)
_FALLEN = (40, 40, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _id_colour(track_id: int) -> tuple[int, int, int]:
    # Golden-ratio hue steps give neighbouring ids clearly different colours.
    hue = int((track_id * 0.618034 % 1.0) * 179)
    bgr = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]  # type: ignore[call-overload]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def _label(img: Image, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float = 0.45) -> None:
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    x, y = max(0, org[0]), max(h + 2, org[1])
    cv2.rectangle(img, (x, y - h - 3), (x + w + 4, y + base - 1), (0, 0, 0), -1)
    cv2.putText(img, text, (x + 2, y - 1), _FONT, scale, colour, 1, cv2.LINE_AA)


def _poly(img: Image, overlay: Image, points: Sequence[tuple[float, float]], colour: tuple[int, int, int]) -> None:
    pts = np.round(np.asarray(points)).astype(np.int32)
    cv2.fillPoly(overlay, [pts], colour)
    cv2.polylines(img, [pts], True, colour, 2, cv2.LINE_AA)


def draw_scene(image: Image, camera: CameraConfig, live: Mapping[str, Any]) -> Image:
    """Zones, queues and lines with their live numbers (``live`` is ``CameraAnalytics.live()``)."""
    img = image.copy()
    overlay = img.copy()
    zones, lines, queues = live.get("zones", {}), live.get("lines", {}), live.get("queues", {})
    for q in camera.queues:
        _poly(img, overlay, q.queue_polygon, _QUEUE)
        _poly(img, overlay, q.service_polygon, _SERVICE)
    for z in camera.zones:
        _poly(img, overlay, z.polygon, _ZONE)
    cv2.addWeighted(overlay, 0.18, img, 0.82, 0, dst=img)
    for z in camera.zones:
        stats = zones.get(z.name, {})
        x, y = np.min(np.asarray(z.polygon), axis=0)
        _label(img, f"{z.name}: {stats.get('occupancy', 0)} now, {stats.get('visits', 0)} visits",
               (int(x) + 4, int(y) + 16), _ZONE)
    for q in camera.queues:
        stats = queues.get(q.name, {})
        est = stats.get("wait_estimate_s")
        est_txt = f", est. wait {est:.0f}s" if est is not None else ""
        x, y = np.min(np.asarray(q.queue_polygon), axis=0)
        _label(img, f"{q.name}: {stats.get('waiting', 0)} in queue{est_txt}", (int(x) + 4, int(y) + 34), _QUEUE)
        _label(img, f"served {stats.get('served', 0)}, left {stats.get('abandoned', 0)}",
               (int(x) + 4, int(y) + 52), _SERVICE)
    for ln in camera.lines:
        p1 = (round(ln.start[0]), round(ln.start[1]))
        p2 = (round(ln.end[0]), round(ln.end[1]))
        cv2.line(img, p1, p2, _LINE, 2, cv2.LINE_AA)
        stats = lines.get(ln.name, {})
        _label(img, f"{ln.name} in {stats.get('in', 0)} / out {stats.get('out', 0)}", (p2[0] + 4, p2[1] + 4), _LINE)
    return img


def draw_tracks(image: Image, tracked: Detections) -> Image:
    """Boxes with track ids, in place; fallen people in red."""
    fallen = tracked.flag("fallen")
    for i in range(len(tracked)):
        x1, y1, x2, y2 = (round(v) for v in tracked.xyxy[i])
        tid = int(tracked.tracker_id[i])
        colour = _FALLEN if fallen[i] else _id_colour(tid)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
        cv2.circle(image, ((x1 + x2) // 2, y2), 3, colour, -1)
        _label(image, f"#{tid}" + (" FALL" if fallen[i] else ""), (x1, y1 - 2), colour)
    return image


def draw_header(image: Image, text: str) -> Image:
    """A status line at the top left (camera, time, fps)."""
    _label(image, text, (6, 20), (255, 255, 255), 0.55)
    return image


def render_heatmap(
    background: Image, grid: npt.NDArray[np.float32], cell_px: int, hotspots: Sequence[Any] = ()
) -> Image:
    """Heat over a frame of the scene: TURBO colours where people spent time, numbered hotspots."""
    h, w = background.shape[:2]
    heat = cv2.resize(grid.astype(np.float32), (grid.shape[1] * cell_px, grid.shape[0] * cell_px),
                      interpolation=cv2.INTER_LINEAR)[:h, :w]
    heat = cv2.GaussianBlur(heat, (0, 0), sigmaX=cell_px * 0.75)
    peak = float(heat.max())
    norm = np.zeros_like(heat) if peak <= 0 else np.sqrt(heat / peak)  # sqrt: quiet areas stay visible
    colour = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    alpha = np.clip(norm * 1.5, 0, 0.75)[..., None]
    grey = cv2.cvtColor(cv2.cvtColor(background, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    out = (grey * (1 - alpha) + colour * alpha).astype(np.uint8)
    for rank, spot in enumerate(hotspots, start=1):
        cx, cy = (round(v) for v in (getattr(spot, "x", 0), getattr(spot, "y", 0)))
        cv2.circle(out, (cx, cy), 10, (255, 255, 255), 2, cv2.LINE_AA)
        share = getattr(spot, "share", None)
        _label(out, f"{rank}" + (f" ({share:.0%})" if share is not None else ""), (cx + 12, cy + 5), (255, 255, 255))
    return out


class SceneBackground:
    """The scene with people removed: the per-pixel median of frames kept across the whole run.

    Keeps every ``step``-th frame; when ``capacity`` is reached it drops every other kept frame and
    doubles ``step``, so the frames always span the run evenly in bounded memory. Heatmaps drawn on
    it show where people were without showing the people (privacy by default).
    """

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self.step = 1
        self._seen = 0
        self._frames: list[Image] = []

    def add(self, image: Image) -> None:
        """Offer a frame."""
        if self._seen % self.step == 0:
            self._frames.append(image)
            if len(self._frames) >= self.capacity:
                self._frames = self._frames[::2]
                self.step *= 2
        self._seen += 1

    def image(self) -> Image | None:
        """The median frame, or None before any frame was offered."""
        if not self._frames:
            return None
        return np.median(np.stack(self._frames), axis=0).astype(np.uint8)
