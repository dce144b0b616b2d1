"""Triton python-backend model: the YOLO detector ONNX run by onnxruntime on the CPU.

The server's dynamic batcher hands :meth:`TritonPythonModel.execute` several requests at once
(frames of different cameras); they run as one onnxruntime call when the model has a dynamic batch
dimension (``scripts/prepare_triton_repo.py`` makes it so), else frame by frame. ``model.onnx``
is placed next to this file when the repository is prepared; it is never committed.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any

# The stub embeds Python ignoring PYTHONPATH; a launcher that wants an environment's packages
# (services.common.servers.TritonServer: the venv's onnxruntime) lists them here.
for _path in reversed(os.environ.get("RVA_TRITON_PYTHONPATH", "").split(os.pathsep)):
    if _path and _path not in sys.path:
        sys.path.insert(1, _path)

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

# Tensor.from_dlpack renames the capsule it consumed "used_dlpack"; numpy's capsule destructor only
# recognises "used_dltensor" and would print an (harmless) error for every response. Rename it so.
_USED_NAME = ctypes.c_char_p(b"used_dltensor")
_set_capsule_name = ctypes.pythonapi.PyCapsule_SetName
_set_capsule_name.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _output_tensor(name: str, rows: np.ndarray) -> Any:
    capsule = np.ascontiguousarray(rows, np.float32).__dlpack__()
    tensor = pb_utils.Tensor.from_dlpack(name, capsule)
    _set_capsule_name(capsule, _USED_NAME.value)
    return tensor


def iter_or_none(arrays: list[np.ndarray], live: list[bool]) -> list[Any]:
    """The arrays of the live requests, None in the place of each cancelled one."""
    it = iter(arrays)
    return [next(it) if ok else None for ok in live]


class TritonPythonModel:
    """One onnxruntime session per model instance."""

    def initialize(self, args: dict[str, Any]) -> None:
        """Open the session (intra-op threads from the ``intra_op_threads`` parameter, 0 = one per core)."""
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(params.get("intra_op_threads", "0") or 0)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.output_name = config["output"][0]["name"]
        self.dynamic_batch = not isinstance(model_input.shape[0], int)

    def execute(self, requests: list[Any]) -> list[Any]:
        """Run every live request of the batch in one session call; answer each with its own rows."""
        # A request whose client gave up (deadline, hang-up) is answered without computing it.
        live = [not (hasattr(r, "is_cancelled") and r.is_cancelled()) for r in requests]
        # Tensors cross as DLPack: as_numpy() and Tensor(name, array) of this stub's pybind11 build
        # return wrong or empty data under numpy 2.
        arrays = [
            np.from_dlpack(pb_utils.get_input_tensor_by_name(r, self.input_name))
            for r, ok in zip(requests, live, strict=True)
            if ok
        ]
        output = self._run(np.ascontiguousarray(np.concatenate(arrays), np.float32)) if arrays else None
        responses, start = [], 0
        for ok, array in zip(live, iter_or_none(arrays, live), strict=True):
            if not ok:
                error = pb_utils.TritonError("request cancelled by its client", pb_utils.TritonError.CANCELLED)
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            size = array.shape[0]
            tensor = _output_tensor(self.output_name, output[start : start + size])
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            start += size
        return responses

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self.dynamic_batch:
            return self.session.run([self.output_name], {self.input_name: batch})[0]
        runs = [self.session.run([self.output_name], {self.input_name: batch[i : i + 1]})[0] for i in range(len(batch))]
        return np.concatenate(runs)

    def finalize(self) -> None:
        """Drop the session."""
        self.session = None
