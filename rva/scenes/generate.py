"""One call from a seed to a scene folder: ``scene.mp4``, ``config.yaml`` and ``truth.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rva.assets import sample_video
from rva.config import CameraConfig, load_config
from rva.scenes.background import load_background
from rva.scenes.cutouts import CutoutLibrary
from rva.scenes.library import load_library
from rva.scenes.layout import VTEST_LAYOUT, StoreLayout
from rva.scenes.render import Seen, VideoWriter, render_frames
from rva.scenes.script import make_script
from rva.scenes.truth import derive_truth, validate, write_truth

VIDEO_NAME, CONFIG_NAME, TRUTH_NAME = "scene.mp4", "config.yaml", "truth.json"


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
    seed: int, out: Path, duration_s: float = 120.0, people: int = 12, fps: float = 10.0,
    library: CutoutLibrary | None = None, layout: StoreLayout = VTEST_LAYOUT, video: bool = True,
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
    return SceneFiles(video_path if video else None, out / CONFIG_NAME, out / TRUTH_NAME, truth["summary"], validate(truth))
