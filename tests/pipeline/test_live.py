"""The standalone pipeline on live sources: a real RTSP server killed and restarted mid-run, and an
unreachable camera, while a second camera keeps running."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rva.config import OnnxDetectorConfig, RVAConfig
from rva.detect import Detector, create_detector
from rva.pipeline.runner import StandaloneRunner

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def detector() -> Detector:
    det = create_detector(OnnxDetectorConfig())
    yield det
    det.close()


def _config(live_url: str) -> RVAConfig:
    return RVAConfig.model_validate({
        "store": "test",
        "cameras": [
            {"id": "live", "source": {"type": "stream", "url": live_url, "backoff_initial_s": 0.25,
                                      "backoff_max_s": 1.0, "open_timeout_s": 3.0, "read_timeout_s": 2.0},
             "lines": [{"name": "lamp_post", "start": [380, 170], "end": [380, 330]}]},
            {"id": "file", "source": {"type": "file", "path": "sample", "loop": True, "realtime": True}},
        ],
        "output": {"annotated_video": False, "heatmap_png": False},
    })


def _events(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]


def test_rtsp_camera_comes_back_after_server_restart(
    rtsp_server: Any, detector: Detector, tmp_path: Path, vtest_path: Path
) -> None:
    frames: dict[str, list[float]] = {"live": [], "file": []}  # wall time of each analysed frame
    restarted_at: list[float] = []
    runner = StandaloneRunner(_config(rtsp_server.url), tmp_path, detector=detector)

    def outage() -> None:
        rtsp_server.kill()
        time.sleep(2.0)
        rtsp_server.start()
        restarted_at.append(time.monotonic())

    killer: list[threading.Thread] = []

    def progress(camera: str, done: int) -> None:
        frames[camera].append(time.monotonic())
        if camera == "live" and done == 20 and not killer:
            killer.append(threading.Thread(target=outage, daemon=True))
            killer[0].start()
        if restarted_at and camera == "live" and frames["live"][-1] > restarted_at[0] and done >= 45:
            runner.stop()

    runner.progress = progress
    watchdog = threading.Timer(150, runner.stop)
    watchdog.start()
    try:
        summary = runner.run()
    finally:
        watchdog.cancel()
    assert restarted_at, "the server was never restarted"
    after = [t for t in frames["live"] if t > restarted_at[0]]
    assert after, "the live camera never delivered after the restart"
    assert after[0] - restarted_at[0] < 5.0, "reconnect took longer than 5 s"
    # The file camera kept running through the outage.
    outage_start = restarted_at[0] - 2.0
    during = [t for t in frames["file"] if outage_start <= t <= restarted_at[0]]
    assert len(during) >= 5
    states = [e for e in _events(tmp_path) if e["type"] == "source_state" and e["camera"] == "live"]
    names = [e["attrs"]["state"] for e in states]
    assert "reconnecting" in names
    gaps = [e["attrs"]["gap_s"] for e in states if e["attrs"]["state"] == "streaming" and "gap_s" in e["attrs"]]
    assert gaps and gaps[-1] >= 1.5, "the outage is reported as a gap"
    assert summary["cameras"]["live"]["frames"] >= 45
    assert summary["cameras"]["file"]["frames"] > summary["cameras"]["live"]["frames"] * 0.5


def test_unreachable_camera_does_not_stall_the_others(
    free_port: Any, detector: Detector, tmp_path: Path, vtest_path: Path
) -> None:
    runner = StandaloneRunner(_config(f"rtsp://127.0.0.1:{free_port()}/none"), tmp_path, detector=detector)

    def progress(camera: str, done: int) -> None:
        if camera == "file" and done >= 30:
            runner.stop()

    runner.progress = progress
    watchdog = threading.Timer(120, runner.stop)
    watchdog.start()
    try:
        summary = runner.run()
    finally:
        watchdog.cancel()
    assert summary["cameras"]["file"]["frames"] >= 30
    assert summary["cameras"]["live"]["frames"] == 0
    assert summary["cameras"]["live"]["source"]["state"] == "reconnecting"
    retries = [e for e in _events(tmp_path) if e["camera"] == "live" and e["attrs"].get("state") == "reconnecting"]
    assert len(retries) >= 2, "backoff retries are reported"
    assert all("error" in e["attrs"] for e in retries)
