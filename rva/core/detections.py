"""The one currency between stages: a struct of parallel arrays, one row per detected object."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: ``tracker_id`` value of a detection no confirmed track owns. Never emitted as an identity.
NO_TRACK = -1


def _as(arr: Any, dtype: Any, name: str, shape_tail: tuple[int, ...], n: int | None) -> Any:
    out = np.ascontiguousarray(arr, dtype=dtype)
    if n is None:
        n = out.shape[0] if out.ndim else 0
    expected = (n, *shape_tail)
    if out.shape != expected and not (out.size == 0 and n == 0):
        raise ValueError(f"Detections.{name}: expected shape {expected}, got {out.shape}")
    if out.size == 0 and n == 0:
        out = out.reshape(expected) if out.shape != expected else out
    return out


@dataclass(frozen=True, slots=True)
class Detections:
    """Objects found in one frame, as parallel arrays (supervision's layout).

    Attributes:
        xyxy: ``(n, 4)`` float32 boxes in frame pixels, ``x1, y1, x2, y2``.
        confidence: ``(n,)`` float32 scores in ``[0, 1]``.
        class_id: ``(n,)`` int64 model class ids.
        tracker_id: ``(n,)`` int64 confirmed track ids, :data:`NO_TRACK` where none.
        keypoints: optional ``(n, k, 3)`` float32 ``x, y, visibility``.
        data: extra per-detection arrays, each with ``n`` rows (e.g. ``fallen``: bool).
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    tracker_id: IntArray
    keypoints: FloatArray | None = None
    data: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = _as(self.xyxy, np.float32, "xyxy", (4,), None)
        n = xyxy.shape[0]
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", _as(self.confidence, np.float32, "confidence", (), n))
        object.__setattr__(self, "class_id", _as(self.class_id, np.int64, "class_id", (), n))
        object.__setattr__(self, "tracker_id", _as(self.tracker_id, np.int64, "tracker_id", (), n))
        if self.keypoints is not None:
            kp = np.ascontiguousarray(self.keypoints, dtype=np.float32)
            if kp.ndim != 3 or kp.shape[0] != n or kp.shape[2] != 3:
                raise ValueError(f"Detections.keypoints: expected shape ({n}, k, 3), got {kp.shape}")
            object.__setattr__(self, "keypoints", kp)
        data = {}
        for key, value in self.data.items():
            arr = np.asarray(value)
            if arr.shape[:1] != (n,):
                raise ValueError(f"Detections.data[{key!r}]: expected {n} rows, got shape {arr.shape}")
            data[key] = arr
        object.__setattr__(self, "data", data)

    @classmethod
    def empty(cls, keypoints: int | None = None) -> Detections:
        """A frame with nothing in it."""
        return cls(
            xyxy=np.empty((0, 4), np.float32),
            confidence=np.empty(0, np.float32),
            class_id=np.empty(0, np.int64),
            tracker_id=np.empty(0, np.int64),
            keypoints=None if keypoints is None else np.empty((0, keypoints, 3), np.float32),
        )

    @classmethod
    def from_arrays(
        cls,
        xyxy: npt.ArrayLike,
        confidence: npt.ArrayLike,
        class_id: npt.ArrayLike | None = None,
        **extra: Any,
    ) -> Detections:
        """Build untracked detections; ``class_id`` defaults to 0."""
        boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
        n = boxes.shape[0]
        return cls(
            xyxy=boxes,
            confidence=np.asarray(confidence, np.float32).reshape(n),
            class_id=np.zeros(n, np.int64) if class_id is None else np.asarray(class_id, np.int64),
            tracker_id=np.full(n, NO_TRACK, np.int64),
            **extra,
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: int | slice | npt.NDArray[Any] | list[int]) -> Detections:
        """Select rows by boolean mask, index array, slice or a single int (kept 2-D)."""
        if isinstance(index, int):
            index = [index]
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=self.tracker_id[index],
            keypoints=None if self.keypoints is None else self.keypoints[index],
            data={k: v[index] for k, v in self.data.items()},
        )

    def __iter__(self) -> Iterator[Detections]:
        for i in range(len(self)):
            yield self[i]

    def with_tracker_id(self, tracker_id: npt.ArrayLike) -> Detections:
        """A copy with ``tracker_id`` replaced."""
        return Detections(
            self.xyxy, self.confidence, self.class_id, np.asarray(tracker_id, np.int64),
            self.keypoints, self.data,
        )

    @property
    def anchors(self) -> FloatArray:
        """``(n, 2)`` bottom-centre (foot) points: where a person stands on the floor plane."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) * 0.5
        return np.stack([x, self.xyxy[:, 3]], axis=1).astype(np.float32, copy=False)

    @property
    def area(self) -> FloatArray:
        """``(n,)`` box areas in square pixels."""
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return (wh[:, 0] * wh[:, 1]).astype(np.float32, copy=False)

    @property
    def tracked(self) -> Detections:
        """Only the rows that belong to a confirmed track."""
        return self[self.tracker_id != NO_TRACK]

    def flag(self, key: str) -> BoolArray:
        """A boolean per-detection attribute from :attr:`data`, all False when absent."""
        value = self.data.get(key)
        if value is None:
            return np.zeros(len(self), np.bool_)
        return np.asarray(value, np.bool_)

    @classmethod
    def merge(cls, parts: list[Detections]) -> Detections:
        """Concatenate several detection sets (same keypoint layout and data keys)."""
        if not parts:
            return cls.empty()
        keys = set(parts[0].data)
        if any(set(p.data) != keys for p in parts):
            raise ValueError("Detections.merge: all parts must carry the same data keys")
        kps = [p.keypoints for p in parts]
        has_kp = [k is not None for k in kps]
        if any(has_kp) and not all(has_kp):
            raise ValueError("Detections.merge: keypoints present in some parts only")
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            tracker_id=np.concatenate([p.tracker_id for p in parts]),
            keypoints=np.concatenate(kps) if all(has_kp) else None,  # type: ignore[arg-type]
            data={k: np.concatenate([p.data[k] for p in parts]) for k in keys},
        )

    # --- protobuf at the edge ---------------------------------------------------------------------

    def to_proto(self) -> Any:
        """As an ``rva.vision.v1.Detections`` message."""
        from rva.vision.v1 import vision_pb2

        msg = vision_pb2.Detections(
            xyxy=self.xyxy.ravel().tolist(),
            confidence=self.confidence.tolist(),
            class_id=self.class_id.tolist(),
            tracker_id=self.tracker_id.tolist(),
        )
        if self.keypoints is not None:
            msg.keypoints_per_detection = self.keypoints.shape[1]
            msg.keypoints.extend(self.keypoints.ravel().tolist())
        for name, values in self.data.items():
            msg.attributes.add(name=name, values=np.asarray(values, np.float32).ravel().tolist())
        return msg

    @classmethod
    def from_proto(cls, msg: Any) -> Detections:
        """Inverse of :meth:`to_proto`; raises ``ValueError`` on inconsistent array lengths."""
        xyxy = np.asarray(msg.xyxy, np.float32)
        if xyxy.size % 4:
            raise ValueError(f"Detections.xyxy: expected a multiple of 4 values, got {xyxy.size}")
        n = xyxy.size // 4
        keypoints = None
        k = int(msg.keypoints_per_detection)
        if k:
            kp = np.asarray(msg.keypoints, np.float32)
            if kp.size != n * k * 3:
                raise ValueError(f"Detections.keypoints: expected {n * k * 3} values, got {kp.size}")
            keypoints = kp.reshape(n, k, 3)
        data: dict[str, npt.NDArray[Any]] = {}
        for attr in msg.attributes:
            values = np.asarray(attr.values, np.float32)
            data[attr.name] = values.astype(np.bool_) if attr.name == "fallen" else values
        return cls(
            xyxy=xyxy.reshape(n, 4),
            confidence=np.asarray(msg.confidence, np.float32),
            class_id=np.asarray(msg.class_id, np.int64),
            tracker_id=np.asarray(msg.tracker_id, np.int64),
            keypoints=keypoints,
            data=data,
        )
