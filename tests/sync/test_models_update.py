"""Model updates against real servers: files from a local HTTP server, a real tritonserver in explicit
model-control mode, the in-process onnxruntime detector, and the gateway's manifest API on PostgreSQL."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from fastapi.testclient import TestClient
from onnx import TensorProto, helper

from gateway.app import create_app
from rva.config import OnnxDetectorConfig, TritonDetectorConfig
from rva.detect.base import Detector
from rva.detect.onnx_detector import OnnxDetector
from rva.detect.triton_detector import TritonDetector
from rva.sync.models import ModelManifest, ModelUpdater
from rva.sync.targets import EmbeddedTarget, TritonTarget
from services.common.servers import TritonServer
from services.inference.triton_repo import prepare_model_repository

MODEL = "rva_detector"
#: The repository's model as the tests build it: fp32 (no 30 s quantization), 640x480, batch-dynamic.
DETECTOR = OnnxDetectorConfig(quantized=False)

# The gateway's fixtures and helpers (tests/gateway/gateway_env.py), loaded under their own name.
_spec = importlib.util.spec_from_file_location("rva_gateway_fixtures", Path(__file__).parents[1] / "gateway" /
                                               "gateway_env.py")
assert _spec is not None and _spec.loader is not None
_gateway = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))  # dataclasses need it there
if not hasattr(_gateway, "Env"):
    _spec.loader.exec_module(_gateway)
pg_server = _gateway.pg_server


# --- fixtures ------------------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def triton_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_model_repository(DETECTOR, tmp_path_factory.mktemp("triton") / "repo")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, triton_repo: Path) -> Path:
    """Model files to serve: two re-saved copies of the detector (other metadata, so other digests), garbage,
    and a valid ONNX that loads but is not the detector (its output is not the one Triton's config names)."""
    folder = tmp_path_factory.mktemp("files")
    source = onnx.load(str(triton_repo / MODEL / "1" / "model.onnx"))
    for release in ("a", "b"):
        copy = onnx.ModelProto()
        copy.CopyFrom(source)
        copy.metadata_props.add(key="rva_release", value=release)
        onnx.save(copy, str(folder / f"good-{release}.onnx"))
    (folder / "garbage.onnx").write_bytes(np.random.default_rng(0).bytes(50_000))
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 480, 640])
    other = helper.make_tensor_value_info("other", TensorProto.FLOAT, ["batch", 3, 480, 640])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["other"])], "not_a_detector", [images],
                              [other])
    wrong = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    wrong.ir_version = source.ir_version
    wrong.metadata_props.add(key="names", value="{0: 'person'}")
    onnx.save(wrong, str(folder / "wrong-graph.onnx"))
    return folder


@pytest.fixture(scope="module")
def http_url(files: Path) -> Iterator[str]:
    """A real HTTP server (http.server in a thread) serving ``files`` on a free port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(files)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def triton(triton_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    server = TritonServer(triton_repo, log_dir=tmp_path_factory.mktemp("triton-log"), explicit_models=(MODEL,)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def frame(vtest_path: Path) -> np.ndarray:
    """Frame 100 of vtest.avi (people walking)."""
    with av.open(str(vtest_path)) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            if i == 100:
                return np.asarray(decoded.to_ndarray(format="bgr24"), np.uint8)
    raise AssertionError("vtest.avi has fewer than 101 frames")


def manifest(files: Path, base: str, file_name: str, version: str, **overrides: Any) -> ModelManifest:
    """The honest manifest of ``files/file_name`` served under ``base``, changed by ``overrides``."""
    data = (files / file_name).read_bytes()
    fields = {"name": MODEL, "version": version, "url": f"{base}/{file_name}",
              "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data), "format": "onnx", **overrides}
    return ModelManifest.model_validate(fields)


def record(state: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state / "models" / "active.json").read_text())
    return data


def ready_versions(triton: TritonServer) -> list[str]:
    client = grpcclient.InferenceServerClient(triton.url)
    try:
        return sorted(m.version for m in client.get_model_repository_index().models
                      if m.name == MODEL and m.state == "READY")
    finally:
        client.close()


def triton_detections(triton: TritonServer, frame: np.ndarray, version: str) -> int:
    cfg = TritonDetectorConfig(url=triton.url, model_version=version, quantized=False)
    with TritonDetector(cfg) as detector:
        return len(detector.detect([frame])[0])


# --- Triton --------------------------------------------------------------------------------------


def test_triton_loads_new_versions_and_records_them(
    tmp_path: Path, files: Path, http_url: str, triton: TritonServer, triton_repo: Path, frame: np.ndarray
) -> None:
    target = TritonTarget(triton.url, MODEL, triton_repo)
    updater = ModelUpdater(tmp_path, target)
    base = target.versions()[-1]
    people = triton_detections(triton, frame, str(base))
    assert people > 0

    first = updater.apply(manifest(files, http_url, "good-a.onnx", "2025.1"))
    assert first.ok and first.changed and not first.rolled_back and first.previous_version is None, first
    assert ready_versions(triton) == [str(base + 1)]
    assert triton_detections(triton, frame, str(base + 1)) == people  # same weights, new version answers
    active = record(tmp_path)["active"]
    assert (active["version"], active["serving"]) == ("2025.1", str(base + 1))
    assert (tmp_path / "models" / "active.onnx").resolve() == (tmp_path / "models" / "2025.1" / "model.onnx")
    assert not list((tmp_path / "models").rglob("*.part"))

    # the next poll hands over the same manifest: nothing to do
    again = updater.apply(manifest(files, http_url, "good-a.onnx", "2025.1"))
    assert again.ok and not again.changed

    second = updater.apply(manifest(files, http_url, "good-b.onnx", "2025.2"))
    assert second.ok and second.previous_version == "2025.1", second
    assert ready_versions(triton) == [str(base + 2)]
    assert triton_detections(triton, frame, "") == people
    saved = record(tmp_path)
    assert saved["active"]["version"] == "2025.2" and saved["previous"]["version"] == "2025.1"
    # the previous download and Triton version stay (for a manual rollback); older ones go
    assert sorted(p.name for p in (tmp_path / "models").iterdir() if p.is_dir()) == ["2025.1", "2025.2"]
    assert target.versions() == [base + 1, base + 2]
    # a restart reads the record
    assert ModelUpdater(tmp_path, target).active().version == "2025.2"  # type: ignore[union-attr]


@pytest.mark.parametrize(("name", "reason"), [
    ("garbage.onnx", "Protobuf parsing failed"),  # the manifest is honest, the file is no model: load fails
    ("wrong-graph.onnx", "output0"),  # loads, but the blank-frame inference fails
])
def test_triton_rolls_back_a_model_that_fails(
    tmp_path: Path, files: Path, http_url: str, triton: TritonServer, triton_repo: Path, frame: np.ndarray,
    name: str, reason: str,
) -> None:
    target = TritonTarget(triton.url, MODEL, triton_repo)
    updater = ModelUpdater(tmp_path, target)
    assert updater.apply(manifest(files, http_url, "good-a.onnx", "known-good")).ok
    versions, serving = target.versions(), ready_versions(triton)

    update = updater.apply(manifest(files, http_url, name, "broken"))
    assert not update.ok and update.rolled_back and update.previous_version == "known-good", update
    assert reason in update.error and "Triton could not load broken" in update.error
    assert target.versions() == versions and ready_versions(triton) == serving
    assert triton_detections(triton, frame, "") > 0  # the previous version still answers
    assert record(tmp_path)["active"]["version"] == "known-good"
    assert not (tmp_path / "models" / "broken").exists()


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"sha256": "0" * 64}, "sha256"),
    ({"size_bytes": 1234}, "the manifest says 1234"),
    ({"url": "{url}/missing.onnx"}, "HTTP 404"),
    ({"name": "another_model"}, "this edge serves 'rva_detector'"),
])
def test_triton_is_not_touched_by_a_bad_download(
    tmp_path: Path, files: Path, http_url: str, triton: TritonServer, triton_repo: Path,
    overrides: dict[str, Any], reason: str,
) -> None:
    target = TritonTarget(triton.url, MODEL, triton_repo)
    versions, serving = target.versions(), ready_versions(triton)
    updater = ModelUpdater(tmp_path, target)
    overrides = {k: v.format(url=http_url) if isinstance(v, str) else v for k, v in overrides.items()}
    update = updater.apply(manifest(files, http_url, "good-a.onnx", "tampered", **overrides))
    assert not update.ok and not update.rolled_back and reason in update.error, update
    assert target.versions() == versions and ready_versions(triton) == serving
    assert updater.active() is None
    assert list((tmp_path / "models").iterdir()) == []  # no .part, no version directory


# --- the embedded detector -----------------------------------------------------------------------


def test_embedded_detector_swaps_only_a_working_model(
    tmp_path: Path, files: Path, http_url: str, frame: np.ndarray
) -> None:
    swapped: list[Detector] = []
    updater = ModelUpdater(tmp_path, EmbeddedTarget(DETECTOR, swapped.append))

    good = updater.apply(manifest(files, http_url, "good-a.onnx", "e1"))
    assert good.ok and len(swapped) == 1, good
    assert len(swapped[0].detect([frame])[0]) > 0
    assert record(tmp_path)["active"]["serving"] == str(tmp_path / "models" / "e1" / "model.onnx")

    for name in ("garbage.onnx", "wrong-graph.onnx"):
        bad = updater.apply(manifest(files, http_url, name, "e2"))
        assert not bad.ok and bad.rolled_back and bad.previous_version == "e1", bad
    tampered = updater.apply(manifest(files, http_url, "good-b.onnx", "e3", sha256="f" * 64))
    assert not tampered.ok and not tampered.rolled_back and "sha256" in tampered.error
    assert len(swapped) == 1 and record(tmp_path)["active"]["version"] == "e1"
    assert len(swapped[0].detect([frame])[0]) > 0  # the old detector was never closed

    newer = updater.apply(manifest(files, http_url, "good-b.onnx", "e3"))
    assert newer.ok and newer.previous_version == "e1" and len(swapped) == 2
    expected = OnnxDetector(DETECTOR, model_path=files / "good-b.onnx").detect([frame])[0]
    np.testing.assert_allclose(swapped[1].detect([frame])[0].xyxy, expected.xyxy, atol=1e-3)
    for detector in swapped:
        detector.close()


# --- the cloud's manifest API --------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway_env(pg_server: Any) -> Iterator[Any]:
    """The gateway on its own PostgreSQL database (no Redis, NATS or ClickHouse: not needed here)."""
    with _gateway.fresh_database(pg_server) as dsn:
        _gateway.seed_tenants(dsn)
        settings = _gateway.settings_for(dsn, None, None)
        with TestClient(create_app(settings)) as client:
            yield _gateway.Env(settings, client, dsn, "", "")


MANIFEST = {"name": MODEL, "version": "2025.06-1", "url": "https://models.example.com/rva/det.onnx?sig=abc",
            "sha256": "ab" * 32, "size_bytes": 12_345_678, "format": "onnx"}


def test_manifest_api_versions_and_polls(gateway_env: Any) -> None:
    env = gateway_env
    c, admin = env.client, env.auth()
    key = {"X-API-Key": env.store("mdl1")}
    assert c.get("/v1/stores/mdl1/model", headers=key).status_code == 404  # none set yet

    r = c.put("/v1/stores/mdl1/model", json={**MANIFEST, "sha256": "AB" * 32}, headers=admin)
    assert r.status_code == 200 and r.headers["etag"] == '"v1"', r.text
    assert r.json()["revision"] == 1 and r.json()["manifest"]["sha256"] == "ab" * 32  # stored lowercase
    assert c.put("/v1/stores/mdl1/model", json=MANIFEST, headers=admin).headers["etag"] == '"v1"'  # unchanged

    r = c.get("/v1/stores/mdl1/model", headers=key)
    assert r.status_code == 200 and r.headers["etag"] == '"v1"'
    assert ModelManifest.model_validate(r.json()["manifest"]) == ModelManifest.model_validate(MANIFEST)
    assert c.get("/v1/stores/mdl1/model", headers={**key, "If-None-Match": '"v1"'}).status_code == 304

    r = c.put("/v1/stores/mdl1/model", json={**MANIFEST, "version": "2025.07"}, headers={**admin, "If-Match": '"v1"'})
    assert r.status_code == 200 and r.headers["etag"] == '"v2"'
    r = c.get("/v1/stores/mdl1/model", headers={**key, "If-None-Match": '"v1"'})
    assert r.status_code == 200 and r.json()["manifest"]["version"] == "2025.07" and r.json()["created_by"] == "tester"
    assert c.put("/v1/stores/mdl1/model", json=MANIFEST, headers={**admin, "If-Match": '"v1"'}).status_code == 412

    # who may do what: devices and viewers read, only admins write; other tenants see nothing
    assert c.put("/v1/stores/mdl1/model", json=MANIFEST, headers=key).status_code == 403
    assert c.put("/v1/stores/mdl1/model", json=MANIFEST, headers=env.auth(role="viewer")).status_code == 403
    assert c.get("/v1/stores/mdl1/model", headers=env.auth(role="viewer")).status_code == 200
    assert c.get("/v1/stores/mdl1/model", headers=env.auth(tenant="other")).status_code == 404
    assert c.get("/v1/stores/mdl1/model").status_code == 401


@pytest.mark.parametrize(("change", "field"), [
    ({"sha256": "xyz"}, "sha256"),
    ({"version": "../etc"}, "version"),
    ({"version": ""}, "version"),
    ({"url": "ftp://models.example.com/det.onnx"}, "url"),
    ({"url": "https:///no-host"}, "url"),
    ({"size_bytes": 0}, "size_bytes"),
    ({"format": "engine"}, "format"),
    ({"name": "a/b"}, "name"),
    ({"extra": 1}, "extra"),
])
def test_manifest_api_rejects_invalid_manifests(gateway_env: Any, change: dict[str, Any], field: str) -> None:
    env = gateway_env
    if "mdl2" not in env.keys:
        env.store("mdl2")
    r = env.client.put("/v1/stores/mdl2/model", json={**MANIFEST, **change}, headers=env.auth())
    assert r.status_code == 422, r.text
    assert any(f["field"].startswith(field) for f in r.json()["fields"]), r.json()
