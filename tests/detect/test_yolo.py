"""Pure pre/post-processing: letterbox, NMS, head decoding on hand-built tensors, metadata parsing."""

from __future__ import annotations

import numpy as np
import pytest

from rva.detect.yolo import PAD_VALUE, Letterbox, ModelInfo, YoloHead, letterbox, nms, nms_numpy, to_nchw
from rva.errors import ModelError

FALL_NAMES = {0: "Normal", 1: "Fall"}
CLASS_MAP = {"Normal": "person", "Fall": "person", "person": "person"}


# --- letterbox -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame_wh", "input_hw", "scale", "pad_xy"),
    [
        ((768, 576), (640, 640), 640 / 768, (0, 80)),
        ((768, 576), (480, 640), 640 / 768, (0, 0)),  # 4:3 into 640x480: no border at all
        ((768, 576), (384, 512), 512 / 768, (0, 0)),
        ((1920, 1080), (640, 640), 1 / 3, (0, 140)),
        ((1920, 1080), (384, 640), 1 / 3, (0, 12)),
        ((480, 800), (640, 640), 0.8, (128, 0)),  # portrait: border left and right
        ((640, 640), (640, 640), 1.0, (0, 0)),  # already the input size: untouched
        ((320, 240), (640, 640), 2.0, (0, 80)),  # upscaled
    ],
)
def test_letterbox_geometry_and_round_trip(
    frame_wh: tuple[int, int], input_hw: tuple[int, int], scale: float, pad_xy: tuple[int, int]
) -> None:
    w, h = frame_wh
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    out, lb = letterbox(frame, input_hw)
    assert out.shape == (*input_hw, 3) and out.dtype == np.uint8
    assert lb.scale == pytest.approx(scale, rel=1e-6)
    assert (lb.pad_x, lb.pad_y) == pad_xy
    if pad_xy[1]:
        assert (out[0] == PAD_VALUE).all() and (out[-1] == PAD_VALUE).all()
    if pad_xy[0]:
        assert (out[:, 0] == PAD_VALUE).all() and (out[:, -1] == PAD_VALUE).all()
    # A box drawn in the frame, mapped into the input as the network sees it, maps back exactly.
    box = np.array([[0.1 * w, 0.2 * h, 0.6 * w, 0.9 * h]], np.float32)
    fwd = box.copy()
    fwd[:, 0::2] = fwd[:, 0::2] * lb.scale + lb.pad_x
    fwd[:, 1::2] = fwd[:, 1::2] * lb.scale + lb.pad_y
    np.testing.assert_allclose(lb.boxes_to_frame(fwd), box, atol=1e-3)


@pytest.mark.parametrize(
    ("box_in_input", "expected"),
    [
        ([-50, -50, 100, 100], [0, 0, 100, 100]),  # clipped at the top-left corner
        ([700, 500, 900, 700], [700, 500, 768, 576]),  # clipped at the bottom-right corner
        ([10, 20, 30, 40], [10, 20, 30, 40]),
    ],
)
def test_boxes_are_clipped_to_the_frame(box_in_input: list[float], expected: list[float]) -> None:
    lb = Letterbox(scale=1.0, pad_x=0.0, pad_y=0.0, frame_w=768, frame_h=576)
    np.testing.assert_allclose(lb.boxes_to_frame(np.array([box_in_input], np.float32)), [expected])


def test_letterbox_rejects_grey_images() -> None:
    with pytest.raises(ValueError, match=r"expected an \(h, w, 3\) image"):
        letterbox(np.zeros((10, 10), np.uint8), (32, 32))


def test_to_nchw_is_rgb_and_scaled() -> None:
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in BGR
    batch = to_nchw([bgr, bgr])
    assert batch.shape == (2, 3, 2, 3) and batch.dtype == np.float32
    assert (batch[:, 2] == 1.0).all() and (batch[:, :2] == 0.0).all()  # blue is the last RGB plane


# --- NMS -----------------------------------------------------------------------------------------

A = [0, 0, 10, 10]
A_SHIFTED = [1, 0, 11, 10]  # IoU with A = 90 / 110 = 0.82
A_HALF = [5, 0, 15, 10]  # IoU with A = 50 / 150 = 0.33
FAR = [100, 100, 110, 110]


@pytest.mark.parametrize(
    ("boxes", "scores", "groups", "iou", "kept"),
    [
        ([], [], None, 0.5, []),
        ([A], [0.9], None, 0.5, [0]),
        ([A, A_SHIFTED], [0.8, 0.9], None, 0.5, [1]),  # the better box survives
        ([A, A_SHIFTED], [0.8, 0.9], [0, 1], 0.5, [1, 0]),  # other group: both survive
        ([A, A_SHIFTED], [0.8, 0.9], [2, 2], 0.5, [1]),
        ([A, A_HALF], [0.9, 0.8], None, 0.5, [0, 1]),  # overlap below the threshold
        ([A, A_HALF], [0.9, 0.8], None, 0.3, [0]),  # ... and above a lower one
        ([A, A_SHIFTED, FAR], [0.7, 0.9, 0.8], None, 0.5, [1, 2]),
        # Greedy: B is removed by A, so C (which only B overlaps) survives.
        ([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], [0.9, 0.8, 0.7], None, 0.4, [0, 2]),
        ([A, A, A], [0.5, 0.5, 0.5], None, 0.5, [0]),  # ties: the first wins
    ],
)
@pytest.mark.parametrize("impl", [nms, nms_numpy])
def test_nms(
    impl: object, boxes: list[list[float]], scores: list[float], groups: list[int] | None, iou: float, kept: list[int]
) -> None:
    result = impl(  # type: ignore[operator]
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        iou,
        None if groups is None else np.array(groups, np.int64),
    )
    assert sorted(result.tolist()) == sorted(kept)
    assert result.tolist() == kept


@pytest.mark.parametrize("seed", range(5))
def test_nms_implementations_agree_on_random_clusters(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 600, (8, 2)).repeat(30, axis=0) + rng.normal(0, 6, (240, 2))
    wh = rng.uniform(20, 80, (8, 2)).repeat(30, axis=0) * rng.uniform(0.8, 1.2, (240, 2))
    boxes = np.c_[centres - wh / 2, centres + wh / 2].astype(np.float32)
    scores = rng.uniform(0.25, 1, 240).astype(np.float32)
    groups = rng.integers(0, 2, 240)
    assert nms(boxes, scores, 0.5, groups).tolist() == nms_numpy(boxes, scores, 0.5, groups).tolist()


# --- head decoding -------------------------------------------------------------------------------


def head_output(rows: list[list[float]], channels: int, anchors: int = 8) -> np.ndarray:
    """A ``(1, channels, anchors)`` head output with the given anchor columns, zeros elsewhere."""
    out = np.zeros((1, channels, anchors), np.float32)
    for i, row in enumerate(rows):
        out[0, :, i] = row
    return out


IDENTITY = Letterbox(scale=1.0, pad_x=0.0, pad_y=0.0, frame_w=640, frame_h=640)
HALF = Letterbox(scale=0.5, pad_x=0.0, pad_y=80.0, frame_w=1280, frame_h=960)


@pytest.mark.parametrize(
    ("rows", "lb", "xyxy", "class_id", "fallen"),
    [
        ([[100, 100, 20, 40, 0.9, 0.1]], IDENTITY, [[90, 80, 110, 120]], [0], [False]),
        ([[100, 100, 20, 40, 0.2, 0.7]], IDENTITY, [[90, 80, 110, 120]], [1], [True]),
        # Input pixels -> frame pixels: (x - pad) / scale.
        ([[100, 180, 20, 40, 0.9, 0.0]], HALF, [[180, 160, 220, 240]], [0], [False]),
        ([[100, 100, 20, 40, 0.2, 0.1]], IDENTITY, [], [], []),  # below the confidence threshold
        # Normal and Fall on the same person (same label "person") suppress each other.
        ([[100, 100, 20, 40, 0.8, 0.0], [101, 100, 20, 40, 0.0, 0.6]], IDENTITY, [[90, 80, 110, 120]], [0], [False]),
        (
            [[100, 100, 20, 40, 0.8, 0.0], [300, 100, 20, 40, 0.0, 0.6]],
            IDENTITY,
            [[90, 80, 110, 120], [290, 80, 310, 120]],
            [0, 1],
            [False, True],
        ),
    ],
)
def test_decode_detect_head(
    rows: list[list[float]], lb: Letterbox, xyxy: list[list[float]], class_id: list[int], fallen: list[bool]
) -> None:
    head = YoloHead(ModelInfo(FALL_NAMES), CLASS_MAP, ["Fall"], confidence=0.25, iou=0.5)
    (det,) = head.decode(head_output(rows, head.channels), [lb])
    np.testing.assert_allclose(det.xyxy, np.array(xyxy, np.float32).reshape(-1, 4), atol=1e-4)
    assert det.class_id.tolist() == class_id
    assert det.flag("fallen").tolist() == fallen
    assert det.keypoints is None
    assert (det.tracker_id == -1).all()


@pytest.mark.parametrize(
    ("class_map", "row", "expected"),
    [
        # "car" is not mapped: it never wins an anchor, the person score underneath still counts.
        ({"person": "person"}, [50, 50, 10, 10, 0.4, 0.9], [(0, 0.4)]),
        ({"person": "person", "car": "car"}, [50, 50, 10, 10, 0.4, 0.9], [(1, 0.9)]),
        ({"person": "person"}, [50, 50, 10, 10, 0.1, 0.9], []),
    ],
)
def test_unmapped_classes_are_dropped(
    class_map: dict[str, str], row: list[float], expected: list[tuple[int, float]]
) -> None:
    head = YoloHead(ModelInfo({0: "person", 1: "car"}), class_map)
    (det,) = head.decode(head_output([row], head.channels), [IDENTITY])
    got = [(int(c), round(float(s), 3)) for c, s in zip(det.class_id, det.confidence, strict=True)]
    assert got == expected


def test_decode_pose_head_maps_keypoints() -> None:
    info = ModelInfo({0: "person"}, kpt_shape=(2, 3))
    head = YoloHead(info, CLASS_MAP)
    assert head.channels == 4 + 1 + 2 * 3
    row = [200, 200, 40, 80, 0.8, 190, 170, 0.9, 210, 230, 0.2]
    (det,) = head.decode(head_output([row], head.channels), [HALF])
    assert det.keypoints is not None and det.keypoints.shape == (1, 2, 3)
    np.testing.assert_allclose(det.keypoints[0], [[380, 180, 0.9], [420, 300, 0.2]], atol=1e-4)
    np.testing.assert_allclose(det.xyxy, [[360, 160, 440, 320]], atol=1e-4)


def test_decode_pose_head_without_visibility() -> None:
    head = YoloHead(ModelInfo({0: "person"}, kpt_shape=(1, 2)), CLASS_MAP)
    (det,) = head.decode(head_output([[50, 50, 10, 10, 0.9, 48, 52]], head.channels), [IDENTITY])
    np.testing.assert_allclose(det.keypoints, [[[48, 52, 1.0]]])  # type: ignore[arg-type]


def test_decode_batch_and_empty_frames() -> None:
    head = YoloHead(ModelInfo(FALL_NAMES), CLASS_MAP, ["Fall"])
    out = np.concatenate([head_output([[50, 50, 10, 10, 0.9, 0]], 6), head_output([], 6)])
    first, second = head.decode(out, [IDENTITY, IDENTITY])
    assert len(first) == 1 and len(second) == 0
    assert second.data["fallen"].dtype == np.bool_  # same keys on empty frames: Detections.merge works


def test_decode_rejects_a_wrong_layout() -> None:
    head = YoloHead(ModelInfo(FALL_NAMES), CLASS_MAP)
    with pytest.raises(ValueError, match=r"expected output shape \(1, 6, anchors\), got \(1, 56, 8\)"):
        head.decode(np.zeros((1, 56, 8), np.float32), [IDENTITY])


def test_head_without_mapped_classes_raises() -> None:
    with pytest.raises(ModelError, match="none of the model's classes"):
        YoloHead(ModelInfo({0: "car", 1: "bus"}), CLASS_MAP)


# --- metadata ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "names", "kpt", "imgsz"),
    [
        ({"names": "{0: 'Normal', 1: 'Fall'}", "imgsz": "[640, 640]"}, FALL_NAMES, None, (640, 640)),
        ({"names": "{0: 'person'}", "kpt_shape": "[17, 3]"}, {0: "person"}, (17, 3), None),
    ],
)
def test_model_info_from_metadata(
    props: dict[str, str], names: dict[int, str], kpt: tuple[int, int] | None, imgsz: tuple[int, int] | None
) -> None:
    info = ModelInfo.from_metadata(props)
    assert (info.names, info.kpt_shape, info.imgsz) == (names, kpt, imgsz)


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({}, "no 'names' entry"),
        ({"names": "not python"}, "not a Python dict literal"),
        ({"names": "['a', 'b']"}, "should be a non-empty dict"),
    ],
)
def test_model_info_rejects_bad_metadata(props: dict[str, str], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        ModelInfo.from_metadata(props)


def test_head_rejects_sparse_class_ids() -> None:
    with pytest.raises(ModelError, match=r"class ids should be 0..1, got \[0, 5\]"):
        YoloHead(ModelInfo({0: "person", 5: "car"}), CLASS_MAP)
