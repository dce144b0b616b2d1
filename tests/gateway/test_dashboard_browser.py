"""The dashboard in Debian's chromium (Playwright) while a real demo stream runs: live numbers change.

The stream: the standalone runner over the first 100 frames of vtest.avi (real detector, tracker,
analytics), replayed in real time into a gateway started as ``python -m gateway serve`` through the
ingest endpoint, as an edge box would upload it. Screenshots go to out/test-artifacts/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from gateway_env import JWT_SECRET, REPO, fresh_database, reset_stream, save_artifact, seed_tenants

from gateway.auth import JwtVerifier
from gateway.demo import Recording, Replayer, record
from gateway.settings import GatewaySettings
from rva.config import load_config
from rva.stores.servers import LocalServer, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def recording(vtest_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    config = load_config(REPO / "rva" / "configs" / "vtest.yaml")
    return record(config, tmp_path_factory.mktemp("demo"), max_frames=100, heat_every_s=2.0)


@dataclass
class Served:
    url: str
    settings: GatewaySettings
    api_key: str


@pytest.fixture(scope="module")
def gateway_process(pg_server: LocalServer, redis_server: LocalServer, nats_server: LocalServer,
                    recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with redis.Redis.from_url(redis_server.url) as r:
        r.flushall()
    reset_stream(nats_server.url)
    with fresh_database(pg_server) as dsn:
        seed_tenants(dsn)
        port = free_port()
        env = {**os.environ, "RVA_POSTGRES_DSN": dsn, "RVA_REDIS_URL": redis_server.url,
               "RVA_NATS_URL": nats_server.url, "RVA_CLICKHOUSE_URL": f"chdb://{tmp_path_factory.mktemp('chdb')}",
               "RVA_GATEWAY_JWT_SECRET": JWT_SECRET, "RVA_GATEWAY_WS_LIVE_INTERVAL_S": "0.5",
               # the replayed recording ran without this store's rules: the gateway evaluates them
               "RVA_GATEWAY_ALERTS_SOURCE": "gateway"}
        log = (tmp_path_factory.mktemp("gw") / "gateway.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--port", str(port)], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "gateway did not start"
                time.sleep(0.2)
            settings = GatewaySettings(postgres_dsn=dsn, jwt_secret=JWT_SECRET)
            yield Served(url, settings, _bootstrap(url, settings))
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


def _bootstrap(url: str, settings: GatewaySettings) -> str:
    """The demo store with the vtest config, alert rules, and a device key for the feeder."""
    h = {"Authorization": f"Bearer {JwtVerifier(settings).mint('setup', 'acme', 'admin')}"}
    assert httpx.post(f"{url}/v1/stores", json={"id": "demo", "name": "Campus demo"}, headers=h).status_code == 201
    cfg = load_config(REPO / "rva" / "configs" / "vtest.yaml")
    cams = [c.model_dump(mode="json") for c in cfg.cameras]
    rules = [{"name": "busy_zone", "kind": "occupancy", "threshold": 1, "severity": "warning", "cooldown_s": 5},
             {"name": "long_queue", "kind": "queue_length", "threshold": 0, "severity": "critical"}]
    doc = {"cameras": cams, "alert_rules": rules, "funnel": ["upper_path", "walkway_east", "lawn"]}
    assert httpx.put(f"{url}/v1/stores/demo/config", json=doc, headers=h).status_code == 200
    r = httpx.post(f"{url}/v1/stores/demo/api-keys", json={"name": "demo edge"}, headers=h)
    assert r.status_code == 201
    return str(r.json()["token"])


def _values(page: Any) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-testid]')]
        .filter(e => /^(occupancy|queue|line)-|^(total-occupancy|events-count)$/.test(e.dataset.testid))
        .map(e => [e.dataset.testid, e.textContent]))""")


def test_dashboard_shows_live_numbers_changing(gateway_process: Served, recording: Recording,
                                               tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    served = gateway_process
    viewer = JwtVerifier(served.settings).mint("manager", "acme", "viewer", ttl_s=3600)
    replayer = Replayer(served.url, served.api_key, "demo")
    snapshot = replayer.upload_background(recording)
    assert snapshot["privacy"] == "blur_people"
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{served.url}/dashboard/demo#token={viewer}")
        page.wait_for_selector("[data-testid=connection].conn-on", timeout=20_000)
        assert "token=" not in page.url  # the token left the address bar
        assert page.text_content("#store-name") == "Campus demo"
        before = _values(page)
        assert before["events-count"] == "0" and before["total-occupancy"] == "0"
        feeder = threading.Thread(target=replayer.play, args=(recording,), daemon=True)
        feeder.start()
        seen: list[dict[str, str]] = [before]
        started = time.monotonic()
        shot = False
        while feeder.is_alive() and time.monotonic() < started + 120:
            page.wait_for_timeout(250)
            now = _values(page)
            if now != seen[-1]:
                seen.append(now)
            if not shot and now["total-occupancy"] != "0" and time.monotonic() > started + 5:
                shot = True  # mid-stream, with people in the zones: what a manager sees
                page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
                page.set_viewport_size({"width": 1280, "height": 900})
                page.screenshot(path=str(tmp_path / "desktop.png"), full_page=True)
                page.set_viewport_size({"width": 390, "height": 844})
        feeder.join(60)
        expected = sum(1 for e in recording.events)
        deadline = time.monotonic() + 60  # a loaded box may deliver the tail late; nothing may be lost
        while _values(page)["events-count"] != str(expected) and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        page.wait_for_timeout(1500)  # the last metrics refresh
        after = _values(page)
        page.screenshot(path=str(tmp_path / "phone-end.png"), full_page=True)
        heat_width = page.evaluate("document.getElementById('heatmap').naturalWidth")
        funnel = page.locator("#funnel .step").count()
        alerts = page.locator("#alerts li:not(.muted)").count()
        browser.close()
    assert shot, seen
    save_artifact(tmp_path / "phone.png", "gateway-dashboard-phone.png")
    save_artifact(tmp_path / "desktop.png", "gateway-dashboard-desktop.png")
    save_artifact(tmp_path / "phone-end.png", "gateway-dashboard-phone-end.png")
    assert int(after["events-count"]) == expected, (after, replayer.sent)
    occupancy_changes = {v["total-occupancy"] for v in seen}
    assert len(occupancy_changes) >= 3, seen  # people came and went, live
    assert len(seen) >= 6  # the numbers moved many times while the stream ran
    assert heat_width == 768  # the heatmap over the (blurred) camera view
    assert funnel == 3 and alerts >= 1
    assert not errors, errors
