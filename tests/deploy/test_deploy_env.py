"""The env and config contract: what every manifest and compose service passes is what its program accepts.

Each container's ``RVA_*`` variables are applied the way the process applies them at start: the RVA
services' config file (from the ConfigMap or bind mount) + ``services.common.config.apply_env``, the
gateway's ``GatewaySettings.from_env`` (``*_FILE`` secrets read from the mounted Secret), the stores'
CLI options (click, with their ``envvar`` names). An unknown ``RVA_*`` variable, an invalid value or a
server name the deployment does not define fails the test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from deploy_checks import BUILDS, PROFILES, REPO, Container, active_services, compose_containers, k8s_containers, render
from deploy_load import GLOBAL_ENV, hosts_used, load


def k8s_hosts(build: str) -> set[str]:
    return {r["metadata"]["name"] for r in render(build) if r["kind"] == "Service"}


def compose_hosts(profile: str) -> set[str]:
    names = set()
    for name, svc in active_services(profile).items():
        names.add(name)
        for net in (svc.get("networks") or {}).values():
            names |= set((net or {}).get("aliases") or [])
    return names


def check(containers: list[Container], hosts: set[str], tmp: Path) -> tuple[list[str], int]:
    problems, programs = [], 0
    for c in containers:
        loaded = load(c, tmp)
        problems += loaded.problems
        programs += c.program is not None
        for what, (host, _) in hosts_used(loaded).items():
            if host not in hosts:
                problems.append(f"{c.where}: {what} names host {host!r}, which this deployment does not define")
    return problems, programs


@pytest.mark.parametrize("build", list(BUILDS))
def test_manifests_pass_what_the_programs_accept(build: str, tmp_path: Path) -> None:
    problems, programs = check(k8s_containers(build), k8s_hosts(build), tmp_path)
    assert not problems, "\n".join(problems)
    assert programs >= 6  # five pipeline services + the repository step, at least


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_passes_what_the_programs_accept(profile: str, tmp_path: Path) -> None:
    problems, programs = check(compose_containers(profile), compose_hosts(profile), tmp_path)
    assert not problems, "\n".join(problems)
    assert programs >= 4


def test_every_rva_program_of_the_deployments_is_covered() -> None:
    # every service with a config section runs somewhere, and every RVA program was recognised
    ran = {c.program for b in BUILDS for c in k8s_containers(b)} | {c.program for p in PROFILES
                                                                    for c in compose_containers(p)}
    expected = {f"services.{n}" for n in ("decode", "inference", "tracking", "analytics", "sync", "alerts")}
    assert expected | {"gateway", "rva.stores", "prepare_triton_repo", "rva-nats-streams"} <= ran


def test_global_variables_are_read_by_the_code() -> None:
    assets = (REPO / "rva" / "assets.py").read_text()
    for var in GLOBAL_ENV:
        assert f'"{var}"' in assets, f"{var} is no longer read by rva/assets.py: drop it from GLOBAL_ENV"


def _one(build: str, where_suffix: str) -> Container:
    return next(c for c in k8s_containers(build) if c.where.endswith(where_suffix))


def _with_env(c: Container, **env: str) -> Container:
    return dataclasses.replace(c, env={**c.env, **env})


@pytest.mark.parametrize(
    ("build", "container", "env", "expected"),
    [
        ("edge", "/decode/decode", {"RVA_DECODE_PORTT": "1"}, "unknown variable RVA_DECODE_PORTT"),
        ("edge", "/decode/decode", {"RVA_DECODE_PORT": "http"}, "services.decode.port"),
        ("edge", "/decode/decode", {"RVA_CAMERAS": "entrance,nope"}, "['nope'] are not in the config"),
        ("edge", "/decode/decode", {"RVA_DECODE_HOST": "127.0.0.1"}, "unreachable from outside"),
        ("edge", "/inference/inference", {"RVA_INFERENCE_DECODE_ADDRS": "decode"}, "expected host:port"),
        ("edge", "/sync/sync", {"RVA_SYNC_CLOUD_URL": "rva.example.com"}, "expected an http(s):// URL"),
        ("cloud", "/gateway/gateway", {"RVA_GATEWAY_RATE_LIMIT": "{}"}, "unknown variable RVA_GATEWAY_RATE_LIMIT"),
        ("cloud", "/gateway/gateway", {"RVA_GATEWAY_JWT_ALGORITHMS": "none"}, "jwt_algorithms"),
        ("cloud", "/gateway/gateway", {"RVA_GATEWAY_JWT_SECRET_FILE": "/etc/jwt"}, "not a file mounted"),
        ("cloud", "/stores-postgres/stores-postgres", {"RVA_TENANTS": "x"}, "unknown variable RVA_TENANTS"),
        ("cloud", "/stores-redis/stores-redis", {"RVA_NATS_URL": "http://nats"}, "RVA_NATS_URL"),
        ("cloud", "/stores-clickhouse/stores-clickhouse", {"RVA_CLICKHOUSE_URL": "tcp://ch:9000"}, "CLICKHOUSE_URL"),
        ("cloud", "/stores-postgres/stores-postgres", {"RVA_POSTGRES_DSN": "host=db sslmod=off"}, "POSTGRES_DSN"),
        ("cloud", "/triton/model-repository", {"RVA_DETECTOR_URL": "x:1"}, "unknown variable RVA_DETECTOR_URL"),
    ],
)
def test_a_bad_variable_is_caught(build: str, container: str, env: dict[str, str], expected: str,
                                  tmp_path: Path) -> None:
    problems = load(_with_env(_one(build, container), **env), tmp_path).problems
    assert any(expected in p for p in problems), problems


def test_a_wrong_model_or_missing_config_mount_is_caught(tmp_path: Path) -> None:
    repo = _one("edge", "/triton/model-repository")
    argv = [a if a != "rva_detector_onnx_trt" else "rva_detector_trt" for a in repo.argv]
    problems = load(dataclasses.replace(repo, argv=argv), tmp_path).problems
    assert any("calls 'rva_detector_onnx_trt'" in p for p in problems)
    decode = _one("edge", "/decode/decode")
    assert any("not a file mounted" in p for p in load(dataclasses.replace(decode, files={}), tmp_path).problems)
    stray = dataclasses.replace(decode, argv=["nats-server"], env={"RVA_NATS_URL": "nats://x:4222"})
    assert any("runs no RVA program" in p for p in load(stray, tmp_path).problems)


def test_an_undefined_host_is_caught(tmp_path: Path) -> None:
    c = _with_env(_one("edge", "/inference/inference"), RVA_DETECTOR_URL="tritonn:8001")
    problems, _ = check([c], k8s_hosts("edge"), tmp_path)
    assert any("'tritonn'" in p for p in problems), problems


def test_an_override_keeps_the_alert_sinks_secrets(tmp_path: Path) -> None:
    """The edge config has a webhook secret and sync has RVA_SYNC_* overrides: both must survive."""
    sync = _one("edge", "/sync/sync")
    assert "secret: \"${ALERT_WEBHOOK_SECRET" in sync.files["/etc/rva/rva.yaml"]
    loaded = load(sync, tmp_path)
    assert not loaded.problems, loaded.problems
