"""Compositing people onto the background, and writing the scene as H.264 with PyAV.

Each person's sprite is scaled to the perspective at their feet, mirrored to face where they walk (and
turned on its side when they lie down), and placed so the bottom-centre of its silhouette lands on their
foot point. People are drawn far to near (by foot y), so nearer people hide farther ones; static
foreground (a lamp post) is restored over people standing behind it. The same pass measures what a
perfect detector would see: each person's box, its unhidden part, and the fraction hidden or off screen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np
import numpy.typing as npt

from rva.scenes.background import Image
from rva.scenes.cutouts import CutoutLibrary
from rva.scenes.layout import Ground, Occluder
from rva.scenes.script import Script
from rva.scenes.simulate import PersonState, Pose

Box = tuple[float, float, float, float]
#: A lying person is seen from above at a slant: their thickness on screen shrinks by this much.
LYING_SQUASH = 0.75
#: The label of static foreground in the coverage map.
_OCCLUDER = -2


@dataclass(frozen=True, slots=True)
class Placed:
    """A sprite ready to draw: scaled, mirrored or turned, positioned.

    Attributes:
        state: Whom it draws.
        rgba: The transformed sprite.
        x0: Frame column of its left edge (may be off screen).
        y0: Frame row of its top edge.
        silhouette: ``alpha >= 128`` of ``rgba``.
    """

    state: PersonState
    rgba: Image
    x0: int
    y0: int
    silhouette: npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Seen:
    """A person as rendered in one frame: the ground truth a detector should find.

    Attributes:
        person: Scene person id.
        box: ``x1, y1, x2, y2`` of their on-screen silhouette in frame pixels (edges, so ``x2`` is one
            past the last column); the foot point is its bottom-centre.
        visible_box: The same for the part not hidden by nearer people or foreground; None when hidden.
        occlusion: Fraction of the on-screen silhouette hidden by nearer people or foreground.
        truncation: Fraction of the silhouette outside the frame.
        pose: Walking, standing or lying.
    """

    person: int
    box: Box
    visible_box: Box | None
    occlusion: float
    truncation: float
    pose: Pose


def place(state: PersonState, library: CutoutLibrary, ground: Ground) -> Placed:
    """Scale, mirror or turn a person's sprite and position it on their foot point."""
    sprite = library.sequences[state.sequence].sprites[state.sprite]
    scale = state.scale * ground.height(state.y) / ground.height(sprite.src_foot[1])
    h, w = sprite.rgba.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    rgba = cv2.resize(sprite.rgba, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if state.flip:
        rgba = rgba[:, ::-1]
    if state.pose is Pose.LYING:
        # Head first, in the direction they were walking (the source's, mirrored when flipped).
        rgba = cv2.rotate(rgba, cv2.ROTATE_90_COUNTERCLOCKWISE if state.flip else cv2.ROTATE_90_CLOCKWISE)
        rgba = cv2.resize(rgba, (rgba.shape[1], max(1, round(rgba.shape[0] * LYING_SQUASH))))
    out: Image = np.ascontiguousarray(rgba, np.uint8)
    sil = out[:, :, 3] >= 128
    rows, cols = np.flatnonzero(sil.any(axis=1)), np.flatnonzero(sil.any(axis=0))
    if rows.size == 0:
        return Placed(state, out, -(10**6), -(10**6), sil)
    x0 = round(state.x - (cols[0] + cols[-1] + 1) / 2.0)
    y0 = round(state.y - (rows[-1] + 1))
    return Placed(state, out, int(x0), int(y0), sil)


def occluder_masks(
    occluders: Sequence[Occluder], frame_hw: tuple[int, int]
) -> list[tuple[npt.NDArray[np.bool_], float]]:
    """Rasterise static occluders to frame-sized masks, with the floor row they stand on."""
    out = []
    for occ in occluders:
        mask = np.zeros(frame_hw, np.uint8)
        cv2.fillPoly(mask, [np.round(np.asarray(occ.polygon)).astype(np.int32)], 1)
        out.append((mask.astype(np.bool_), occ.base_y))
    return out


def compose(
    background: Image,
    placed: Sequence[Placed],
    occluders: Sequence[tuple[npt.NDArray[np.bool_], float]] = (),
    draw: bool = True,
) -> tuple[Image | None, list[Seen]]:
    """Draw people far to near over the background and measure what each shows.

    Args:
        background: BGR frame.
        placed: People to draw.
        occluders: Static foreground masks and their floor rows (see :func:`occluder_masks`).
        draw: Also make the image (False: only measure, for ground truth without video).

    Returns:
        The image (None when ``draw`` is False) and one :class:`Seen` per person with pixels on screen,
        in person id order.
    """
    fh, fw = background.shape[:2]
    image = background.copy() if draw else None
    labels = np.full((fh, fw), -1, np.int32)
    layers: list[tuple[float, int, int]] = [(p.state.y, p.state.person, i) for i, p in enumerate(placed)]
    layers += [(base_y, 10**9, -1 - k) for k, (_, base_y) in enumerate(occluders)]
    regions: dict[int, tuple[int, int, int, int]] = {}
    totals: dict[int, tuple[int, int]] = {}
    for _, _, idx in sorted(layers):
        if idx < 0:
            mask = occluders[-1 - idx][0]
            labels[mask] = _OCCLUDER
            if image is not None:
                image[mask] = background[mask]
            continue
        p = placed[idx]
        h, w = p.silhouette.shape
        fx1, fy1, fx2, fy2 = max(p.x0, 0), max(p.y0, 0), min(p.x0 + w, fw), min(p.y0 + h, fh)
        total = int(np.count_nonzero(p.silhouette))
        if fx1 >= fx2 or fy1 >= fy2:
            continue
        sx1, sy1 = fx1 - p.x0, fy1 - p.y0
        sil = p.silhouette[sy1 : sy1 + fy2 - fy1, sx1 : sx1 + fx2 - fx1]
        if not sil.any():
            continue
        labels[fy1:fy2, fx1:fx2][sil] = idx
        regions[idx] = (fx1, fy1, fx2, fy2)
        totals[idx] = (total, int(np.count_nonzero(sil)))
        if image is not None:
            src = p.rgba[sy1 : sy1 + fy2 - fy1, sx1 : sx1 + fx2 - fx1]
            a = src[:, :, 3:].astype(np.uint16)
            dst = image[fy1:fy2, fx1:fx2]
            dst[:] = ((src[:, :, :3] * a + dst * (255 - a) + 127) // 255).astype(np.uint8)
    seen = []
    for idx, (fx1, fy1, fx2, fy2) in regions.items():
        p = placed[idx]
        total, on_screen = totals[idx]
        sil = np.zeros((fy2 - fy1, fx2 - fx1), np.bool_)
        sx1, sy1 = fx1 - p.x0, fy1 - p.y0
        sil[:] = p.silhouette[sy1 : sy1 + fy2 - fy1, sx1 : sx1 + fx2 - fx1]
        visible = labels[fy1:fy2, fx1:fx2] == idx
        seen.append(
            Seen(
                person=p.state.person,
                box=_bbox(sil, fx1, fy1),  # type: ignore[arg-type]
                visible_box=_bbox(visible, fx1, fy1),
                occlusion=1.0 - int(np.count_nonzero(visible)) / on_screen,
                truncation=1.0 - on_screen / total,
                pose=p.state.pose,
            )
        )
    return image, sorted(seen, key=lambda s: s.person)


def _bbox(mask: npt.NDArray[np.bool_], x0: int, y0: int) -> Box | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1), float(y0 + rows[-1] + 1)


def render_frames(
    script: Script, library: CutoutLibrary, background: Image, draw: bool = True
) -> Iterator[tuple[Image | None, list[Seen]]]:
    """Render a script frame by frame: the image (None without ``draw``) and who is seen in it."""
    masks = occluder_masks(script.layout.occluders, background.shape[:2])
    for states in script.frames:
        yield compose(background, [place(s, library, script.ground) for s in states], masks, draw)


class VideoWriter:
    """H.264 (libx264, yuv420p) writer with PyAV; frame ``i`` gets PTS ``i / fps``.

    Args:
        path: Output file (``.mp4``).
        fps: Frame rate.
        size: ``(width, height)``; both even (yuv420p).
        crf: x264 constant rate factor (lower is better quality).
        preset: x264 speed preset.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int], crf: int = 18, preset: str = "veryfast") -> None:
        if size[0] % 2 or size[1] % 2:
            raise ValueError(f"size: yuv420p needs even width and height, got {size}")
        self._container = av.open(str(path), mode="w")
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset}
        self._count = 0

    def write(self, bgr: Image) -> None:
        """Encode one BGR frame."""
        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
        frame.pts = self._count  # in the encoder's time base, 1 / fps
        self._container.mux(self._stream.encode(frame))
        self._count += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
