"""Models handed from the sync service to inference replicas over a real nats-server (KV + object store),
and a real in-process inference service that swaps them in or rolls them back."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import numpy as np
import onnx
import pytest
import yaml
from prometheus_client import generate_latest

from rva.assets import sha256_of
from rva.config import OnnxDetectorConfig, RVAConfig, parse_config
from rva.detect.models import resolve_model
from rva.detect.onnx_detector import OnnxDetector
from rva.sources.factory import open_source
from rva.sync.model_bus import (
    AnnounceTarget,
    announce_model,
    announcer,
    current_model,
    fetch_model,
    model_objects,
    model_status,
    object_name,
    watch_models,
)
from rva.sync.models import DownloadError, ModelManifest, ModelRejected, ModelUpdateError
from services.common.metrics import parse_metrics
from services.common.runtime import ServiceRuntime
from services.common.servers import NatsServer
from services.inference.backends import LocalBackend
from services.inference.service import InferenceService

VTEST_CONFIG = Path(__file__).parents[2] / "rva" / "configs" / "vtest.yaml"
#: The default detector, fp32 (no 30 s quantization), 640x480.
DETECTOR = OnnxDetectorConfig(quantized=False)


def service_config(nats_url: str, store: str, state_dir: Path, video: Path) -> RVAConfig:
    """vtest.yaml on ``video`` with the fp32 in-process detector, for ``store``."""
    raw = yaml.safe_load(VTEST_CONFIG.read_text())
    raw["store"] = store
    raw["cameras"][0]["source"] = {"type": "file", "path": str(video)}
    raw["detector"] = DETECTOR.model_dump(mode="json")
    raw["services"] = {"nats": {"url": nats_url}, "sync": {"state_dir": str(state_dir)},
                       "telemetry": {"log_format": "text"}}
    return parse_config(raw, "test")


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = NatsServer(log_dir=tmp_path_factory.mktemp("nats")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two re-saved copies of the default detector (other metadata, so other digests) and 50 kB of garbage."""
    folder = tmp_path_factory.mktemp("models")
    source = onnx.load(str(resolve_model(DETECTOR)))
    for release in ("a", "b"):
        source.metadata_props.add(key="rva_release", value=release)
        onnx.save(source, str(folder / f"good-{release}.onnx"))
    (folder / "garbage.onnx").write_bytes(np.random.default_rng(0).bytes(50_000))
    return folder


@pytest.fixture(scope="module")
def frame(vtest_path: Path) -> np.ndarray:
    """Frame 100 of vtest.avi (people walking), read by RVA's own file source."""
    camera = service_config("nats://127.0.0.1:1", "frame", Path(), vtest_path).cameras[0]
    with open_source(camera) as source:
        return next(itertools.islice(source, 100, None)).image


def manifest(path: Path, version: str) -> ModelManifest:
    """The honest manifest of ``path``."""
    data = path.read_bytes()
    return ModelManifest(name="rva_detector", version=version, url=f"https://models.example.com/{path.name}",
                         sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def with_js(nats_url: str, body: Callable[[Any], Awaitable[None]]) -> None:
    """Run ``body(js)`` with a fresh NATS connection."""

    async def run() -> None:
        nc = await nats.connect(nats_url)
        try:
            await body(nc.jetstream())
        finally:
            await nc.drain()

    asyncio.run(run())


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await _value(check()):
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
        await asyncio.sleep(0.1)


async def _value(result: bool | Awaitable[bool]) -> bool:
    return result if isinstance(result, bool) else await result


# --- the bus -------------------------------------------------------------------------------------


def test_announce_and_fetch_verify_the_file(nats_url: str, files: Path, tmp_path: Path) -> None:
    good_a, good_b, garbage = files / "good-a.onnx", files / "good-b.onnx", files / "garbage.onnx"
    v1 = manifest(good_a, "v1")

    async def body(js: Any) -> None:
        revision = await announce_model(js, "rt", v1, good_a)
        assert await announce_model(js, "rt", v1, good_a) == revision  # idempotent: nothing sent again
        assert await current_model(js, "rt") == (v1, revision)

        path = await fetch_model(js, "rt", v1, tmp_path / "cache")
        assert path == tmp_path / "cache" / "v1" / "model.onnx"
        assert sha256_of(path) == v1.sha256 and path.read_bytes() == good_a.read_bytes()
        assert await fetch_model(js, "rt", v1, tmp_path / "cache") == path  # a verified copy is reused
        assert [p.name for p in path.parent.iterdir()] == ["model.onnx"]  # no .part left

        # the same version with other bytes is refused: a changed model needs a new version
        with pytest.raises(ModelUpdateError, match="needs a new version"):
            await announce_model(js, "rt", manifest(good_b, "v1"), good_b)

        # someone replaces the stored object: the manifest's digest catches it, nothing is left behind
        objects = await model_objects(js)
        flipped = bytearray(good_a.read_bytes())
        flipped[len(flipped) // 2] ^= 0x01  # one bit, same size
        await objects.put(object_name("rt", "v1"), bytes(flipped))
        with pytest.raises(DownloadError, match=f"sha256 {hashlib.sha256(flipped).hexdigest()}, the manifest says"):
            await fetch_model(js, "rt", v1, tmp_path / "tampered")
        await objects.put(object_name("rt", "v1"), garbage.read_bytes())
        with pytest.raises(DownloadError, match="50000 bytes, the manifest says"):
            await fetch_model(js, "rt", v1, tmp_path / "tampered")
        assert list((tmp_path / "tampered").iterdir()) == []
        with pytest.raises(DownloadError, match="no such object"):
            await fetch_model(js, "rt", manifest(good_a, "v9"), tmp_path / "tampered")

        # the watcher sees the version in force first, then each new one; old files are pruned
        models = watch_models(js, "rt")
        assert isinstance(models, AsyncGenerator)
        assert (await anext(models)).version == "v1"
        await announce_model(js, "rt", manifest(good_b, "v2"), good_b)
        assert (await anext(models)).version == "v2"
        await announce_model(js, "rt", manifest(good_a, "v3"), good_a)
        assert (await anext(models)).version == "v3"
        await models.aclose()
        names = {info.name for info in await objects.list(ignore_deletes=True) if info.name.startswith("rt/")}
        assert names == {"rt/v2", "rt/v3"}  # in force and the previous one

    with_js(nats_url, body)


def test_announce_target_announces_only_a_model_that_runs(nats_url: str, files: Path) -> None:
    async def body(js: Any) -> None:
        target = AnnounceTarget(DETECTOR, announcer(js, "ann", asyncio.get_running_loop()))
        good = manifest(files / "good-a.onnx", "g1")
        assert await asyncio.to_thread(target.activate, files / "good-a.onnx", good) == str(files / "good-a.onnx")
        current = await current_model(js, "ann")
        assert current is not None and current[0] == good

        bad = manifest(files / "garbage.onnx", "g2")
        with pytest.raises(ModelRejected, match="cannot open g2") as caught:
            await asyncio.to_thread(target.activate, files / "garbage.onnx", bad)
        assert caught.value.rolled_back
        current = await current_model(js, "ann")
        assert current is not None and current[0] == good  # never announced

    with_js(nats_url, body)


# --- the inference service -----------------------------------------------------------------------


def test_inference_swaps_in_a_good_model_and_rolls_back_a_broken_one(
    nats_url: str, files: Path, frame: np.ndarray, tmp_path: Path, vtest_path: Path
) -> None:
    good, garbage = files / "good-a.onnx", files / "garbage.onnx"
    cfg = service_config(nats_url, "swap", tmp_path, vtest_path)

    async def body(js: Any) -> None:
        service = InferenceService(cfg, cfg.cameras, replica="edge-1")
        runtime = ServiceRuntime(service, "127.0.0.1", 0, None)
        await runtime.start()
        try:
            await eventually(lambda: service.backend is not None, "the backend is ready")
            backend = service.backend
            assert isinstance(backend, LocalBackend)
            configured = backend.detector
            expected = await backend.detect(frame)
            assert len(expected) > 0

            # frames keep flowing while the model is swapped: none fails, each is right
            results: list[Any] = []

            async def traffic() -> None:
                while True:
                    results.append(await backend.detect(frame))

            flow = asyncio.create_task(traffic())
            await announce_model(js, "swap", manifest(good, "v1"), good)
            await eventually(lambda: service.model_version == "v1", "v1 in service")
            await asyncio.sleep(0.3)
            assert not flow.done(), flow.exception()  # no frame failed (a detector closed mid-batch would raise)
            flow.cancel()
            assert results and all(np.allclose(r.xyxy, expected.xyxy, atol=1e-3) for r in results)
            swapped = backend.detector
            assert isinstance(swapped, OnnxDetector) and swapped is not configured
            assert swapped.path == tmp_path / "inference-models" / "v1" / "model.onnx"
            assert not hasattr(configured, "_session")  # the old detector was released
            status = (await model_status(js, "swap"))["edge-1"]
            assert (status.version, status.previous_version, status.ok, status.rolled_back) == ("v1", None, True, False)

            # an honest manifest of a file that is no model: fetched and verified, fails to open, rolled back
            await announce_model(js, "swap", manifest(garbage, "v2"), garbage)

            async def reported() -> bool:
                return (await model_status(js, "swap"))["edge-1"].version == "v2"

            await eventually(reported, "v2's outcome reported")
            status = (await model_status(js, "swap"))["edge-1"]
            assert status.rolled_back and not status.ok and status.previous_version == "v1", status
            assert "cannot open v2" in status.error
            assert service.model_version == "v1" and backend.detector is swapped
            np.testing.assert_allclose((await backend.detect(frame)).xyxy, expected.xyxy, atol=1e-3)
            assert not (tmp_path / "inference-models" / "v2").exists()  # a file that does not work is not kept

            metrics = parse_metrics(generate_latest(service.metrics.registry).decode())
            assert ({"service": "inference", "kind": "model_rejected"}, 1.0) in metrics["rva_errors_total"]
            assert ({"service": "inference", "name": "model_version_swaps"}, 1.0) in metrics["rva_state"]
        finally:
            await runtime.stop(2)

    with_js(nats_url, body)
