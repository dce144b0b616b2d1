"""The detector contract every backend (onnxruntime today; Triton, torch later) implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType

import numpy as np
import numpy.typing as npt

from rva.config import DetectorConfig
from rva.core.detections import Detections


class Detector(ABC):
    """Finds people in frames.

    Attributes:
        names: The model's classes, class id -> model class name (``Detections.class_id`` values).
        labels: The kept classes, class id -> RVA label (e.g. ``{0: "person", 1: "person"}``).

    """

    names: dict[int, str]
    labels: dict[int, str]

    @abstractmethod
    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Detect objects in a batch of frames.

        Args:
            images: BGR uint8 ``(h, w, 3)`` frames, each of any size.

        Returns:
            One :class:`Detections` per frame, boxes in that frame's pixels, untracked, with a
            boolean ``data["fallen"]``.

        """

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to free
        """Release the backend's resources; the detector is unusable afterwards."""

    def __enter__(self) -> Detector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def create_detector(cfg: DetectorConfig) -> Detector:
    """Build the backend a config names (discriminated on ``cfg.type``).

    Raises:
        ModelError: the model cannot be found, fetched or loaded.

    """
    # Backends are imported here so that one backend's runtime is never needed to use another.
    if cfg.type == "onnx":
        from rva.detect.onnx_detector import OnnxDetector

        return OnnxDetector(cfg)
    if cfg.type == "triton":
        from rva.detect.triton_detector import TritonDetector

        return TritonDetector(cfg)
    raise ValueError(f"unknown detector type {cfg.type!r}")
