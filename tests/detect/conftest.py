"""Detector test fixtures: a tiny real ONNX model built on the fly (no weights needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

TinyModel = Callable[..., Path]


@pytest.fixture
def make_tiny_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TinyModel:
    """``make_tiny_model(names, box, scores, static_hw=None) -> path``.

    A one-convolution "detector" (stride 8) whose every anchor outputs the same ``box`` (cx, cy, w,
    h in input pixels) and class ``scores``; dynamic batch and size unless ``static_hw`` is given.
    Copies derived from it go to a private cache, not the user's.
    """
    monkeypatch.setenv("RVA_CACHE", str(tmp_path / "cache"))

    def make(
        names: str, box: tuple[float, ...], scores: tuple[float, ...], static_hw: tuple[int, int] | None = None
    ) -> Path:
        bias = np.array([*box, *scores], np.float32)
        channels = bias.size
        h, w = static_hw or ("height", "width")
        batch: int | str = 1 if static_hw else "batch"
        anchors: int | str = (h // 8) * (w // 8) if static_hw else "anchors"  # type: ignore[operator]
        graph = helper.make_graph(
            [
                helper.make_node("Conv", ["images", "w", "b"], ["grid"], kernel_shape=[8, 8], strides=[8, 8]),
                helper.make_node("Reshape", ["grid", "shape"], ["output0"]),
            ],
            "tiny",
            [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, h, w])],
            [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, channels, anchors])],
            [
                numpy_helper.from_array(np.zeros((channels, 3, 8, 8), np.float32), "w"),
                numpy_helper.from_array(bias, "b"),
                numpy_helper.from_array(np.array([0, channels, -1], np.int64), "shape"),
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        helper.set_model_props(model, {"names": names})
        onnx.checker.check_model(model)
        path = tmp_path / f"tiny-{len(list(tmp_path.glob('tiny-*.onnx')))}.onnx"
        onnx.save(model, str(path))
        return path

    return make
