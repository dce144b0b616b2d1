"""The GPU path: NVDEC decode, GPU pre-processing, batched torch inference with GPU NMS, CPU analytics.

Layout (one worker set per GPU; see :mod:`rva.gpu.worker` for the data flow):

* :mod:`rva.gpu.nvdec_source` - PyNvVideoCodec decoding into GPU memory (and a PyAV twin for CPUs).
* :mod:`rva.gpu.gpu_source` - ``NvdecSource``: a ``VideoSource`` whose frames stay on the GPU.
* :mod:`rva.gpu.preprocess` - NV12 -> letterboxed RGB network input, batched, on the device.
* :mod:`rva.gpu.batcher` - the deadline-based batch assembler across streams (pure).
* :mod:`rva.gpu.yolo_torch` - YOLOv8 / YOLO11 in plain torch from Ultralytics ``.pt`` files.
* :mod:`rva.gpu.torch_detector` - fp16 engine with CUDA graphs; a ``Detector`` over it.
* :mod:`rva.gpu.nms` - exact greedy NMS and head decoding, batched, no host sync.
* :mod:`rva.gpu.batch_graph` - the whole per-batch GPU work (ring -> input -> network -> NMS) as one graph.
* :mod:`rva.gpu.packed` - the packed result rows and their unpacking (NumPy).
* :mod:`rva.gpu.decoding` - paced decode threads writing into a frame ring; :mod:`rva.gpu.decode_procs`
  runs them in child processes sharing the ring (CUDA IPC).
* :mod:`rva.gpu.worker` - decoding -> batcher -> inference -> dispatch, one worker set per GPU.
* :mod:`rva.gpu.analytics_pool` - tracking + analytics per camera on CPU processes.
* :mod:`rva.gpu.models` - where the two benchmark models come from.

Importing this package needs neither torch nor CuPy nor PyNvVideoCodec: the modules that use them
import them at their own import, and :func:`gpu_available` says whether the path can run here.
"""

from __future__ import annotations

import importlib.util


def gpu_available() -> bool:
    """True when torch is installed and sees a CUDA device."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def nvdec_available() -> bool:
    """True when PyNvVideoCodec is installed (it still needs an NVIDIA driver to decode)."""
    return importlib.util.find_spec("PyNvVideoCodec") is not None
