"""The empty scene: the per-pixel temporal median of a fixed-camera clip, and foreground masks against it.

People walking through a fixed camera's view cover any pixel only a minority of the time, so the median
over frames spread across the clip is the scene with nobody in it. Decoding and caching are thin
wrappers around the pure :func:`median_background` and :func:`foreground_mask`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from rva.assets import cache_dir, sample_video, sha256_of

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

#: Bump when the background recipe changes, so caches made by older code are not reused.
BACKGROUND_VERSION = 1
#: Every this many frames feed the median (159 of vtest.avi's 795: enough, and 5x less work).
MEDIAN_STEP = 5
#: A pixel differs from the background when a channel differs by more than this (0-255).
FOREGROUND_THRESHOLD = 28


def read_frames(path: Path, step: int = 1) -> Iterator[tuple[int, Image]]:
    """Decode a video with PyAV, yielding ``(index, bgr)`` for every ``step``-th frame.

    Args:
        path: Video file.
        step: Keep frames whose index is a multiple of this.

    Yields:
        Frame index from 0 and the BGR uint8 frame.

    """
    if step < 1:
        raise ValueError(f"step: expected >= 1, got {step}")
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % step == 0:
                yield index, np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)


def median_background(frames: Iterable[Image]) -> Image:
    """Per-pixel, per-channel temporal median of frames of one fixed camera.

    Args:
        frames: BGR uint8 frames, all the same size (at least one).

    Returns:
        The median frame, uint8.

    """
    stack = np.stack(list(frames))
    if stack.ndim != 4 or stack.shape[0] == 0:
        raise ValueError(f"frames: expected a non-empty sequence of (h, w, 3) images, got {stack.shape}")
    median: Image = np.median(stack, axis=0).round().astype(np.uint8)
    return median


def foreground_mask(frame: Image, background: Image, threshold: int = FOREGROUND_THRESHOLD) -> Mask:
    """Pixels that differ from the background: some channel differs by more than ``threshold``.

    Cleaned with a 3x3 opening (drops compression speckle) then a 5x5 closing (joins a body split by a
    background-coloured stripe).

    Args:
        frame: BGR uint8 image.
        background: BGR uint8 image of the same size (or an aligned crop of it).
        threshold: Per-channel difference, 0-255.

    Returns:
        Boolean mask of the frame's size.

    """
    if frame.shape != background.shape:
        raise ValueError(f"frame {frame.shape} and background {background.shape} differ in shape")
    diff = cv2.absdiff(frame, background).max(axis=2)
    mask = (diff > threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return mask.astype(np.bool_)


def scenes_cache_dir() -> Path:
    """Where backgrounds and cut-out libraries are cached (``<rva cache>/scenes``)."""
    return cache_dir() / "scenes"


def video_key(video: Path) -> str:
    """Short content key of a video file, for cache names."""
    return sha256_of(video)[:12]


def load_background(video: Path | None = None, cache: Path | None = None) -> Image:
    """The empty-scene background of ``video`` (default: vtest.avi), computed once and cached as a PNG.

    Args:
        video: Fixed-camera clip; default :func:`rva.assets.sample_video`.
        cache: Cache folder; default :func:`scenes_cache_dir`.

    Returns:
        BGR uint8 background.

    """
    video = video or sample_video()
    folder = cache or scenes_cache_dir()
    target = folder / f"background-{video_key(video)}-v{BACKGROUND_VERSION}.png"
    if target.is_file():
        image = cv2.imread(str(target), cv2.IMREAD_COLOR)
        if image is not None:
            return image.astype(np.uint8)
    background = median_background(frame for _, frame in read_frames(video, MEDIAN_STEP))
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.stem + ".part.png")
    cv2.imwrite(str(partial), background)
    partial.replace(target)  # atomic: a crash never leaves a half-written cache file
    return background
