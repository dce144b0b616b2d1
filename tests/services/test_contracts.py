"""Contracts without servers: Triton model configs, frame wire format, env overrides, subjects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from rva.bus.jetstream import subject_for
from rva.config import TritonDetectorConfig, parse_config
from rva.core import Frame
from rva.decode.v1 import decode_pb2
from rva.errors import ConfigError
from services.common.config import apply_env, env_reference, select_cameras
from services.common.frames import decode_frame, encode_frame
from services.common.metrics import histogram_quantile
from services.common.work import work_subject

TRITON_MODELS = Path(__file__).resolve().parents[2] / "triton_models"
CONFIGS = sorted(TRITON_MODELS.glob("*/config.pbtxt"))
BASE = {
    "store": "s1",
    "cameras": [
        {"id": "a", "source": {"type": "file", "path": "x"}},
        {"id": "b", "source": {"type": "file", "path": "x"}},
    ],
}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.parent.name for p in CONFIGS])
def test_triton_config_parses_against_the_model_config_schema(path: Path) -> None:
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    assert config.name == path.parent.name
    assert config.max_batch_size >= 8
    assert list(config.dynamic_batching.preferred_batch_size), "dynamic batching needs preferred sizes"
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert [i.name for i in config.input] == ["images"] and config.input[0].dims[0] == 3
    assert [o.name for o in config.output] == ["output0"]
    assert config.instance_group


def test_three_models_cpu_and_gpu() -> None:
    kinds = {p.parent.name: text_format.Parse(p.read_text(), model_config_pb2.ModelConfig()) for p in CONFIGS}
    assert kinds["rva_detector"].backend == "python"
    trt = kinds["rva_detector_onnx_trt"].optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
    assert kinds["rva_detector_trt"].platform == "tensorrt_plan"


FRAME = Frame("cam-1", 7, 0.7, np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3))


@pytest.mark.parametrize("encoding", ["bgr24", "jpeg"])
def test_frame_round_trip(encoding: str) -> None:
    msg = decode_pb2.VideoFrame.FromString(encode_frame(FRAME, "s", encoding=encoding).SerializeToString())
    back = decode_frame(msg)
    assert (back.camera, back.index, back.pts, back.image.shape) == ("cam-1", 7, 0.7, (4, 6, 3))
    if encoding == "bgr24":
        assert np.array_equal(back.image, FRAME.image)


def _broken(**change: object) -> decode_pb2.VideoFrame:
    msg = encode_frame(FRAME, "s")
    for key, value in change.items():
        if key == "image":
            msg.image = value  # type: ignore[assignment]
        elif key == "encoding":
            msg.encoding = value  # type: ignore[assignment]
        else:
            setattr(msg.meta, key, value)
    return msg


@pytest.mark.parametrize(
    ("msg", "complaint"),
    [
        (_broken(camera=""), "camera"),
        (_broken(camera="a.b"), "camera"),
        (_broken(width=0), "width and height"),
        (_broken(height=99999), "width and height"),
        (_broken(image=b"123"), "bytes of BGR24"),
        (_broken(encoding=decode_pb2.IMAGE_ENCODING_UNSPECIFIED), "encoding"),
        (_broken(encoding=decode_pb2.IMAGE_ENCODING_JPEG), "not a JPEG"),
        (_broken(pts=float("nan")), "pts"),
    ],
)
def test_malformed_frames_are_named(msg: decode_pb2.VideoFrame, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        decode_frame(msg)


@pytest.mark.parametrize(
    ("env", "path", "expected"),
    [
        ({"RVA_NATS_URL": "nats://10.0.0.5:4222"}, ("services", "nats", "url"), "nats://10.0.0.5:4222"),
        ({"RVA_DECODE_PORT": "6000"}, ("services", "decode", "port"), 6000),
        ({"RVA_INFERENCE_DECODE_ADDRS": "a:1, b:2"}, ("services", "inference", "decode_addrs"), ["a:1", "b:2"]),
        ({"RVA_DECODE_MAX_FRAMES": "null"}, ("services", "decode", "max_frames"), None),
        ({"RVA_TRACKER_MIN_HITS": "5"}, ("tracker", "min_hits"), 5),
        ({"RVA_TELEMETRY_TRACE_SAMPLE_RATIO": "0.5"}, ("services", "telemetry", "trace_sample_ratio"), 0.5),
        ({"RVA_DRAIN_TIMEOUT_S": "3"}, ("services", "drain_timeout_s"), 3.0),
        ({"RVA_CACHE": "/elsewhere"}, ("services", "decode", "port"), 50051),
    ],
)
def test_env_overrides(env: dict[str, str], path: tuple[str, ...], expected: object) -> None:
    node: object = apply_env(parse_config(BASE), env)
    for key in path:
        node = getattr(node, key)
    assert node == expected


def test_env_override_switches_the_detector() -> None:
    cfg = apply_env(parse_config({**BASE, "detector": {"type": "triton"}}), {"RVA_DETECTOR_URL": "t:8001"})
    assert isinstance(cfg.detector, TritonDetectorConfig) and cfg.detector.url == "t:8001"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RVA_DECODE_PORT": "70000"}, "RVA_DECODE_PORT"),
        ({"RVA_NATS_URL": "http://x"}, "services.nats.url"),
        ({"RVA_INFERENCE_DECODE_ADDRS": "nohost"}, "RVA_INFERENCE_DECODE_ADDRS"),
    ],
)
def test_bad_env_override_fails_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        apply_env(parse_config(BASE), env)


def test_every_override_is_documented() -> None:
    names = {row[0] for row in env_reference()}
    assert {"RVA_NATS_URL", "RVA_DETECTOR_URL", "RVA_CAMERAS", "RVA_TRACKING_ACK_WAIT_S"} <= names


@pytest.mark.parametrize(("spec", "ids"), [(None, ["a", "b"]), ("b", ["b"]), ("b, a", ["b", "a"])])
def test_camera_selection(spec: str | None, ids: list[str]) -> None:
    assert [c.id for c in select_cameras(parse_config(BASE), spec or "")] == ids if spec else ["a", "b"]


def test_unknown_camera_selection_fails() -> None:
    with pytest.raises(ConfigError, match="not in the config"):
        select_cameras(parse_config(BASE), "a,zz")


@pytest.mark.parametrize(
    ("args", "expected"),
    [(("s1", "cam-1", "zone_exit"), "rva.s1.cam-1.zone_exit"), (("s", "c", "line_cross"), "rva.s.c.line_cross")],
)
def test_event_subjects(args: tuple[str, str, str], expected: str) -> None:
    assert subject_for(*args) == expected
    assert work_subject(args[0], args[1], "tracks") == f"rva_work.{args[0]}.{args[1]}.tracks"


@pytest.mark.parametrize("bad", [("s.x", "c", "k"), ("s", "*", "k"), ("s", "c", ""), ("s", "c", "a>")])
def test_subject_tokens_are_checked(bad: tuple[str, str, str]) -> None:
    with pytest.raises(ValueError, match="subject_for"):
        subject_for(*bad)


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [(1.0, 10), (2.0, 20), (float("inf"), 20)], 1.0),
        (0.75, [(1.0, 10), (2.0, 20), (float("inf"), 20)], 1.5),
        (0.99, [(1.0, 0), (2.0, 0), (float("inf"), 0)], None),
    ],
)
def test_histogram_quantile(q: float, buckets: list[tuple[float, float]], expected: float | None) -> None:
    assert histogram_quantile(q, buckets) == expected
