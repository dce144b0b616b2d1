"""Builds a Triton model repository from ``triton_models/`` and the configured detector ONNX.

The ONNX is never committed: :func:`prepare_model_repository` resolves it the standalone way
(:func:`rva.detect.models.resolve_model`: fetch, reshape, quantize; cached), gives it a dynamic batch
dimension (checked against single-frame runs), and places it in ``<model>/1/model.onnx`` of a new
repository, next to the committed ``config.pbtxt`` (dims and class names filled from the ONNX) and,
for the CPU model, ``model.py``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
from google.protobuf import text_format
from onnx import numpy_helper

from rva.assets import cache_dir
from rva.config import OnnxDetectorConfig
from rva.detect.models import resolve_model
from rva.errors import ModelError

log = logging.getLogger(__name__)

TRITON_MODELS = Path(__file__).resolve().parents[2] / "triton_models"
CPU_MODEL = "rva_detector"


def with_dynamic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give a batch-1 Ultralytics export a dynamic batch dimension.

    Input and output dim 0 become ``batch``, and every Reshape target that hard-codes batch 1
    copies the batch from its input instead (``0``).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for value in (graph.input[0], graph.output[0]):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = "batch"
    shape_inputs = {node.input[1] for node in graph.node if node.op_type == "Reshape"}
    for tensor in graph.initializer:
        if tensor.name in shape_inputs:
            shape = numpy_helper.to_array(tensor).copy()
            if shape.ndim == 1 and shape.size >= 2 and shape[0] == 1:
                shape[0] = 0
                tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] in shape_inputs:
            for attr in node.attribute:
                if attr.name == "value":
                    shape = numpy_helper.to_array(attr.t).copy()
                    if shape.ndim == 1 and shape.size >= 2 and shape[0] == 1:
                        shape[0] = 0
                        attr.t.CopyFrom(numpy_helper.from_array(shape, attr.t.name))
    del graph.value_info[:]
    return out


def _check_batching(path: Path) -> None:
    """Raise ModelError unless a batch of 3 gives the same output as 3 single-frame runs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    h, w = int(inp.shape[2]), int(inp.shape[3])
    rng = np.random.default_rng(0)
    batch = rng.random((3, 3, h, w), dtype=np.float32)
    together = session.run(None, {inp.name: batch})[0]
    alone = np.concatenate([session.run(None, {inp.name: batch[i : i + 1]})[0] for i in range(3)])
    if together.shape != alone.shape or not np.allclose(together, alone, rtol=1e-3, atol=1e-2):
        raise ModelError(f"{path}: batched output differs from single-frame output; cannot batch this export")


def batch_dynamic_model(source: Path) -> Path:
    """The batch-dynamic copy of ``source`` (cached next to the derived models; ``source`` if already dynamic).

    Raises:
        ModelError: The graph cannot be made to batch (checked numerically).

    """
    model = onnx.load(str(source), load_external_data=False)
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    if not dim0.HasField("dim_value"):
        return source
    target = cache_dir() / "models" / f"{source.stem}-dynbatch.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    onnx.save(with_dynamic_batch(onnx.load(str(source))), str(partial))
    _check_batching(partial)
    partial.replace(target)
    return target


def _config_for(template: Path, model: onnx.ModelProto) -> str:
    """The template config with dims and ``names``/``imgsz`` parameters taken from the ONNX."""
    from tritonclient.grpc import model_config_pb2 as mc

    config = text_format.Parse(template.read_text(), mc.ModelConfig())
    in_dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    out_dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    if len(in_dims) != 4 or len(out_dims) != 3 or min(in_dims[1:] + out_dims[1:]) <= 0:
        raise ModelError(
            f"expected a static-size (b, 3, h, w) -> (b, c, anchors) YOLO ONNX, got {in_dims} -> {out_dims}"
        )
    del config.input[0].dims[:]
    config.input[0].dims.extend(in_dims[1:])
    config.input[0].name = model.graph.input[0].name
    del config.output[0].dims[:]
    config.output[0].dims.extend(out_dims[1:])
    config.output[0].name = model.graph.output[0].name
    meta = {p.key: p.value for p in model.metadata_props}
    if "names" not in meta:
        raise ModelError("the ONNX has no 'names' metadata: is it an Ultralytics YOLO export?")
    for key in ("names", "imgsz", "kpt_shape"):
        if key in meta:
            config.parameters[key].string_value = meta[key]
    return str(text_format.MessageToString(config))


def prepare_model_repository(
    cfg: OnnxDetectorConfig, out: Path, models: tuple[str, ...] = (CPU_MODEL,), *, link: bool = True
) -> Path:
    """Write a model repository for ``cfg``'s detector into ``out``.

    Args:
        cfg: The detector config (``onnx`` or ``triton``): which model, input size, quantization.
        out: Repository directory (created; existing model directories are replaced).
        models: Which of ``triton_models/`` to prepare (the GPU ones need a GPU Triton).
        link: Symlink the ONNX from the cache instead of copying it.

    Returns:
        ``out``.

    Raises:
        ModelError: The model cannot be resolved, batched or described.

    """
    onnx_path = batch_dynamic_model(resolve_model(cfg))
    model = onnx.load(str(onnx_path), load_external_data=False)
    out.mkdir(parents=True, exist_ok=True)
    for name in models:
        src = TRITON_MODELS / name
        if not (src / "config.pbtxt").is_file():
            raise ModelError(f"no model {name!r} in {TRITON_MODELS}")
        dst = out / name
        if dst.exists():
            shutil.rmtree(dst)
        (dst / "1").mkdir(parents=True)
        (dst / "config.pbtxt").write_text(_config_for(src / "config.pbtxt", model))
        for extra in (src / "1").glob("*.py") if (src / "1").is_dir() else ():
            shutil.copy2(extra, dst / "1" / extra.name)
        target = dst / "1" / "model.onnx"
        if link:
            target.symlink_to(onnx_path.resolve())
        else:
            shutil.copy2(onnx_path, target)
        log.info("prepared %s from %s", dst, onnx_path)
    return out
