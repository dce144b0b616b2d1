"""Person cut-outs from real footage: detector boxes, background-subtraction masks, RGBA sprite sequences.

A detector finds people in every ``every``-th frame of a fixed-camera clip (the anchors). An anchor
person with nobody near them, fully in frame and tall enough, is cut out by background subtraction inside
the box (largest clean foreground component), then followed a few frames backwards and forwards by the
same mask test, giving a short sequence of sprites of one walking person. Its gait loop is the prefix
whose last silhouette best matches the first. Sequences of the same person at successive anchors are
chained into one identity, so a scene can cast distinct people. Pure: decoding, the detector and the
cache live in :mod:`rva.scenes.library`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from rva.scenes.background import Image, foreground_mask

#: Bump when the extraction recipe changes, so caches made by older code are not reused.
CUTOUTS_VERSION = 4
#: Anchor every this many frames (2 s of vtest.avi): one detector pass each, the slow part.
ANCHOR_EVERY = 20
#: Follow an anchor person up to this many frames each way.
WINDOW = 6
#: A silhouette wider than this times its height is two people walking together (or a bad mask).
MAX_ASPECT = 0.6

Box = tuple[float, float, float, float]
#: ``frames -> per frame (xyxy (n, 4) boxes, (n,) True where the person is lying down)``.
DetectFn = Callable[[Sequence[Image]], list[tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]]]


@dataclass(frozen=True, slots=True)
class Sprite:
    """One cut-out image of a person.

    Attributes:
        rgba: ``(h, w, 4)`` uint8, BGR + feathered alpha; the silhouette is ``alpha >= 128``.
        foot: Bottom-centre of the silhouette's box in sprite pixels ``(x, y)`` (y = row below the last).
        src_foot: The same point in the source frame.
        src_frame: Source frame index.

    """

    rgba: Image
    foot: tuple[float, float]
    src_foot: tuple[float, float]
    src_frame: int

    @property
    def height(self) -> int:
        """Silhouette height in pixels."""
        rows = np.flatnonzero((self.rgba[:, :, 3] >= 128).any(axis=1))
        return int(rows[-1] - rows[0] + 1) if rows.size else 0


@dataclass(frozen=True, slots=True)
class CutoutSequence:
    """Consecutive sprites of one person walking.

    Attributes:
        person: Identity in the source clip (sequences of one person share it).
        sprites: Sprites in time order.
        loop: ``sprites[:loop]`` played in a cycle make a gait loop.
        step: Median foot displacement per frame in the source ``(dx, dy)``, pixels.

    """

    person: int
    sprites: tuple[Sprite, ...]
    loop: int
    step: tuple[float, float]

    @property
    def height(self) -> int:
        """Silhouette height of the first sprite."""
        return self.sprites[0].height


@dataclass(frozen=True, slots=True)
class CutoutLibrary:
    """All cut-outs of a clip, and its perspective: silhouette height ``~ a * foot_y + b``.

    Attributes:
        sequences: Sprite sequences, longest-first within a person.
        height_fit: ``(a, b)`` fitted on every sprite's silhouette.

    """

    sequences: tuple[CutoutSequence, ...]
    height_fit: tuple[float, float]

    def height_at(self, foot_y: float) -> float:
        """Expected silhouette height in pixels of a person standing with feet at ``foot_y``."""
        a, b = self.height_fit
        return a * foot_y + b

    @property
    def people(self) -> int:
        """Distinct identities."""
        return len({s.person for s in self.sequences})


# --- pure extraction -----------------------------------------------------------------------------


def isolated(boxes: npt.NDArray[np.float32], frame_hw: tuple[int, int], min_height: float = 55.0) -> list[int]:
    """Indices of boxes fully in frame, at least ``min_height`` tall, with no other box nearby.

    Nearby: the boxes grown by 40% of their width sideways and 15% of their height vertically overlap.
    """
    h, w = frame_hw
    grown = boxes.astype(np.float64).copy()
    bw, bh = grown[:, 2] - grown[:, 0], grown[:, 3] - grown[:, 1]
    grown[:, 0] -= 0.4 * bw
    grown[:, 2] += 0.4 * bw
    grown[:, 1] -= 0.15 * bh
    grown[:, 3] += 0.15 * bh
    keep = []
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        if x1 < 4 or y1 < 4 or x2 > w - 4 or y2 > h - 4 or y2 - y1 < min_height:
            continue
        others = np.delete(grown, i, axis=0)
        gi = grown[i]
        overlap = (others[:, 0] < gi[2]) & (others[:, 2] > gi[0]) & (others[:, 1] < gi[3]) & (others[:, 3] > gi[1])
        if not overlap.any():
            keep.append(i)
    return keep


def _fill_small_holes(mask: npt.NDArray[np.uint8], max_area: int) -> npt.NDArray[np.uint8]:
    """Fill holes up to ``max_area`` pixels (threshold speckle on clothes); keep big ones (between legs)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((mask == 0).astype(np.uint8), connectivity=4)
    out = mask.copy()
    h, w = mask.shape
    for label in range(1, count):
        x, y, cw, ch, area = (int(v) for v in stats[label])
        if area <= max_area and x > 0 and y > 0 and x + cw < w and y + ch < h:
            out[labels == label] = 1
    return out


def shadow_mask(frame: Image, background: Image) -> npt.NDArray[np.bool_]:
    """Pixels that look like the background in shade: uniformly darker, same colour.

    Args:
        frame: BGR image.
        background: BGR image of the same size.

    Returns:
        Boolean mask.

    """
    ratio = (frame.astype(np.float32) + 1.0) / (background.astype(np.float32) + 1.0)
    level = ratio.mean(axis=2)
    tint = np.abs(ratio - level[:, :, None]).max(axis=2)
    return np.asarray((level > 0.35) & (level < 0.92) & (tint < 0.08), np.bool_)


def silhouette(
    frame: Image, background: Image, box: Box, reference: Box | None = None
) -> tuple[npt.NDArray[np.uint8], Box] | None:
    """The foreground component of the person in ``box``, or None when it is not a clean cut-out.

    Args:
        frame: BGR frame.
        background: The empty scene, same size.
        box: Where the person is expected (a detector box, or a predicted one).
        reference: The anchor's silhouette box, to bound height and width changes; default ``box``.

    Returns:
        ``(mask, bbox)``: a frame-sized uint8 0/1 mask of the component (holes filled) and its
        ``x1, y1, x2, y2`` box (exclusive end), or None.

    """
    fh, fw = frame.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    rx1, ry1 = int(max(0, x1 - 0.8 * bw)), int(max(0, y1 - 0.2 * bh))
    rx2, ry2 = int(min(fw, x2 + 0.8 * bw)), int(min(fh, y2 + 0.2 * bh))
    fg = foreground_mask(frame[ry1:ry2, rx1:rx2], background[ry1:ry2, rx1:rx2]).astype(np.uint8)
    # Shadows are cast on the floor, at the feet: drop shade-like pixels in the box's bottom quarter.
    feet = max(0, int(y2 - 0.25 * bh) - ry1)
    shade = shadow_mask(frame[ry1 + feet : ry2, rx1:rx2], background[ry1 + feet : ry2, rx1:rx2])
    fg[feet:][shade] = 0
    # A vertical opening drops thin horizontal streaks (vtest.avi's barrier tape moves in the wind).
    fg = np.asarray(cv2.morphologyEx(fg, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 5))), np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    inner = np.zeros_like(fg)
    inner[
        int(y1 - ry1 + 0.2 * bh) : int(y2 - ry1 - 0.2 * bh), int(x1 - rx1 + 0.25 * bw) : int(x2 - rx1 - 0.25 * bw)
    ] = 1
    best, best_overlap = 0, 0
    for label in range(1, count):
        overlap = int(np.count_nonzero((labels == label) & (inner == 1)))
        if overlap > best_overlap:
            best, best_overlap = label, overlap
    if best == 0:
        return None
    cx, cy, cw, ch, area = (int(v) for v in stats[best])
    touches_roi = cx == 0 or cy == 0 or cx + cw == rx2 - rx1 or cy + ch == ry2 - ry1
    ref = reference or box
    rh, rw = ref[3] - ref[1], ref[2] - ref[0]
    if (
        touches_roi
        or abs(ch - rh) > 0.15 * rh
        or cw > 1.3 * rw
        or cw > MAX_ASPECT * ch
        or cw < 0.45 * rw
        or not 0.3 <= area / (cw * ch) <= 0.85
        or abs(cy + ch + ry1 - y2) > 0.15 * bh
    ):
        return None
    mask = np.zeros((fh, fw), np.uint8)
    comp = _fill_small_holes((labels[cy : cy + ch, cx : cx + cw] == best).astype(np.uint8), max(4, area // 200))
    mask[ry1 + cy : ry1 + cy + ch, rx1 + cx : rx1 + cx + cw] = comp
    return mask, (float(rx1 + cx), float(ry1 + cy), float(rx1 + cx + cw), float(ry1 + cy + ch))


def make_sprite(frame: Image, mask: npt.NDArray[np.uint8], bbox: Box, src_frame: int) -> Sprite:
    """Crop an RGBA sprite (2 px margin, alpha feathered by a small blur) around a silhouette."""
    fh, fw = frame.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in bbox)
    px1, py1, px2, py2 = max(0, x1 - 2), max(0, y1 - 2), min(fw, x2 + 2), min(fh, y2 + 2)
    alpha = cv2.GaussianBlur(mask[py1:py2, px1:px2].astype(np.float32), (3, 3), 0.7)
    rgba = np.dstack([frame[py1:py2, px1:px2], np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)])
    foot = ((x1 + x2) / 2.0 - px1, float(y2 - py1))
    return Sprite(np.ascontiguousarray(rgba), foot, ((x1 + x2) / 2.0, float(y2)), src_frame)


def _follow(
    frames: Sequence[Image], background: Image, start: int, anchor: Box, direction: int
) -> list[tuple[int, npt.NDArray[np.uint8], Box]]:
    out: list[tuple[int, npt.NDArray[np.uint8], Box]] = []
    prev, velocity = anchor, (0.0, 0.0)
    i = start + direction
    while 0 <= i < len(frames):
        guess = (prev[0] + velocity[0], prev[1] + velocity[1], prev[2] + velocity[0], prev[3] + velocity[1])
        found = silhouette(frames[i], background, guess, reference=anchor)
        if found is None:
            break
        mask, box = found
        step = ((box[0] + box[2] - prev[0] - prev[2]) / 2.0, box[3] - prev[3])
        h = anchor[3] - anchor[1]
        # A walker moves smoothly and keeps their height; a jump means a lost head or a merged neighbour.
        grew = (box[3] - box[1]) - (prev[3] - prev[1])
        if abs(step[0]) > 0.25 * h or abs(step[1]) > 0.12 * h or abs(grew) > 0.06 * h:
            break
        out.append((i, mask, box))
        prev, velocity = box, step
        i += direction
    return out


def gait_loop(sprites: Sequence[Sprite], min_period: int = 5) -> int:
    """Length of the prefix that loops best: the ``p`` whose silhouette ``p`` best matches the first."""
    if len(sprites) <= min_period:
        return len(sprites)

    def shape(s: Sprite) -> npt.NDArray[np.float32]:
        a = (s.rgba[:, :, 3] >= 128).astype(np.float32)
        return np.asarray(cv2.resize(a, (24, 48), interpolation=cv2.INTER_AREA), np.float32)

    first = shape(sprites[0])
    costs = [float(np.abs(shape(sprites[p]) - first).mean()) for p in range(min_period, len(sprites))]
    return min_period + int(np.argmin(costs))


def cut_sequence(frames: Sequence[Image], background: Image, anchor_index: int, box: Box) -> list[Sprite]:
    """Sprites of the person in ``box`` at ``frames[anchor_index]``, followed both ways, in time order."""
    found = silhouette(frames[anchor_index], background, box)
    if found is None:
        return []
    mask, sil = found
    back = _follow(frames, background, anchor_index, sil, -1)[::-1]
    fwd = _follow(frames, background, anchor_index, sil, +1)
    return [make_sprite(frames[i], m, b, i) for i, m, b in [*back, (anchor_index, mask, sil), *fwd]]


def appearance(sprite: Sprite) -> npt.NDArray[np.float64]:
    """Colour signature of a person: hue-saturation-value histograms of torso and legs, unit-normalised.

    ``sqrt(a) @ sqrt(b)`` of two signatures is their Bhattacharyya coefficient: 1 for the same colours.
    """
    sil = sprite.rgba[:, :, 3] >= 128
    rows = np.flatnonzero(sil.any(axis=1))
    hsv = cv2.cvtColor(np.ascontiguousarray(sprite.rgba[:, :, :3]), cv2.COLOR_BGR2HSV)
    parts = []
    for lo, hi in ((0.15, 0.55), (0.55, 0.95)):  # torso, legs
        part = np.zeros(sil.shape, np.uint8)
        r0, r1 = (int(rows[0] + f * (rows[-1] - rows[0] + 1)) for f in (lo, hi))
        part[r0:r1] = sil[r0:r1]
        hist = cv2.calcHist([hsv], [0, 1, 2], part, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
        parts.append(hist / max(float(hist.sum()), 1.0))
    return np.concatenate(parts) / 2.0


def fit_height(sprites: Sequence[Sprite]) -> tuple[float, float]:
    """Robust line ``height ~ a * foot_y + b`` through silhouette heights (two rounds of outlier rejection)."""
    y = np.array([s.src_foot[1] for s in sprites], np.float64)
    h = np.array([s.height for s in sprites], np.float64)
    keep = np.ones(y.size, np.bool_)
    a, b = 0.0, float(np.median(h)) if h.size else 0.0
    for _ in range(3):
        if np.count_nonzero(keep) < 2 or np.ptp(y[keep]) < 1:
            break
        a, b = (float(v) for v in np.polyfit(y[keep], h[keep], 1))
        resid = np.abs(h - (a * y + b))
        keep = resid <= max(3.0 * float(np.median(resid[keep])), 2.0)
    return a, b


def chain_people(sequences: Sequence[tuple[int, list[Sprite]]], every: int) -> list[int]:
    """Identity per sequence: a sequence continues an earlier one where that one's motion predicts it.

    Args:
        sequences: ``(anchor_frame, sprites)`` in anchor order.
        every: Frames between anchors.

    Returns:
        One identity per sequence, from 0.

    """
    ids: list[int] = []
    for k, (frame, sprites) in enumerate(sequences):
        s0 = sprites[0]
        best, best_d = -1, np.inf
        for j in range(k):
            prev_frame, prev = sequences[j]
            if not 0 < frame - prev_frame <= 2 * every:
                continue
            last = prev[-1]
            dt = s0.src_frame - last.src_frame
            step = _median_step(prev)
            px, py = last.src_foot[0] + step[0] * dt, last.src_foot[1] + step[1] * dt
            d = float(np.hypot(s0.src_foot[0] - px, s0.src_foot[1] - py))
            h = max(s0.height, 1)
            tol = 0.6 * h if len(prev) > 2 else 2.0 * h
            if d < tol and abs(last.height / h - 1.0) < 0.2 and d < best_d:
                best, best_d = ids[j], d
        ids.append(best if best >= 0 else max(ids, default=-1) + 1)
    return ids


def _median_step(sprites: Sequence[Sprite]) -> tuple[float, float]:
    if len(sprites) < 2:
        return 0.0, 0.0
    feet = np.array([s.src_foot for s in sprites], np.float64)
    dt = np.diff([s.src_frame for s in sprites]).astype(np.float64)
    steps = np.diff(feet, axis=0) / dt[:, None]
    return float(np.median(steps[:, 0])), float(np.median(steps[:, 1]))


def build_library(anchors: Sequence[tuple[int, list[Sprite]]], every: int) -> CutoutLibrary:
    """Assemble sequences (anchor frame, sprites) into a library: identities, gait loops, height fit."""
    usable = [(f, s) for f, s in anchors if s]
    people = chain_people(usable, every)
    seqs = [
        CutoutSequence(person, tuple(sprites), gait_loop(sprites), _median_step(sprites))
        for person, (_, sprites) in zip(people, usable, strict=True)
    ]
    seqs.sort(key=lambda s: (s.person, -len(s.sprites), s.sprites[0].src_frame))
    return CutoutLibrary(tuple(seqs), fit_height([sp for s in seqs for sp in s.sprites]))
