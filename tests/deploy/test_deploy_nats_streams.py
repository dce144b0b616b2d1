"""deploy/docker/nats_streams.py (``rva-nats-streams`` in the image) against a real 3-node JetStream cluster:
the streams come out exactly as the services would create them, with 3 replicas, and one a service
created first with 1 replica is raised to 3."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_checks import DEPLOY

from services.common.servers import free_port, nats_server_binary


def script() -> Any:
    spec = importlib.util.spec_from_file_location("rva_nats_streams", DEPLOY / "docker" / "nats_streams.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[str]]:
    """Three clustered nats-server processes with JetStream on loopback; their client URLs."""
    nodes = [(free_port(), free_port(), free_port()) for _ in range(3)]
    routes = ", ".join(f"nats://127.0.0.1:{cluster}" for _, cluster, _ in nodes)
    procs = []
    try:
        for i, (client, cluster, monitor) in enumerate(nodes):
            conf = tmp_path / f"n{i}.conf"
            conf.write_text(
                f"server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n"
                f'jetstream {{ store_dir: "{tmp_path / f"js{i}"}" }}\n'
                f"cluster {{ name: rva, listen: 127.0.0.1:{cluster}, routes: [{routes}] }}\n"
            )
            log = (tmp_path / f"n{i}.log").open("w")
            procs.append(subprocess.Popen([nats_server_binary(), "-c", str(conf)], stdout=log, stderr=log))
        deadline = time.monotonic() + 30
        for _, _, monitor in nodes:  # /healthz answers 200 once JetStream has its meta leader
            while True:
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{monitor}/healthz", timeout=1).status == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "the NATS cluster did not form"
                time.sleep(0.1)
        yield [f"nats://127.0.0.1:{client}" for client, _, _ in nodes]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


async def streams(url: str) -> dict[str, Any]:
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        return {name: (await js.stream_info(name)).config for name in ("RVA_EVENTS", "RVA_WORK", "KV_RVA_TRACKING")}
    finally:
        await nc.close()


async def work_stream_as_a_service_makes_it(url: str) -> int:
    import nats

    from rva.config import load_config
    from services.common.work import ensure_work_stream

    cfg = load_config(DEPLOY / "config" / "rva.yaml").services.nats
    nc = await nats.connect(url)
    try:
        return int((await ensure_work_stream(nc.jetstream(), cfg)).config.num_replicas)
    finally:
        await nc.close()


def test_streams_get_three_replicas_and_the_services_settings(cluster: list[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from nats.js.api import RetentionPolicy

    from rva.config import load_config

    assert asyncio.run(work_stream_as_a_service_makes_it(cluster[1])) == 1
    monkeypatch.setenv("RVA_NATS_URL", cluster[0])
    config = str(DEPLOY / "config" / "rva.yaml")
    assert script().main(["--config", config, "--replicas", "3", "--deadline", "20"]) == 0
    assert script().main(["--config", config, "--replicas", "3", "--deadline", "20"]) == 0  # idempotent
    got = asyncio.run(streams(cluster[2]))
    assert {name: c.num_replicas for name, c in got.items()} == {"RVA_EVENTS": 3, "RVA_WORK": 3,
                                                                 "KV_RVA_TRACKING": 3}
    nats_cfg = load_config(config).services.nats
    assert got["RVA_EVENTS"].subjects == ["rva.>"]
    assert got["RVA_EVENTS"].max_age == pytest.approx(nats_cfg.events_max_age_s)
    assert got["RVA_WORK"].subjects == ["rva_work.>"]
    assert got["RVA_WORK"].retention == RetentionPolicy.WORK_QUEUE
    assert got["RVA_WORK"].max_bytes == nats_cfg.work_max_bytes
    assert got["KV_RVA_TRACKING"].max_msgs_per_subject == 1


def test_no_nats_and_a_bad_config_fail_with_their_own_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RVA_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    assert script().main(["--config", str(DEPLOY / "config" / "rva.yaml"), "--deadline", "0.5"]) == 1
    monkeypatch.setenv("RVA_NATS_URL", "http://nats:4222")
    assert script().main(["--config", str(DEPLOY / "config" / "rva.yaml")]) == 2
    assert "RVA_NATS_URL" in capsys.readouterr().err
