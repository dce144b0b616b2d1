"""Packed detection rows (what the GPU copies to the host) back into Detections; and importing without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rva.core.detections import NO_TRACK
from rva.gpu.packed import BOX_COLUMNS, unpack_batch

FALLEN = np.array([False, True])


@pytest.mark.parametrize(
    ("counts", "kpt", "expected_lengths"),
    [
        ([2, 0, 1], None, [2, 0, 1]),
        ([5, 1], None, [3, 1]),  # more kept than the row limit: cut to the limit
        ([1, 2], (2, 3), [1, 2]),  # pose rows: 2 keypoints x (x, y, v)
    ],
)
def test_unpack_batch(counts: list[int], kpt: tuple[int, int] | None, expected_lengths: list[int]) -> None:
    cols = BOX_COLUMNS + (kpt[0] * 3 if kpt else 0)
    packed = np.zeros((len(counts), 3, cols), np.float32)
    for i in range(len(counts)):
        for j in range(3):
            packed[i, j, :6] = [10 * j, 20, 10 * j + 5, 40, 0.9 - 0.1 * j, j % 2]
            packed[i, j, 6:] = np.arange(cols - 6) + i
    dets = unpack_batch(packed, np.array(counts), kpt, FALLEN)
    assert [len(d) for d in dets] == expected_lengths
    d = dets[0]
    np.testing.assert_allclose(d.xyxy[0], [0, 20, 5, 40])
    assert d.tracker_id.tolist() == [NO_TRACK] * len(d)
    assert d.data["fallen"].tolist() == [bool(j % 2) for j in range(len(d))]
    if kpt:
        assert d.keypoints is not None and d.keypoints.shape == (len(d), kpt[0], 3)
        np.testing.assert_allclose(d.keypoints[0].ravel(), np.arange(kpt[0] * 3))
    else:
        assert d.keypoints is None


def test_importing_rva_gpu_needs_no_torch() -> None:
    code = ("import sys, rva.gpu, rva.gpu.batcher, rva.gpu.packed, rva.gpu.analytics_pool, rva.gpu.models; "
            "print(sorted(m for m in ('torch', 'cupy', 'PyNvVideoCodec') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
