"""Where a verified model goes into service: Triton (explicit model control) or the embedded detector.

Both prove the new model with one inference on a blank frame before it serves, and bring the previous
one back when it fails (see :class:`rva.sync.models.ModelUpdater`, which downloads and verifies first).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rva.config import OnnxDetectorConfig
from rva.detect.base import Detector
from rva.sync.models import MODEL_FILE, ModelManifest, ModelRejected, ModelTarget, copy_synced, fsync_dir

log = logging.getLogger(__name__)

class TritonTarget(ModelTarget):
    """A model of a Triton repository, served with ``--model-control-mode=explicit``.

    The file becomes the next integer version directory of ``repo_dir/model_name`` (the current
    version's other files, e.g. the python backend's ``model.py``, are copied along), then
    ``load_model`` makes Triton load it (``version_policy`` latest 1 retires the old version once the
    new one is ready). The new version must report ready and answer one inference on a blank input
    of the model's input shape; otherwise its directory is removed and the model reloaded, so the
    previous version serves. Versions older than the previous one are deleted.

    Args:
        url: Triton's gRPC endpoint, ``host:port``.
        model_name: The model to update.
        repo_dir: The model repository Triton serves (on this machine).
        timeout_s: Deadline of a load and of the readiness wait; a probe inference gets the same.

    """

    def __init__(self, url: str, model_name: str, repo_dir: Path, *, timeout_s: float = 120.0) -> None:
        self.url = url
        self.model_name = model_name
        self.model_dir = Path(repo_dir) / model_name
        self.timeout_s = timeout_s

    def versions(self) -> list[int]:
        """The version directories of the model, ascending."""
        if not self.model_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self.model_dir.iterdir() if p.is_dir() and p.name.isdigit())

    def activate(self, model: Path, manifest: ModelManifest) -> str:
        """Load ``model`` as the next version; roll back to the current one if it fails (see the class)."""
        import tritonclient.grpc as grpcclient

        versions = self.versions()
        if not versions:
            raise ModelRejected(f"{self.model_dir} has no version directory to start from", rolled_back=False)
        current, new = versions[-1], versions[-1] + 1
        new_dir = self.model_dir / str(new)
        client = grpcclient.InferenceServerClient(self.url)
        try:
            try:
                self._stage(model, self.model_dir / str(current), new_dir)
            except OSError as err:
                shutil.rmtree(new_dir, ignore_errors=True)
                raise ModelRejected(f"cannot place the model in {new_dir}: {err}", rolled_back=False) from err
            try:
                client.load_model(self.model_name, client_timeout=self.timeout_s)
                self._wait_ready(client, str(new))
                self._probe(client, str(new))
            except Exception as err:  # tritonclient raises InferenceServerException and grpc errors
                reason = f"Triton could not load {manifest.version}: {_triton_message(err)}"
                shutil.rmtree(new_dir, ignore_errors=True)
                try:
                    self._reload(client, str(current))
                except Exception as again:
                    raise ModelRejected(f"{reason}; and version {current} is not ready: {_triton_message(again)}",
                                        rolled_back=False) from err
                raise ModelRejected(reason, rolled_back=True) from err
        finally:
            client.close()
        for old in versions[:-1]:
            shutil.rmtree(self.model_dir / str(old), ignore_errors=True)
        return str(new)

    def _stage(self, model: Path, current_dir: Path, new_dir: Path) -> None:
        """Build ``new_dir`` under a name Triton ignores, then rename it: a crash never leaves half a version."""
        for leftover in self.model_dir.glob(".staging-*"):  # from a crash mid-copy
            shutil.rmtree(leftover, ignore_errors=True)
        staging = self.model_dir / f".staging-{new_dir.name}"
        staging.mkdir()
        for companion in current_dir.iterdir():
            if companion.is_file() and companion.name != MODEL_FILE:
                shutil.copy2(companion, staging / companion.name)
        copy_synced(model, staging / MODEL_FILE)
        fsync_dir(staging)
        os.replace(staging, new_dir)
        fsync_dir(self.model_dir)

    def _reload(self, client: Any, version: str) -> None:
        """Make Triton re-read the repository (the new version is gone) and wait for ``version``.

        Triton keeps serving the old version when a new one fails to load, and a server not in
        explicit mode refuses ``load_model`` without changing anything: in both cases ``version``
        answers ready, which is what counts.
        """
        try:
            client.load_model(self.model_name, client_timeout=self.timeout_s)
        except Exception as err:
            log.warning("reloading %s after a failed version: %s", self.model_name, _triton_message(err))
        self._wait_ready(client, version)

    def _wait_ready(self, client: Any, version: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not client.is_model_ready(self.model_name, version, client_timeout=self.timeout_s):
            if time.monotonic() > deadline:
                raise TimeoutError(f"version {version} not ready within {self.timeout_s} s")
            time.sleep(0.1)

    def _probe(self, client: Any, version: str) -> None:
        """One inference on a blank input of the model's declared shape; raise unless it answers finite numbers."""
        import tritonclient.grpc as grpcclient
        from tritonclient.grpc import model_config_pb2 as mc
        from tritonclient.utils import triton_to_np_dtype

        config = client.get_model_config(self.model_name, version, client_timeout=self.timeout_s).config
        inp, out = config.input[0], config.output[0]
        shape = ([1] if config.max_batch_size > 0 else []) + [int(d) for d in inp.dims]
        if min(shape) <= 0:
            raise ValueError(f"cannot probe input {inp.name!r} of variable shape {shape}")
        datatype = mc.DataType.Name(inp.data_type).removeprefix("TYPE_")
        tensor = grpcclient.InferInput(inp.name, shape, datatype)
        tensor.set_data_from_numpy(np.zeros(shape, triton_to_np_dtype(datatype)))
        result = client.infer(self.model_name, [tensor], version, outputs=[grpcclient.InferRequestedOutput(out.name)],
                              client_timeout=self.timeout_s)
        answer = result.as_numpy(out.name)
        if answer is None or answer.size == 0 or not np.isfinite(answer.astype(np.float64)).all():
            raise ValueError(f"output {out.name!r} of a blank input is empty or not finite")


def _triton_message(err: BaseException) -> str:
    message = getattr(err, "message", None)
    text = str(message() if callable(message) else err)
    return text.split("\n\nAt:")[0].strip()[:500]  # the python backend appends a traceback


class EmbeddedTarget(ModelTarget):
    """The in-process onnxruntime detector (``detector.type: onnx``).

    The new file is opened as an :class:`~rva.detect.onnx_detector.OnnxDetector` with ``cfg``'s
    thresholds and class map (the file runs as it is: no re-derivation), run once on a blank frame of
    its input size, then handed to ``swap`` (the inference service replaces its detector and closes
    the old one). A file that fails never reaches ``swap``: the old detector keeps running.

    Args:
        cfg: The detector config the service runs with.
        swap: Receives the new, working detector.

    """

    def __init__(self, cfg: OnnxDetectorConfig, swap: Callable[[Detector], None]) -> None:
        self.cfg = cfg
        self.swap = swap

    def activate(self, model: Path, manifest: ModelManifest) -> str:
        """Open, probe and hand over the new detector (see the class)."""
        detector = open_probed(self.cfg, model, manifest)
        try:
            self.swap(detector)
        except Exception as err:
            detector.close()
            raise ModelRejected(f"{manifest.version} could not be swapped in: {err}", rolled_back=True) from err
        return str(model)


def open_probed(cfg: OnnxDetectorConfig, model: Path, manifest: ModelManifest) -> Detector:
    """``model`` opened as an :class:`~rva.detect.onnx_detector.OnnxDetector` that answered one blank frame.

    Args:
        cfg: Thresholds and class map to open it with (the file runs as it is: no re-derivation).
        model: The verified file.
        manifest: Its manifest (named in errors).

    Raises:
        ModelRejected: It does not open or does not answer (``rolled_back``: nothing was replaced).

    """
    from rva.detect.onnx_detector import OnnxDetector

    try:
        detector = OnnxDetector(cfg, model_path=model)
    except Exception as err:  # ModelError, and anything the ONNX metadata parsing raises
        raise ModelRejected(f"cannot open {manifest.version}: {err}", rolled_back=True) from err
    try:
        found = detector.detect([np.zeros((*detector.input_hw, 3), np.uint8)])
        if len(found) != 1:
            raise ValueError(f"expected detections for 1 frame, got {len(found)}")
    except Exception as err:
        detector.close()
        raise ModelRejected(f"{manifest.version} does not run: {err}", rolled_back=True) from err
    return detector


