"""One call from a seed to a scene folder: ``scene.mp4``, ``config.yaml`` and ``truth.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rva.assets import sample_video
from rva.config import CameraConfig, load_config
from rva.scenes.background import load_background, read_frames
from rva.scenes.cutouts import CutoutLibrary
from rva.scenes.layout import VTEST_LAYOUT, StoreLayout
from rva.scenes.library import load_library
from rva.scenes.render import Seen, VideoWriter, render_frames
from rva.scenes.script import make_script
from rva.scenes.truth import derive_truth, validate, write_truth

VIDEO_NAME, CONFIG_NAME, TRUTH_NAME, PROBE_NAME = "scene.mp4", "config.yaml", "truth.json", "fall_probe.json"


@dataclass(frozen=True, slots=True)
class SceneFiles:
    """What :func:`generate_scene` wrote.

    Attributes:
        video: ``scene.mp4`` (None when only the truth was derived).
        config: ``config.yaml``.
        truth: ``truth.json``.
        summary: The truth's scene statistics.
        problems: What :func:`~rva.scenes.truth.validate` found (empty: consistent).
    """

    video: Path | None
    config: Path
    truth: Path
    summary: dict[str, Any]
    problems: list[str]


def write_config(camera: CameraConfig, path: Path, store: str) -> None:
    """Write a one-camera RVA config (zones, lines and queue with their inertia spelled out) and validate it."""
    doc = {"store": store, "cameras": [camera.model_dump(mode="json")]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    load_config(path)  # what we write must be what RVA accepts


def generate_scene(
    seed: int,
    out: Path,
    duration_s: float = 120.0,
    people: int = 12,
    fps: float = 10.0,
    library: CutoutLibrary | None = None,
    layout: StoreLayout = VTEST_LAYOUT,
    video: bool = True,
) -> SceneFiles:
    """Generate a scene into ``out``: the H.264 video, the RVA config that reads it, and its ground truth.

    Args:
        seed: Everything random comes from ``numpy.random.default_rng(seed)``.
        out: Output folder (created).
        duration_s: Scene length.
        people: Cast size.
        fps: Frame rate (frame ``i`` has PTS ``i / fps``).
        library: Cut-outs (default: from vtest.avi, cached).
        layout: The store drawn on the background.
        video: Write ``scene.mp4`` (False: config and truth only).

    Returns:
        The files written, the scene statistics and any consistency problems found.

    """
    out.mkdir(parents=True, exist_ok=True)
    src = sample_video()
    library = library or load_library(src)
    background = load_background(src)
    script = make_script(library, layout, seed, duration_s, people, fps)
    video_path = (out / VIDEO_NAME).resolve()
    camera = layout.camera_config(str(video_path))
    write_config(camera, out / CONFIG_NAME, store=f"scene-seed{seed}")
    frames: list[list[Seen]] = []
    if video:
        with VideoWriter(video_path, fps, layout.frame_size) as writer:
            for image, seen in render_frames(script, library, background):
                assert image is not None
                writer.write(image)
                frames.append(seen)
    else:
        frames = [seen for _, seen in render_frames(script, library, background, draw=False)]
    truth = derive_truth(script, frames, camera)
    write_truth(truth, out / TRUTH_NAME)
    return SceneFiles(
        video_path if video else None, out / CONFIG_NAME, out / TRUTH_NAME, truth["summary"], validate(truth)
    )


def probe_fall(video: Path, truth: dict[str, Any], every: int = 10) -> list[dict[str, Any]]:
    """Ask the default detector about every ``every``-th frame where someone lies on the floor.

    Whether the model's ``Fall`` class fires on a rotated cut-out is not guaranteed; this records it.

    Args:
        video: The rendered ``scene.mp4``.
        truth: Its ground truth.
        every: Probe one lying frame in this many.

    Returns:
        One row per probed person-frame: ``frame``, ``id``, ``iou`` of the best-matching detection (0 if
        none), whether it was ``detected`` (IoU >= 0.3), flagged ``fallen``, and its ``confidence``.

    """
    from rva.config import OnnxDetectorConfig
    from rva.detect import create_detector

    lying = {
        f["frame"]: [p for p in f["people"] if p["pose"] == "lying"] for f in truth["frames"] if f["frame"] % every == 0
    }
    lying = {k: v for k, v in lying.items() if v}
    rows: list[dict[str, Any]] = []
    if not lying:
        return rows
    with create_detector(OnnxDetectorConfig()) as detector:
        for index, frame in read_frames(video):
            if index not in lying:
                continue
            det = detector.detect([frame])[0]
            for person in lying[index]:
                ious = [_iou(person["box"], box) for box in det.xyxy.tolist()]
                best = int(np.argmax(ious)) if ious else -1
                hit = best >= 0 and ious[best] >= 0.3
                rows.append(
                    {
                        "frame": index,
                        "id": person["id"],
                        "iou": round(ious[best], 3) if best >= 0 else 0.0,
                        "detected": hit,
                        "fallen": bool(det.data["fallen"][best]) if hit else False,
                        "confidence": round(float(det.confidence[best]), 3) if hit else None,
                    }
                )
    return rows


def _iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
