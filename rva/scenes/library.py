"""The cut-out library of a clip: decoded, detected and cut once, then cached (two ``.npz`` files).

The detector pass over anchor frames is the slow part (about a minute for vtest.avi on two cores); its
boxes are cached on their own, so a change to the cutting recipe (:data:`CUTOUTS_VERSION`) re-cuts in
seconds without detecting again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rva.assets import sample_video
from rva.scenes.background import Image, load_background, read_frames, scenes_cache_dir, video_key
from rva.scenes.cutouts import (
    ANCHOR_EVERY,
    CUTOUTS_VERSION,
    WINDOW,
    CutoutLibrary,
    CutoutSequence,
    DetectFn,
    Sprite,
    build_library,
    cut_sequence,
    isolated,
)

#: Bump when the anchor detection changes (model, thresholds), so cached boxes are not reused.
DETECT_VERSION = 1

Anchors = dict[int, tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]]


def default_detect_fn() -> DetectFn:
    """Wrap the project's default detector (:mod:`rva.detect`) as a :data:`~rva.scenes.cutouts.DetectFn`."""
    from rva.config import OnnxDetectorConfig
    from rva.detect import create_detector

    detector = create_detector(OnnxDetectorConfig(confidence=0.4))

    def detect(images: Sequence[Image]) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]]:
        out = []
        for det in detector.detect(images):
            fallen = np.asarray(det.data.get("fallen", np.zeros(len(det.xyxy), np.bool_)), np.bool_)
            out.append((det.xyxy, fallen))
        return out

    return detect


def detect_anchors(video: Path, detect: DetectFn, every: int = ANCHOR_EVERY) -> Anchors:
    """Run the detector on every ``every``-th frame: ``frame -> (boxes (n, 4), lying (n,))``."""
    return {index: detect([frame])[0] for index, frame in read_frames(video, every)}


def cut_anchors(
    video: Path, background: Image, anchors: Anchors, window: int = WINDOW
) -> list[tuple[int, list[Sprite]]]:
    """Cut out the isolated standing people of each anchor frame, followed ``window`` frames each way."""
    out: list[tuple[int, list[Sprite]]] = []
    buffer: deque[tuple[int, Image]] = deque(maxlen=2 * window + 1)
    pending = deque(sorted(anchors))

    def cut(anchor: int) -> None:
        boxes, lying = anchors[anchor]
        frames = [f for _, f in buffer]
        first = buffer[0][0]
        for i in isolated(boxes, frames[0].shape[:2]):
            if not lying[i]:
                x1, y1, x2, y2 = (float(v) for v in boxes[i])
                sprites = cut_sequence(frames, background, anchor - first, (x1, y1, x2, y2))
                out.append((anchor, [Sprite(s.rgba, s.foot, s.src_foot, s.src_frame + first) for s in sprites]))

    for index, frame in read_frames(video):
        buffer.append((index, frame))
        while pending and index - pending[0] >= window:
            cut(pending.popleft())
    while pending:
        cut(pending.popleft())
    return out


def save_anchors(anchors: Anchors, path: Path) -> None:
    """Write anchor detections to an ``.npz`` (rows: frame, x1, y1, x2, y2, lying)."""
    rows = [
        [f, *box, float(ly)]
        for f, (boxes, lying) in sorted(anchors.items())
        for box, ly in zip(boxes.tolist(), lying.tolist(), strict=True)
    ]
    frames = np.array(sorted(anchors), np.int64)
    _atomic_savez(path, version=np.array(DETECT_VERSION), frames=frames, rows=np.array(rows, np.float64).reshape(-1, 6))


def read_anchors(path: Path) -> Anchors:
    """Inverse of :func:`save_anchors`."""
    with np.load(path, allow_pickle=False) as data:
        if int(data["version"]) != DETECT_VERSION:
            raise ValueError(f"{path}: anchor cache version {int(data['version'])}, expected {DETECT_VERSION}")
        frames, rows = data["frames"], data["rows"]
    return {
        int(f): (rows[rows[:, 0] == f, 1:5].astype(np.float32), rows[rows[:, 0] == f, 5] > 0.5) for f in frames.tolist()
    }


def save_library(library: CutoutLibrary, path: Path) -> None:
    """Write a library to one ``.npz`` (pixels concatenated, tables of offsets and geometry; no pickle)."""
    rows: list[list[float]] = []
    seq_rows: list[list[float]] = []
    chunks: list[npt.NDArray[np.uint8]] = []
    offset = 0
    for k, seq in enumerate(library.sequences):
        seq_rows.append([seq.person, len(rows), len(seq.sprites), seq.loop, *seq.step])
        for sp in seq.sprites:
            h, w = sp.rgba.shape[:2]
            rows.append([offset, h, w, *sp.foot, *sp.src_foot, sp.src_frame, k])
            chunks.append(sp.rgba.reshape(-1))
            offset += sp.rgba.size
    _atomic_savez(
        path,
        version=np.array(CUTOUTS_VERSION),
        pixels=np.concatenate(chunks) if chunks else np.zeros(0, np.uint8),
        sprites=np.array(rows, np.float64).reshape(-1, 9),
        sequences=np.array(seq_rows, np.float64).reshape(-1, 6),
        height_fit=np.array(library.height_fit, np.float64),
    )


def read_library(path: Path) -> CutoutLibrary:
    """Inverse of :func:`save_library`."""
    with np.load(path, allow_pickle=False) as data:
        if int(data["version"]) != CUTOUTS_VERSION:
            raise ValueError(f"{path}: cut-out cache version {int(data['version'])}, expected {CUTOUTS_VERSION}")
        pixels, rows, seq_rows, fit = data["pixels"], data["sprites"], data["sequences"], data["height_fit"]
    sprites = []
    for off, h, w, fx, fy, sx, sy, frame, _ in rows.tolist():
        rgba = pixels[int(off) : int(off) + int(h) * int(w) * 4].reshape(int(h), int(w), 4)
        sprites.append(Sprite(rgba, (fx, fy), (sx, sy), int(frame)))
    seqs = tuple(
        CutoutSequence(int(person), tuple(sprites[int(first) : int(first) + int(n)]), int(loop), (dx, dy))
        for person, first, n, loop, dx, dy in seq_rows.tolist()
    )
    return CutoutLibrary(seqs, (float(fit[0]), float(fit[1])))


def _atomic_savez(path: Path, **arrays: npt.NDArray[np.generic]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".part.npz")
    np.savez_compressed(partial, **arrays)  # type: ignore[arg-type]
    partial.replace(path)  # atomic: a crash never leaves a half-written cache file


def load_library(video: Path | None = None, cache: Path | None = None, detect: DetectFn | None = None) -> CutoutLibrary:
    """Return the cut-out library of ``video`` (default vtest.avi), made once and cached.

    Args:
        video: Fixed-camera clip; default :func:`rva.assets.sample_video`.
        cache: Cache folder; default :func:`~rva.scenes.background.scenes_cache_dir`.
        detect: Person detector; default :func:`default_detect_fn` (used only when no boxes are cached).

    Returns:
        The library.

    """
    video = video or sample_video()
    folder = cache or scenes_cache_dir()
    key = video_key(video)
    target = folder / f"cutouts-{key}-v{CUTOUTS_VERSION}.npz"
    if target.is_file():
        try:
            return read_library(target)
        except (ValueError, OSError, KeyError):
            target.unlink(missing_ok=True)
    boxes_file = folder / f"anchors-{key}-every{ANCHOR_EVERY}-v{DETECT_VERSION}.npz"
    try:
        anchors = read_anchors(boxes_file)
    except (ValueError, OSError, KeyError):
        anchors = detect_anchors(video, detect or default_detect_fn())
        save_anchors(anchors, boxes_file)
    library = build_library(cut_anchors(video, load_background(video, folder), anchors), ANCHOR_EVERY)
    save_library(library, target)
    return library
