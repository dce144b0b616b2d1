"""The plain-torch YOLO loaded from a real Ultralytics checkpoint, and the restricted unpickler."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rva.detect.yolo import letterbox, to_nchw
from rva.errors import ModelError
from rva.gpu.yolo_torch import Conv, fuse, load_checkpoint

# Ultralytics 8.4.190's own forward of yolo11n-pose.pt on vtest.avi frame 120 letterboxed to 480x640
# (computed once where ultralytics is installed): the best-scoring anchor and its first values.
ULTRALYTICS_ANCHOR = 5277
ULTRALYTICS_VALUES = [589.1133, 202.2651, 33.9402, 102.6150, 0.082425, 585.7617, 160.4245, 0.512688]


def _frame_120(vtest_path: Path) -> torch.Tensor:
    cap = cv2.VideoCapture(str(vtest_path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 120)
    ok, frame = cap.read()
    assert ok
    return torch.from_numpy(to_nchw([letterbox(frame, (480, 640))[0]]))


def test_pose_checkpoint_matches_ultralytics(pose_weights: Path, vtest_path: Path) -> None:
    model, info = load_checkpoint(pose_weights)
    assert info.names == {0: "person"} and info.kpt_shape == (17, 3)
    with torch.no_grad():
        out = model(_frame_120(vtest_path))[0].numpy()
    assert out.shape == (4 + 1 + 51, 80 * 60 + 40 * 30 + 20 * 15)
    assert int(out[4].argmax()) == ULTRALYTICS_ANCHOR
    np.testing.assert_allclose(out[:8, ULTRALYTICS_ANCHOR], ULTRALYTICS_VALUES, rtol=1e-4, atol=1e-4)


def test_fusing_keeps_the_output(pose_weights: Path) -> None:
    model, _ = load_checkpoint(pose_weights)
    x = torch.rand(2, 3, 256, 320, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(x)
        after = fuse(model)(x)
    assert not any("bn" in m._modules for m in model.modules() if isinstance(m, Conv))
    assert float((after - before).norm() / before.norm()) < 1e-5


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"model": _Evil()}, r"refusing to load (posix|os)\.system"),
        ({"model": __import__("collections").Counter()}, r"refusing to load collections\.Counter"),
        ({"model": None}, "holds no Ultralytics detect or pose model"),
        ([1, 2, 3], "holds no Ultralytics detect or pose model"),
    ],
)
def test_only_allow_listed_objects_load(tmp_path: Path, payload: object, message: str) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save(payload, path)
    with pytest.raises(ModelError, match=message):
        load_checkpoint(path)


def test_missing_or_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="cannot read"):
        load_checkpoint(tmp_path / "bad.pt")
