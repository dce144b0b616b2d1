"""The sync service process pulls the cloud's model manifest: a good model is announced, a broken one refused.

Real pieces: the gateway process on PostgreSQL (the manifest API), a local HTTP file server (where the
model files live), nats-server and the sync service process with the default (embedded) detector.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import nats
import onnx
import pytest

from bench.fault_harness import JWT_SECRET, TENANT, Harness, wait
from gateway.auth import JwtVerifier
from gateway.settings import GatewaySettings
from rva.config import OnnxDetectorConfig
from rva.detect.models import resolve_model
from rva.sync.model_bus import current_model
from rva.sync.tls import client_context
from rva.sync.v1 import sync_pb2, sync_pb2_grpc

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("models")
    model = onnx.load(str(resolve_model(OnnxDetectorConfig(quantized=False))))
    model.doc_string = "rva test: re-saved copy"  # a new file (new sha256), the same network
    onnx.save(model, str(root / "good.onnx"))
    (root / "broken.onnx").write_bytes(b"not a model at all" * 1000)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def _manifest(base: str, root: Path, name: str, version: str) -> dict[str, Any]:
    data = (root / name).read_bytes()
    return {"name": "rva_detector", "version": version, "url": f"{base}/{name}",
            "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data), "format": "onnx"}


def _versions(port: int) -> sync_pb2.GetVersionsResponse:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return sync_pb2_grpc.SyncServiceStub(ch).GetVersions(sync_pb2.GetVersionsRequest(), timeout=5)


def _in_force(nats_url: str, store: str) -> str | None:
    async def read() -> str | None:
        nc = await nats.connect(nats_url)
        try:
            found = await current_model(nc.jetstream(timeout=10), store)
            return None if found is None else found[0].version
        finally:
            await nc.close()

    return asyncio.run(read())


def test_sync_pulls_the_model_manifest_and_refuses_a_broken_model(
    pg_server: Any, tmp_path: Path, served: tuple[str, Path]
) -> None:
    base, root = served
    h = Harness(tmp_path, pg_server.url)
    with h.stack("models", poll_interval_s=1.0) as (cloud, edge):
        cloud.start()
        settings = GatewaySettings(postgres_dsn=cloud.dsn, jwt_secret=JWT_SECRET)
        admin = {"Authorization": f"Bearer {JwtVerifier(settings).mint('ops', TENANT, 'admin')}"}
        url = f"{cloud.url}/v1/stores/{cloud.store}/model"
        r = httpx.put(url, json=_manifest(base, root, "good.onnx", "m1"),
                      headers=admin, verify=client_context(str(cloud.ca)))
        assert r.status_code == 200, r.text
        edge.start_sync()

        wait(lambda: _in_force(edge.nats.url, edge.store) == "m1", 120, "m1 announced on NATS")
        assert _versions(edge.port).model_version == "m1"

        r = httpx.put(url, json=_manifest(base, root, "broken.onnx", "m2"),
                      headers=admin, verify=client_context(str(cloud.ca)))
        assert r.status_code == 200, r.text
        wait(lambda: "model m2 refused" in edge.sync.log.read_text(), 60, "the sync service to refuse m2")
        assert _in_force(edge.nats.url, edge.store) == "m1"  # never announced: inference keeps m1
        assert _versions(edge.port).model_version == "m1"
