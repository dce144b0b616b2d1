"""Scene fixtures: the cut-out library and background of vtest.avi, made once per session (and cached)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rva.scenes import generate_scene
from rva.scenes.background import load_background
from rva.scenes.cutouts import CutoutLibrary
from rva.scenes.library import load_library


@pytest.fixture(scope="session")
def scene_library(vtest_path: Path) -> CutoutLibrary:
    """Cut-outs of vtest.avi (about a minute the first time on two cores, then read from the cache)."""
    return load_library(vtest_path)


@pytest.fixture(scope="session")
def scene_background(vtest_path: Path) -> np.ndarray:
    return load_background(vtest_path)


@pytest.fixture(scope="session")
def seed0(scene_library: CutoutLibrary, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default scene of seed 0 (2 minutes, 12 people): config.yaml and truth.json, no video."""
    out = tmp_path_factory.mktemp("seed0")
    generate_scene(0, out, library=scene_library, video=False)
    return out
