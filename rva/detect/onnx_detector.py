"""The onnxruntime (CPU) backend: a thin adapter around :mod:`rva.detect.yolo`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from rva.config import OnnxDetectorConfig
from rva.core.detections import Detections
from rva.detect.base import Detector
from rva.detect.models import input_hw_of, resolve_model
from rva.detect.yolo import Letterbox, ModelInfo, YoloHead, letterbox, to_nchw
from rva.errors import ModelError


def session_options(threads: int, *, spinning: bool = True, parallel: bool = False) -> ort.SessionOptions:
    """Build onnxruntime CPU options: ``threads`` intra-op threads (0: one per core), all graph optimisations.

    Args:
        threads: Intra-op threads; 0 lets onnxruntime use one per physical core.
        spinning: Let idle worker threads spin between ops (lower latency, burns CPU when shared).
        parallel: Run independent graph branches concurrently (``ORT_PARALLEL``).

    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class OnnxDetector(Detector):
    """An Ultralytics YOLO ONNX export (detect or pose head) run by onnxruntime on the CPU.

    Static batch-1 models run frame by frame; a model with a dynamic batch runs each call as one batch.
    """

    def __init__(
        self,
        cfg: OnnxDetectorConfig,
        *,
        model_path: Path | None = None,
        options: ort.SessionOptions | None = None,
    ) -> None:
        """Resolve (fetch/derive) the model and open a session.

        Args:
            cfg: Detector configuration.
            model_path: Run this file instead of resolving ``cfg.model`` (benchmarks, tests).
            options: Session options; default :func:`session_options` with ``cfg.threads``.

        Raises:
            ModelError: the model is missing, unreadable, or has no class in ``cfg.class_map``.

        """
        path = model_path if model_path is not None else resolve_model(cfg)
        if not path.is_file():
            raise ModelError(f"detector model {path} does not exist")
        try:
            self._session = ort.InferenceSession(
                str(path), options or session_options(cfg.threads), providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises bare RuntimeError subclasses for bad files
            raise ModelError(f"cannot load detector model {path}: {err}") from err
        self.path = path
        meta = self._session.get_modelmeta().custom_metadata_map
        self._head = YoloHead(
            ModelInfo.from_metadata(meta), cfg.class_map, cfg.fallen_classes, cfg.confidence, cfg.iou
        )
        self.names = dict(self._head.info.names)
        self.labels = dict(self._head.labels)
        inp = self._session.get_inputs()[0]
        self._input_name = inp.name
        shape: list[Any] = list(inp.shape)
        static_hw = isinstance(shape[2], int) and isinstance(shape[3], int)
        self.input_hw: tuple[int, int] = (shape[2], shape[3]) if static_hw else input_hw_of(cfg)
        self._batch_one = shape[0] == 1

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Detect people in BGR uint8 frames of any size; boxes come back in frame pixels."""
        if not images:
            return []
        fitted: list[npt.NDArray[np.uint8]] = []
        boxes: list[Letterbox] = []
        for image in images:
            if image.dtype != np.uint8:
                raise ValueError(f"OnnxDetector.detect: expected uint8 BGR frames, got {image.dtype}")
            lb_image, lb = letterbox(image, self.input_hw)
            fitted.append(lb_image)
            boxes.append(lb)
        if self._batch_one:
            outputs = [self._run(to_nchw([img])) for img in fitted]
            output = np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
        else:
            output = self._run(to_nchw(fitted))
        return self._head.decode(output, boxes)

    def _run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        out: npt.NDArray[np.float32] = self._session.run(None, {self._input_name: batch})[0]
        return out

    def close(self) -> None:
        """Drop the session (frees the model's memory)."""
        self.__dict__.pop("_session", None)
