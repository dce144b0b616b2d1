"""Service test fixtures: real nats-server and tritonserver on free ports (one each per session),
configs for vtest.avi, and helpers to read what the stack published."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from service_helpers import ConfigWriter

from rva.config import OnnxDetectorConfig
from services.common.servers import NatsServer, TritonServer
from services.inference.triton_repo import prepare_model_repository

REPO = Path(__file__).resolve().parents[2]
VTEST_CONFIG = REPO / "rva" / "configs" / "vtest.yaml"


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server -js for the session (tests isolate themselves by store id)."""
    server = NatsServer(log_dir=tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def triton_repo(tmp_path_factory: pytest.TempPathFactory, vtest_path: Path) -> Path:
    """A model repository built from triton_models/ and the default detector (cached ONNX)."""
    return prepare_model_repository(OnnxDetectorConfig(), tmp_path_factory.mktemp("triton") / "repo")


@pytest.fixture(scope="session")
def triton_server(triton_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """One real tritonserver (python backend, onnxruntime inside) for the session."""
    server = TritonServer(triton_repo, log_dir=tmp_path_factory.mktemp("triton-log")).start()
    yield server
    server.stop()




@pytest.fixture
def write_config(tmp_path: Path, vtest_path: Path) -> ConfigWriter:
    """``write_config(store, cameras=1, triton_url=None, services={...}, realtime=False) -> path``.

    vtest.yaml's camera (zones, lines, queue) repeated ``cameras`` times on the real clip.
    """

    def write(
        store: str,
        cameras: int = 1,
        triton_url: str | None = None,
        services: dict[str, Any] | None = None,
        realtime: bool = False,
    ) -> Path:
        raw = yaml.safe_load(VTEST_CONFIG.read_text())
        base = raw["cameras"][0]
        base["source"] = {"type": "file", "path": str(vtest_path), "realtime": realtime}
        raw["cameras"] = [{**base, "id": base["id"] if cameras == 1 else f"cam{i}"} for i in range(cameras)]
        raw["store"] = store
        raw["output"] = {"annotated_video": False, "heatmap_png": False}
        if triton_url is not None:
            raw["detector"] = {"type": "triton", "url": triton_url}
        raw["services"] = {"telemetry": {"log_format": "json", "trace_sample_ratio": 1.0}, **(services or {})}
        path = tmp_path / f"{store}.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return write
