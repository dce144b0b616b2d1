"""Batched greedy NMS and head decoding in torch (CPU tensors) against the NumPy/OpenCV reference path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rva.detect.yolo import Letterbox, ModelInfo, YoloHead, nms_numpy
from rva.gpu.nms import BatchDecoder, exact_keep, greedy_keep, letterbox_rows, suppression_matrix


def _random_boxes(seed: int, b: int, k: int, spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, spread, (b, k, 2))
    wh = rng.uniform(5, 80, (b, k, 2))
    boxes = np.concatenate([xy, xy + wh], 2).astype(np.float32)
    scores = rng.uniform(0.01, 1, (b, k)).astype(np.float32)
    scores[:, ::7] = scores[:, :1]  # ties: kept in index order by both paths
    order = np.argsort(-scores, 1, kind="stable")
    return (np.take_along_axis(boxes, order[..., None], 1), np.take_along_axis(scores, order, 1),
            rng.integers(0, 3, (b, k)))


@pytest.mark.parametrize(
    ("seed", "k", "spread", "iou", "grouped"),
    [(0, 64, 200, 0.5, False), (1, 256, 300, 0.5, True), (2, 256, 100, 0.7, True), (3, 512, 640, 0.45, False),
     (4, 1, 10, 0.5, False)],
)
def test_exact_keep_matches_nms_numpy(seed: int, k: int, spread: float, iou: float, grouped: bool) -> None:
    boxes, scores, groups = _random_boxes(seed, 6, k, spread)
    if not grouped:
        groups[:] = 0
    valid = torch.ones(6, k, dtype=torch.bool)
    valid[5, k // 2:] = False  # the last frame has fewer candidates
    sup = suppression_matrix(torch.from_numpy(boxes), torch.from_numpy(groups), valid, iou)
    keep = exact_keep(sup, valid).numpy()
    for i in range(6):
        n = int(valid[i].sum())
        ref = nms_numpy(boxes[i, :n], scores[i, :n], iou, groups[i, :n] if grouped else None)
        assert np.flatnonzero(keep[i]).tolist() == sorted(ref.tolist())


def test_fixed_passes_report_convergence_honestly() -> None:
    """A chain: each box overlaps only its neighbours, so each pass settles one more link."""
    x = torch.arange(12, dtype=torch.float32) * 6
    boxes = torch.stack([x, torch.zeros(12), x + 10, torch.ones(12) * 10], 1)[None]
    valid = torch.ones(1, 12, dtype=torch.bool)
    sup = suppression_matrix(boxes, torch.zeros(1, 12, dtype=torch.int64), valid, 0.2)
    _, converged = greedy_keep(sup, valid, 2)
    assert not bool(converged[0])
    keep = exact_keep(sup, valid)
    assert keep[0].tolist() == [i % 2 == 0 for i in range(12)]  # greedy keeps every other box


def _raw_output(nc: int, kpt: tuple[int, int] | None, anchors: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ch = 4 + nc + (kpt[0] * kpt[1] if kpt else 0)
    out = np.zeros((3, ch, anchors), np.float32)
    out[:, 0:2] = rng.uniform(50, 590, (3, 2, anchors))
    out[:, 2:4] = rng.uniform(10, 150, (3, 2, anchors))
    out[:, 4:4 + nc] = rng.uniform(0, 1, (3, nc, anchors)) ** 4  # mostly low scores, a few high
    if kpt:
        out[:, 4 + nc:] = rng.uniform(0, 640, (3, kpt[0] * kpt[1], anchors))
    return out


@pytest.mark.parametrize(
    ("names", "class_map", "fallen", "kpt", "iou"),
    [
        ({0: "Normal", 1: "Fall"}, {"Normal": "person", "Fall": "person"}, ["Fall"], None, 0.5),
        ({0: "person", 1: "cart", 2: "dog"}, {"person": "person", "dog": "animal"}, [], None, 0.45),
        ({0: "person"}, {"person": "person"}, [], (17, 3), 0.7),
        ({0: "person"}, {"person": "person"}, [], (4, 2), 0.5),  # keypoints without visibility
    ],
)
def test_batch_decoder_matches_yolo_head(names: dict[int, str], class_map: dict[str, str], fallen: list[str],
                                         kpt: tuple[int, int] | None, iou: float) -> None:
    info = ModelInfo(names=names, kpt_shape=kpt)
    raw = _raw_output(len(names), kpt, 2000, seed=len(names))
    boxes = [Letterbox(0.5, 0.0, 40.0, 1280, 640), Letterbox(1 / 3, 0.0, 12.0, 1920, 1080),
             Letterbox(1.0, 0, 0, 640, 640)]
    ref = YoloHead(info, class_map, fallen, 0.25, iou).decode(raw, boxes)
    decoder = BatchDecoder(info, class_map, fallen, 0.25, iou, max_candidates=2000, max_detections=300, passes=2)
    decoded = decoder(torch.from_numpy(raw), letterbox_rows(boxes))
    decoded.settle()
    got = decoder.unpack(decoded.packed.numpy(), decoded.counts.numpy())
    assert int(decoded.overflow.sum()) == 0
    for g, r in zip(got, ref, strict=True):
        assert len(g) == len(r) > 0
        order_g, order_r = np.argsort(-g.confidence, kind="stable"), np.argsort(-r.confidence, kind="stable")
        np.testing.assert_allclose(g.xyxy[order_g], r.xyxy[order_r], atol=1e-3)
        np.testing.assert_array_equal(g.class_id[order_g], r.class_id[order_r])
        np.testing.assert_array_equal(g.data["fallen"][order_g], r.data["fallen"][order_r])
        if kpt:
            assert g.keypoints is not None and r.keypoints is not None
            np.testing.assert_allclose(g.keypoints[order_g], r.keypoints[order_r], atol=1e-3)


def test_candidates_beyond_the_cap_are_counted() -> None:
    info = ModelInfo(names={0: "person"})
    raw = _raw_output(1, None, 500, seed=9)
    raw[:, 4] = 0.9
    decoder = BatchDecoder(info, {"person": "person"}, max_candidates=100)
    decoded = decoder(torch.from_numpy(raw), letterbox_rows([Letterbox(1, 0, 0, 640, 640)] * 3))
    assert decoded.overflow.tolist() == [400, 400, 400]
