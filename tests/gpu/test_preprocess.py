"""GPU pre-processing in torch (run on CPU tensors) against OpenCV's convert + rva.detect.yolo.letterbox."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rva.detect.yolo import letterbox, to_nchw
from rva.gpu.preprocess import bgr_to_input, letterbox_geometry, nv12_to_input


def _vtest_frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    assert ok
    return frame


def _to_nv12(bgr: np.ndarray) -> np.ndarray:
    h, w = bgr.shape[:2]
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    u, v = i420[h : h + h // 4].reshape(h // 2, w // 2), i420[h + h // 4 :].reshape(h // 2, w // 2)
    return np.concatenate([i420[:h], np.stack([u, v], -1).reshape(h // 2, w)])


@pytest.mark.parametrize(
    ("frame_wh", "input_hw", "max_levels", "p99_levels"),
    [
        ((1920, 1080), (384, 640), 1.0, 0.6),  # 1080p -> 640x360: a 3x decimation, exact to rounding
        ((1920, 1080), (640, 640), 1.0, 0.6),
        ((768, 576), (480, 640), 40.0, 1.5),  # clamping happens before vs after the resize on saturated colours
        ((768, 576), (640, 640), 40.0, 1.5),
        ((640, 360), (384, 640), 2.0, 1.0),  # upscaled
    ],
)
def test_nv12_matches_opencv(vtest_path: Path, frame_wh: tuple[int, int], input_hw: tuple[int, int],
                             max_levels: float, p99_levels: float) -> None:
    frames = [cv2.resize(_vtest_frame(vtest_path, i), frame_wh, interpolation=cv2.INTER_AREA) for i in (10, 300)]
    nv12 = [_to_nv12(f) for f in frames]
    refs = [letterbox(cv2.cvtColor(n, cv2.COLOR_YUV2BGR_NV12), input_hw) for n in nv12]
    out = torch.full((2, 3, *input_hw), -1.0)
    lb = nv12_to_input(torch.from_numpy(np.stack(nv12)), out, frame_size=frame_wh)
    assert lb == refs[0][1] == letterbox_geometry(*frame_wh, input_hw)
    diff = np.abs(out.numpy() - to_nchw([r[0] for r in refs])) * 255
    assert diff.max() <= max_levels and np.percentile(diff, 99) <= p99_levels and diff.mean() < 0.5


def test_bgr_matches_letterbox(vtest_path: Path) -> None:
    frames = [_vtest_frame(vtest_path, 5), cv2.resize(_vtest_frame(vtest_path, 6), (1920, 1080))]
    out = torch.zeros(2, 3, 384, 640)
    boxes = bgr_to_input([torch.from_numpy(f) for f in frames], out)
    refs = [letterbox(f, (384, 640)) for f in frames]
    assert boxes == [r[1] for r in refs]
    diff = np.abs(out.numpy() - to_nchw([r[0] for r in refs])) * 255
    assert diff.max() <= 1.0


@pytest.mark.parametrize(
    ("shape", "out_shape", "message"),
    [((1, 540, 640), (1, 3, 384, 640), "expected"), ((1, 540, 960), (2, 3, 384, 640), "out should be")],
)
def test_shape_errors(shape: tuple[int, ...], out_shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nv12_to_input(torch.zeros(shape, dtype=torch.uint8), torch.zeros(out_shape), frame_size=(960, 360))
