"""Shared fixtures: the real sample video and the default model, fetched the user's way if needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_VTEST = REPO.parent / "shared" / "data" / "vtest.avi"


@pytest.fixture(scope="session")
def vtest_path() -> Path:
    """vtest.avi (768x576, 10 fps, 795 frames): the workplace copy if present, else fetched."""
    if SHARED_VTEST.is_file():
        os.environ.setdefault("RVA_SAMPLE_VIDEO", str(SHARED_VTEST))
        return SHARED_VTEST
    from rva.assets import sample_video

    return sample_video()
