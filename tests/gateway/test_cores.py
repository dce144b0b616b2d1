"""The gateway's pure pieces: settings, alert rules, wait estimates, upload checks (no servers)."""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np
import pytest

from gateway.alerts import AlertEvaluator
from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.images import image_size, split_tiles
from gateway.ingest import inflate
from gateway.metrics import wait_estimate_s
from gateway.settings import GatewaySettings
from rva.config import AlertRuleConfig
from rva.errors import ConfigError

SECRET = "s" * 40


@pytest.mark.parametrize(("env", "error"), [
    ({}, "postgres_dsn"),
    ({"RVA_POSTGRES_DSN": "x"}, "jwt_secret: expected at least 32 bytes"),
    ({"RVA_POSTGRES_DSN": "x", "RVA_GATEWAY_JWT_SECRET": "short"}, "at least 32 bytes"),
    ({"RVA_POSTGRES_DSN": "x", "RVA_GATEWAY_JWT_SECRET": SECRET, "RVA_GATEWAY_JWT_ALGORITHMS": "HS256,RS256"},
     "algorithm confusion"),
    ({"RVA_POSTGRES_DSN": "x", "RVA_GATEWAY_JWT_ALGORITHMS": "RS256"}, "jwt_public_key"),
    ({"RVA_POSTGRES_DSN": "x", "RVA_GATEWAY_JWT_SECRET": SECRET, "RVA_GATEWAY_JWT_ALGORITHMS": "none"},
     "jwt_algorithms.0"),
    ({"RVA_POSTGRES_DSN": "x", "RVA_GATEWAY_JWT_SECRET": SECRET, "RVA_GATEWAY_RATE_LIMIT_USER": "fast"}, "JSON like"),
    ({"RVA_POSTGRES_DSN": "x", "RVA_GATEWAY_JWT_SECRET_FILE": "/nonexistent/secret"}, "cannot read"),
])
def test_bad_settings_fail_naming_the_field(env: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError, match=error.replace("(", r"\(")):
        GatewaySettings.from_env(env)


def test_settings_from_env_and_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "jwt"
    secret.write_text(SECRET + "\n")
    s = GatewaySettings.from_env({
        "RVA_POSTGRES_DSN": "postgresql://db/x", "RVA_NATS_URL": "nats://n:4222", "RVA_GATEWAY_JWT_SECRET": "ignored",
        "RVA_GATEWAY_JWT_SECRET_FILE": str(secret), "RVA_GATEWAY_RATE_LIMIT_USER": '{"rate": 5, "burst": 9}',
        "RVA_GATEWAY_CORS_ORIGINS": "https://a.example, https://b.example"})
    assert s.jwt_secret is not None and s.jwt_secret.get_secret_value() == SECRET  # the file wins
    assert (s.rate_limit_user.rate, s.rate_limit_user.burst) == (5, 9)
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.sinks == ("writers", "jetstream")
    assert SECRET not in repr(s)  # secrets never print


def rule(**kw: object) -> AlertRuleConfig:
    return AlertRuleConfig.model_validate({"name": "r", "cooldown_s": 60, **kw})


def live(waiting: int = 0, wait: float | None = 0.0, count: int = 0) -> dict[str, list[dict[str, object]]]:
    return {"queues": [{"camera": "c", "queue": "till", "waiting": waiting, "wait_estimate_s": wait}],
            "occupancy": [{"camera": "c", "zone": "z", "count": count}]}


@pytest.mark.parametrize(("r", "timeline", "fired_at"), [
    # (time, live view) -> times an alert fired
    (rule(kind="queue_length", threshold=3), [(0, live(4)), (1, live(5)), (61, live(4))], [0, 61]),  # cooldown
    (rule(kind="queue_length", threshold=3, for_s=10), [(0, live(4)), (5, live(4)), (10, live(4))], [10]),  # held
    (rule(kind="queue_length", threshold=3, for_s=10), [(0, live(4)), (5, live(1)), (12, live(4))], []),  # reset
    (rule(kind="queue_wait", threshold=120), [(0, live(2, 100.0)), (1, live(2, 130.0)), (2, live(2, None))], [1]),
    (rule(kind="occupancy"), [(0, live(count=9)), (1, live(count=11))], [1]),  # capacity 10 by default
    (rule(kind="occupancy", threshold=5, camera="other"), [(0, live(count=9))], []),  # another camera
    (rule(kind="occupancy", threshold=5, enabled=False), [(0, live(count=9))], []),
])
def test_live_rules(r: AlertRuleConfig, timeline: list[tuple[float, dict[str, object]]], fired_at: list[float]) -> None:
    ev = AlertEvaluator("s1", [r], {("c", "z"): 10})
    fired = [t for t, view in timeline for _ in ev.on_live(view, t)]
    assert fired == fired_at


def test_event_rules() -> None:
    ev = AlertEvaluator("s1", [rule(kind="dwell", threshold=300, target="z"),
                               rule(name="cam", kind="camera_offline")])
    exit_long = {"type": "zone_exit", "camera": "c", "zone": "z", "dwell_s": 400.0}
    assert [a.rule for a in ev.on_event(exit_long, 0)] == ["r"]
    assert ev.on_event({**exit_long, "zone": "other"}, 100) == []
    assert ev.on_event({**exit_long, "dwell_s": 30.0}, 100) == []
    offline = {"type": "source_state", "camera": "c", "attrs": {"state": "reconnecting"}}
    (alert,) = ev.on_event(offline, 5)
    assert alert.message == "camera c is reconnecting" and alert.severity == "warning"
    assert ev.on_event(offline, 6) == []  # within the cooldown
    assert ev.on_event({**offline, "attrs": {"state": "streaming"}}, 100) == []


@pytest.mark.parametrize(("waiting", "served", "window", "expected"), [
    (0, 0, 600, 0.0), (3, 0, 600, None), (3, 6, 600, 300.0), (1, 10, 600, 60.0), (2, 5, 0, None),
])
def test_wait_estimate(waiting: int, served: int, window: float, expected: float | None) -> None:
    assert wait_estimate_s(waiting, served, window) == expected


def test_image_headers_are_read_without_decoding() -> None:
    img = np.zeros((48, 64, 3), np.uint8)
    for ext in (".png", ".jpg"):
        data = cv2.imencode(ext, img)[1].tobytes()
        assert image_size(data) == (64, 48)
    assert image_size(b"GIF89a....") is None
    assert len(split_tiles(768, 576, 0.1)) == 4 and split_tiles(200, 100, 0.1) == []


@pytest.mark.parametrize(("body", "encoding", "error"), [
    (gzip.compress(b"x" * 100), "gzip", None),
    (b"plain", "identity", None),
    (gzip.compress(b"x" * 100)[:-8], "gzip", BadRequest),  # truncated
    (b"nope", "gzip", BadRequest),
    (gzip.compress(b"\0" * 10_000), "gzip", PayloadTooLarge),
    (b"x", "br", UnsupportedMediaType),
])
def test_inflate(body: bytes, encoding: str, error: type[Exception] | None) -> None:
    if error is None:
        assert len(inflate(body, encoding, 5000)) in (100, 5)
    else:
        with pytest.raises(error):
            inflate(body, encoding, 5000)
