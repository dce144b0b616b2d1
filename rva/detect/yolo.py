"""Pre- and post-processing for Ultralytics-format YOLO models: NumPy, plus cv2 to resize and for NMS.

Nothing here touches files, sessions or threads: a backend (onnxruntime, Triton, torch) runs the
network and hands its raw output to :class:`YoloHead`, which returns one :class:`Detections` per
frame in that frame's own pixels.

Layouts decoded (Ultralytics export, ``nms=False``):

* detect: ``(b, 4 + nc, anchors)`` rows ``cx, cy, w, h`` (input pixels), then ``nc`` class scores;
* pose: ``(b, 4 + nc + k * d, anchors)``, the same followed by ``k`` keypoints of ``d`` values
  (``x, y[, visibility]``) already in input pixels.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from rva.core.detections import NO_TRACK, Detections
from rva.errors import ModelError

#: Grey of the letterbox border, Ultralytics' value (the models were trained on it).
PAD_VALUE = 114
#: Candidates kept for NMS per frame (Ultralytics' ``max_nms``): bounds the cost on a noisy frame.
_MAX_CANDIDATES = 30000


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a frame was fitted into the network input, so boxes can be mapped back.

    ``input = frame * scale + (pad_x, pad_y)``.

    Attributes:
        scale: Resize factor applied to the frame (same on both axes).
        pad_x: Left border in input pixels.
        pad_y: Top border in input pixels.
        frame_w: Width of the original frame.
        frame_h: Height of the original frame.

    """

    scale: float
    pad_x: float
    pad_y: float
    frame_w: int
    frame_h: int

    def boxes_to_frame(self, xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map ``(n, 4)`` boxes from input pixels to frame pixels, clipped to the frame."""
        out = np.empty_like(xyxy, dtype=np.float32)
        out[:, 0::2] = (xyxy[:, 0::2] - self.pad_x) / self.scale
        out[:, 1::2] = (xyxy[:, 1::2] - self.pad_y) / self.scale
        np.clip(out[:, 0::2], 0, self.frame_w, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.frame_h, out=out[:, 1::2])
        return out

    def points_to_frame(self, xy: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map ``(..., 2)`` points from input pixels to frame pixels (not clipped)."""
        out = np.empty_like(xy, dtype=np.float32)
        out[..., 0] = (xy[..., 0] - self.pad_x) / self.scale
        out[..., 1] = (xy[..., 1] - self.pad_y) / self.scale
        return out


def letterbox(
    image: npt.NDArray[np.uint8], size: tuple[int, int], pad_value: int = PAD_VALUE
) -> tuple[npt.NDArray[np.uint8], Letterbox]:
    """Resize keeping the aspect ratio and pad to ``size``, centring the picture.

    Args:
        image: ``(h, w, 3)`` uint8 frame of any size.
        size: Network input ``(height, width)``.
        pad_value: Border grey level.

    Returns:
        The ``(height, width, 3)`` input image and the :class:`Letterbox` that undoes it.

    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"letterbox: expected an (h, w, 3) image, got shape {image.shape}")
    fh, fw = image.shape[:2]
    th, tw = size
    scale = min(tw / fw, th / fh)
    nw, nh = round(fw * scale), round(fh * scale)
    if (nw, nh) != (fw, fh):
        # Bilinear, as Ultralytics' LetterBox: the models were trained on images resized this way.
        image = cast("npt.NDArray[np.uint8]", cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR))
    left, top = (tw - nw) // 2, (th - nh) // 2
    if (nw, nh) == (tw, th):
        out = np.ascontiguousarray(image)
    else:
        out = np.full((th, tw, 3), pad_value, np.uint8)
        out[top : top + nh, left : left + nw] = image
    return out, Letterbox(scale, float(left), float(top), fw, fh)


def to_nchw(images: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
    """Stack same-sized BGR uint8 images into an RGB ``(b, 3, h, w)`` float32 batch in ``[0, 1]``."""
    batch = np.stack(images)
    # One pass: reverse channels (BGR -> RGB) and move them first, then scale into a fresh array.
    chw = batch[..., ::-1].transpose(0, 3, 1, 2)
    out = np.empty(chw.shape, np.float32)
    np.multiply(chw, np.float32(1 / 255), out=out, casting="unsafe")
    return out


def nms(
    xyxy: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    iou_threshold: float,
    groups: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.int64]:
    """Greedy non-maximum suppression; boxes only suppress boxes of their own group.

    Runs OpenCV's ``NMSBoxesBatched`` (C++): on real vtest candidates it is ~4x faster than a
    vectorised NumPy loop and keeps the same boxes (``bench/detector_options.py`` checks both).

    Args:
        xyxy: ``(n, 4)`` boxes.
        scores: ``(n,)`` scores.
        iou_threshold: A box overlapping a better one of its group by more than this is dropped.
        groups: ``(n,)`` group per box (e.g. class); ``None`` suppresses across all boxes.

    Returns:
        Indices of the kept boxes, best score first (ties: lower index first).

    """
    if len(scores) == 0:
        return np.empty(0, np.int64)
    xywh = np.asarray(xyxy, np.float64).copy()
    xywh[:, 2:] -= xywh[:, :2]
    group = np.zeros(len(scores), np.int32) if groups is None else np.asarray(groups, np.int32)
    # score_threshold 0: callers filter by confidence before. Arrays pass straight to C++ (the stubs
    # only name sequences).
    batched_nms: Any = cv2.dnn.NMSBoxesBatched
    kept = batched_nms(xywh, np.asarray(scores, np.float32), group, 0.0, float(iou_threshold))
    return np.asarray(kept, np.int64).reshape(-1)


def nms_numpy(
    xyxy: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    iou_threshold: float,
    groups: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.int64]:
    """The same greedy NMS in NumPy: the reference :func:`nms` is tested and benchmarked against."""
    n = len(scores)
    if n == 0:
        return np.empty(0, np.int64)
    boxes = xyxy.astype(np.float32, copy=True)
    if groups is not None and n > 1:
        # Shift each group to its own region of the plane so groups never overlap (torchvision's trick).
        boxes += ((float(boxes.max()) - float(boxes.min()) + 1.0) * groups.astype(np.float32))[:, None]
    order = np.argsort(-scores, kind="stable")
    b = boxes[order]
    area = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    inter = np.prod(np.clip(np.minimum(b[:, None, 2:], b[None, :, 2:]) - np.maximum(b[:, None, :2], b[None, :, :2]),
                            0, None), axis=2)
    overlaps = inter > iou_threshold * np.maximum(area[:, None] + area[None] - inter, 1e-9)
    alive = np.ones(n, np.bool_)
    for i in range(n):
        if alive[i]:
            alive[i + 1 :] &= ~overlaps[i, i + 1 :]
    return order[alive].astype(np.int64)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What an Ultralytics export says about itself in its ONNX metadata.

    Attributes:
        names: Class id -> class name.
        kpt_shape: ``(k, d)`` keypoint layout of a pose model, ``None`` for a detector.
        imgsz: ``(height, width)`` the model was exported at, if recorded.

    """

    names: dict[int, str]
    kpt_shape: tuple[int, int] | None = None
    imgsz: tuple[int, int] | None = None

    @classmethod
    def from_metadata(cls, props: Mapping[str, str]) -> ModelInfo:
        """Parse ONNX ``metadata_props`` (values are Python literals as Ultralytics writes them).

        Raises:
            ModelError: no ``names`` entry, or one that is not a ``{int: str}`` dict.

        """
        raw = props.get("names")
        if raw is None:
            raise ModelError("model metadata has no 'names' entry: is it an Ultralytics YOLO export?")
        try:
            names = ast.literal_eval(raw)
        except (ValueError, SyntaxError) as err:
            raise ModelError(f"model metadata 'names' is not a Python dict literal: {raw[:80]!r}") from err
        if not isinstance(names, dict) or not names:
            raise ModelError(f"model metadata 'names' should be a non-empty dict, got {raw[:80]!r}")
        kpt = ast.literal_eval(props["kpt_shape"]) if "kpt_shape" in props else None
        imgsz = ast.literal_eval(props["imgsz"]) if "imgsz" in props else None
        return cls(
            names={int(k): str(v) for k, v in names.items()},
            kpt_shape=(int(kpt[0]), int(kpt[1])) if kpt else None,
            imgsz=(int(imgsz[0]), int(imgsz[1])) if imgsz else None,
        )


class YoloHead:
    """Turns raw Ultralytics head output into per-frame :class:`Detections`.

    Only classes listed in ``class_map`` survive; NMS runs per RVA label (so a ``Normal`` and a
    ``Fall`` box on one person, both ``person``, suppress each other and the person counts once).
    """

    def __init__(
        self,
        info: ModelInfo,
        class_map: Mapping[str, str],
        fallen_classes: Sequence[str] = (),
        confidence: float = 0.25,
        iou: float = 0.5,
        max_detections: int = 300,
    ) -> None:
        """Check the class map against the model.

        Args:
            info: The model's metadata.
            class_map: Model class name -> RVA label; unlisted classes are dropped.
            fallen_classes: Model class names meaning a person lying down (``data["fallen"]``).
            confidence: Minimum score kept.
            iou: NMS IoU threshold.
            max_detections: Cap on detections per frame after NMS.

        Raises:
            ModelError: none of the model's classes is in ``class_map``.

        """
        self.info = info
        self.confidence = confidence
        self.iou = iou
        self.max_detections = max_detections
        nc = len(info.names)
        if sorted(info.names) != list(range(nc)):
            raise ModelError(f"model class ids should be 0..{nc - 1}, got {sorted(info.names)}")
        kept = {cid: class_map[name] for cid, name in info.names.items() if name in class_map}
        if not kept:
            raise ModelError(
                f"none of the model's classes {sorted(info.names.values())} is in detector.class_map "
                f"{sorted(class_map)}: add the model's person class(es) to class_map"
            )
        self.labels: dict[int, str] = kept
        label_ids = {label: i for i, label in enumerate(sorted(set(kept.values())))}
        # Per model class: its NMS group (RVA label) or -1 when dropped, and whether it means fallen.
        self._group = np.full(nc, -1, np.int64)
        self._fallen = np.zeros(nc, np.bool_)
        for cid, label in kept.items():
            self._group[cid] = label_ids[label]
            self._fallen[cid] = info.names[cid] in fallen_classes
        self._mapped_columns = np.flatnonzero(self._group >= 0)

    @property
    def channels(self) -> int:
        """Rows per anchor the head must output."""
        nc = len(self.info.names)
        k = self.info.kpt_shape
        return 4 + nc + (k[0] * k[1] if k else 0)

    def decode(self, output: npt.NDArray[np.float32], boxes: Sequence[Letterbox]) -> list[Detections]:
        """Decode a ``(b, channels, anchors)`` head output, one :class:`Letterbox` per frame."""
        if output.ndim != 3 or output.shape[1] != self.channels or output.shape[0] != len(boxes):
            raise ValueError(
                f"YoloHead.decode: expected output shape ({len(boxes)}, {self.channels}, anchors), "
                f"got {output.shape}"
            )
        return [self._decode_one(output[i], boxes[i]) for i in range(len(boxes))]

    def empty(self) -> Detections:
        """Return a frame with nothing in it, with this head's keypoint layout and data keys."""
        kpt = self.info.kpt_shape
        return Detections(
            xyxy=np.empty((0, 4), np.float32),
            confidence=np.empty(0, np.float32),
            class_id=np.empty(0, np.int64),
            tracker_id=np.empty(0, np.int64),
            keypoints=None if kpt is None else np.empty((0, kpt[0], 3), np.float32),
            data={"fallen": np.empty(0, np.bool_)},
        )

    def _decode_one(self, pred: npt.NDArray[np.float32], lb: Letterbox) -> Detections:
        nc = len(self.info.names)
        # Only mapped classes compete for an anchor's label: a dropped class never wins a box.
        mapped = pred[4 + self._mapped_columns]
        conf = mapped.max(axis=0)
        idx = np.flatnonzero(conf >= self.confidence)
        if idx.size == 0:
            return self.empty()
        if idx.size > _MAX_CANDIDATES:
            idx = idx[np.argsort(-conf[idx], kind="stable")[:_MAX_CANDIDATES]]
        conf = conf[idx]
        class_id = self._mapped_columns[mapped[:, idx].argmax(axis=0)]
        cx, cy, w, h = pred[:4, idx]
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        keep = nms(xyxy, conf, self.iou, self._group[class_id])[: self.max_detections]
        kpt = self.info.kpt_shape
        keypoints = None
        if kpt is not None:
            k, d = kpt
            raw = pred[4 + nc :, idx[keep]].T.reshape(len(keep), k, d)
            keypoints = np.ones((len(keep), k, 3), np.float32)
            keypoints[..., :2] = lb.points_to_frame(raw[..., :2])
            if d >= 3:
                keypoints[..., 2] = raw[..., 2]
        class_id = class_id[keep]
        return Detections(
            xyxy=lb.boxes_to_frame(xyxy[keep]),
            confidence=conf[keep],
            class_id=class_id,
            tracker_id=np.full(len(keep), NO_TRACK, np.int64),
            keypoints=keypoints,
            data={"fallen": self._fallen[class_id]},
        )
