"""The Triton Inference Server backend: a thin adapter around :mod:`rva.detect.yolo`.

Pre- and post-processing (letterbox, YOLO head decoding, NMS) run here, as for onnxruntime; the
server runs only the network, so the same model repository serves the CPU python-backend model and
the GPU onnxruntime/TensorRT models alike (input ``images`` FP32 ``[b, 3, h, w]``, output
``output0`` FP32 ``[b, 4 + classes, anchors]``). Class names come from the model config's
``parameters`` (``names``, copied from the ONNX metadata when the repository is prepared).

:meth:`TritonDetector.detect` is synchronous (one request per call, the batch in it);
:meth:`TritonDetector.detect_async` uses ``tritonclient.grpc.aio``, so a service can keep many
single-frame requests in flight and let Triton's dynamic batcher group them across cameras.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from rva.config import TritonDetectorConfig
from rva.core.detections import Detections
from rva.detect.base import Detector
from rva.detect.yolo import Letterbox, ModelInfo, YoloHead, letterbox, to_nchw
from rva.errors import ModelError, RVAError

#: gRPC codes after which the same request may succeed later (server down, restarting, overloaded).
_RETRYABLE = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "CANCELLED", "UNKNOWN")


#: gRPC channel options: no message size cap (batches are large), and reconnect within 2 s of a
#: restarted server (gRPC's default backoff grows to 120 s).
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class BackendUnavailableError(RVAError):
    """The inference server cannot be reached, is not ready, or did not answer in time (retryable)."""


def _translate(err: Exception, what: str) -> Exception:
    """Map a tritonclient exception to RVA's errors: retryable -> BackendUnavailableError."""
    status = str(getattr(err, "status", lambda: "")() or "")
    message = str(getattr(err, "message", lambda: str(err))() or err)
    code = status.removeprefix("StatusCode.")
    if code == "INVALID_ARGUMENT":
        return ValueError(f"{what}: Triton rejected the request: {message}")
    if code == "NOT_FOUND" or "unknown model" in message.lower():
        return ModelError(f"{what}: {message}")
    if code in _RETRYABLE or not code:
        return BackendUnavailableError(f"{what}: {code or 'no connection'}: {message}")
    return ModelError(f"{what}: {code}: {message}")


class TritonDetector(Detector):
    """A YOLO model served by Triton, called over gRPC with a deadline on every request.

    Args:
        cfg: The detector config (``type: triton``): endpoint, model name, thresholds, class map.

    Raises:
        BackendUnavailableError: Triton cannot be reached or the model is not ready.
        ModelError: The model config lacks class names, or its input is not ``[3, h, w]``.

    """

    def __init__(self, cfg: TritonDetectorConfig) -> None:
        import tritonclient.grpc as grpcclient

        self.cfg = cfg
        # Triton drops a request still queued after timeout_s (no compute wasted on an abandoned
        # request); the client waits a little longer so that the server's answer arrives first.
        self._queue_timeout_us = int(cfg.timeout_s * 1e6)
        self._deadline_s = cfg.timeout_s * 2 + 1.0
        self._grpcclient = grpcclient
        self._client = grpcclient.InferenceServerClient(cfg.url, channel_args=CHANNEL_ARGS)
        self._aio: Any = None
        try:
            config = self._client.get_model_config(
                cfg.model_name, cfg.model_version, client_timeout=cfg.timeout_s
            ).config
        except Exception as err:  # tritonclient raises InferenceServerException (and grpc errors)
            raise _translate(err, f"Triton {cfg.url} model {cfg.model_name!r} config") from err
        self._configure(config)

    def _configure(self, config: Any) -> None:
        params = {key: value.string_value for key, value in config.parameters.items()}
        self.info = ModelInfo.from_metadata(params)
        self._head = YoloHead(self.info, self.cfg.class_map, self.cfg.fallen_classes, self.cfg.confidence, self.cfg.iou)
        self.names = dict(self.info.names)
        self.labels = dict(self._head.labels)
        if not config.input or not config.output:
            raise ModelError(f"Triton model {config.name!r} declares no input or no output")
        dims = list(config.input[0].dims)
        if config.max_batch_size < 1 or len(dims) != 3 or dims[0] != 3 or min(dims[1:]) <= 0:
            raise ModelError(
                f"Triton model {config.name!r}: expected a batching model (max_batch_size >= 1) with input "
                f"[3, h, w], got max_batch_size {config.max_batch_size} and dims {dims}"
            )
        self.input_hw: tuple[int, int] = (int(dims[1]), int(dims[2]))
        self.max_batch = int(config.max_batch_size)
        self._input_name = config.input[0].name
        self._output_name = config.output[0].name

    # --- the two halves around the network ---------------------------------------------------------

    def preprocess(self, images: Sequence[npt.NDArray[np.uint8]]) -> tuple[npt.NDArray[np.float32], list[Letterbox]]:
        """Letterbox BGR uint8 frames of any size into one ``[b, 3, h, w]`` float32 batch."""
        fitted, boxes = [], []
        for image in images:
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(
                    f"TritonDetector: expected uint8 BGR (h, w, 3) frames, got {image.dtype} {image.shape}"
                )
            lb_image, lb = letterbox(image, self.input_hw)
            fitted.append(lb_image)
            boxes.append(lb)
        return to_nchw(fitted), boxes

    def _inputs(self, batch: npt.NDArray[np.float32]) -> tuple[list[Any], list[Any]]:
        tensor = self._grpcclient.InferInput(self._input_name, list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        return [tensor], [self._grpcclient.InferRequestedOutput(self._output_name)]

    def _output(self, result: Any, n: int) -> npt.NDArray[np.float32]:
        out = result.as_numpy(self._output_name)
        if out is None or out.shape[0] != n:
            raise ModelError(f"Triton returned {None if out is None else out.shape} for a batch of {n}")
        return np.asarray(out, np.float32)

    # --- calls ----------------------------------------------------------------------------------------

    def detect(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """Detect people in BGR uint8 frames; one request per ``max_batch`` frames.

        Raises:
            BackendUnavailableError: Triton is down, not ready, or missed the deadline.
            ValueError: A frame is not uint8 BGR, or Triton rejected the request.

        """
        found: list[Detections] = []
        for start in range(0, len(images), self.max_batch):
            batch, boxes = self.preprocess(images[start : start + self.max_batch])
            inputs, outputs = self._inputs(batch)
            try:
                result = self._client.infer(
                    self.cfg.model_name,
                    inputs,
                    self.cfg.model_version,
                    outputs=outputs,
                    timeout=self._queue_timeout_us,
                    client_timeout=self._deadline_s,
                )
            except Exception as err:
                raise _translate(err, f"Triton {self.cfg.url} infer") from err
            found += self._head.decode(self._output(result, len(boxes)), boxes)
        return found

    async def detect_async(
        self, images: Sequence[npt.NDArray[np.uint8]], headers: Mapping[str, str] | None = None
    ) -> list[Detections]:
        """:meth:`detect` over ``tritonclient.grpc.aio``; ``headers`` go out as gRPC metadata (trace context).

        Keep many single-frame calls in flight to let Triton's dynamic batcher group them.

        Raises:
            BackendUnavailableError: Triton is down, not ready, or missed the deadline.
            ValueError: A frame is not uint8 BGR, or Triton rejected the request.

        """
        if len(images) > self.max_batch:
            raise ValueError(f"TritonDetector.detect_async: at most {self.max_batch} frames, got {len(images)}")
        if self._aio is None:
            import tritonclient.grpc.aio as aioclient

            self._aio = aioclient.InferenceServerClient(self.cfg.url, channel_args=CHANNEL_ARGS)
        batch, boxes = self.preprocess(images)
        inputs, outputs = self._inputs(batch)
        try:
            result = await self._aio.infer(
                self.cfg.model_name,
                inputs,
                self.cfg.model_version,
                outputs=outputs,
                timeout=self._queue_timeout_us,
                client_timeout=self._deadline_s,
                headers=dict(headers or {}),
            )
        except Exception as err:
            raise _translate(err, f"Triton {self.cfg.url} infer") from err
        return self._head.decode(self._output(result, len(boxes)), boxes)

    async def aclose(self) -> None:
        """Close the asyncio channel (call from the loop that used :meth:`detect_async`)."""
        if self._aio is not None:
            aio, self._aio = self._aio, None
            await aio.close()

    def close(self) -> None:
        """Close the synchronous channel."""
        self._client.close()
