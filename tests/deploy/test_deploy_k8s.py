"""deploy/k8s: every kustomization renders (deploy/kustomize.py), validates against the Kubernetes 1.30
JSON schema (kubernetes-validate, strict: unknown fields fail, no CRDs), and holds together: selectors,
references, probes on the services' configured ports, GPUs, HPAs, namespaces."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_checks import BUILDS, DEPLOY, K8S, K8S_VERSION, example_secrets, k8s_containers, kustomize, render
from deploy_load import hosts_used, load
from deploy_metrics import exported_metrics

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
OVERLAYS = [b for b in BUILDS if b != "base"]


def of_kind(build: str, *kinds: str) -> list[dict[str, Any]]:
    return [r for r in render(build) if r["kind"] in kinds]


def template(res: dict[str, Any]) -> dict[str, Any]:
    return next(iter(kustomize().pod_templates(copy.deepcopy(res))))


def pod_labels(build: str) -> list[dict[str, str]]:
    return [template(r).get("metadata", {}).get("labels", {}) for r in of_kind(build, *WORKLOADS)]


def selects(selector: dict[str, str], labels: list[dict[str, str]]) -> bool:
    return any(all(lab.get(k) == v for k, v in selector.items()) for lab in labels)


@pytest.mark.parametrize("build", list(BUILDS))
def test_every_resource_validates_against_the_kubernetes_schema(build: str) -> None:
    errors = []
    for res in render(build):
        try:
            kubernetes_validate.validate(res, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            errors.append(f"{res['kind']}/{res['metadata']['name']}: {'.'.join(map(str, err.path))}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError as err:  # a CRD or a typo in apiVersion/kind
            errors.append(err.message)
    assert not errors, "\n".join(errors)


def test_the_schema_check_is_strict() -> None:
    deployment = copy.deepcopy(of_kind("base", "Deployment")[0])
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment = copy.deepcopy(of_kind("base", "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {"grpc": {"port": "grpc"}}
    with pytest.raises(kubernetes_validate.ValidationError):  # grpc probes take a port number only
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize("build", list(BUILDS))
def test_selectors_match_the_pods(build: str) -> None:
    labels = pod_labels(build)
    problems = []
    for res in of_kind(build, "Deployment", "StatefulSet", "DaemonSet"):
        wanted = res["spec"]["selector"]["matchLabels"]
        if not selects(wanted, [template(res)["metadata"]["labels"]]):
            problems.append(f"{res['kind']}/{res['metadata']['name']}: selector {wanted} misses its own pods")
    for res in of_kind(build, "Service"):
        if not selects(res["spec"]["selector"], labels):
            problems.append(f"Service/{res['metadata']['name']}: selects no pod")
    for res in of_kind(build, "PodDisruptionBudget"):
        if not selects(res["spec"]["selector"]["matchLabels"], labels):
            problems.append(f"PodDisruptionBudget/{res['metadata']['name']}: selects no pod")
    for res in of_kind(build, "NetworkPolicy"):
        spec = res["spec"]
        peers = [p for rule in spec.get("ingress") or [] for p in rule.get("from") or []]
        for sel in [spec["podSelector"], *(p["podSelector"] for p in peers if "podSelector" in p)]:
            if sel.get("matchLabels") and not selects(sel["matchLabels"], labels):
                problems.append(f"NetworkPolicy/{res['metadata']['name']}: {sel['matchLabels']} selects no pod")
    names = {(r["kind"], r["metadata"]["name"]) for r in render(build)}
    for res in of_kind(build, "HorizontalPodAutoscaler"):
        ref = res["spec"]["scaleTargetRef"]
        if (ref["kind"], ref["name"]) not in names:
            problems.append(f"HorizontalPodAutoscaler/{res['metadata']['name']}: no {ref['kind']}/{ref['name']}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("build", list(BUILDS))
def test_references_resolve(build: str) -> None:
    k = kustomize()
    resources = render(build)
    config_maps = {r["metadata"]["name"]: r.get("data", {}) for r in resources if r["kind"] == "ConfigMap"}
    problems = []
    for res in of_kind(build, *WORKLOADS):
        ns = res["metadata"].get("namespace", "")
        name = f"{res['kind']}/{res['metadata']['name']}"
        spec = next(k.pod_specs(res))
        for kind, holder, key in k.config_refs(copy.deepcopy(spec)):
            if kind == "ConfigMap" and holder[key] not in config_maps:
                problems.append(f"{name}: no ConfigMap {holder[key]}")
            if kind == "Secret":
                keys = [holder["key"]] if "key" in holder else [i["key"] for i in holder.get("items") or []]
                secret = example_secrets().get((ns, holder[key]))
                if secret is None or not set(keys) <= set(secret):
                    problems.append(f"{name}: Secret {ns}/{holder[key]} keys {keys} not in secrets.example.yaml")
        claims = {t["metadata"]["name"] for t in res["spec"].get("volumeClaimTemplates") or []}
        volumes = {v["name"] for v in spec.get("volumes") or []} | claims
        ports = {p["name"] for c in k.containers(spec) for p in c.get("ports") or [] if "name" in p}
        for c in k.containers(spec):
            for mount in c.get("volumeMounts") or []:
                if mount["name"] not in volumes:
                    problems.append(f"{name}/{c['name']}: mounts undeclared volume {mount['name']}")
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = next((v.get("port") for v in (c.get(probe) or {}).values() if isinstance(v, dict)), None)
                if isinstance(port, str) and port not in ports:
                    problems.append(f"{name}/{c['name']}: {probe} on unknown port name {port}")
    for svc in of_kind(build, "Service"):
        backing = [r for r in of_kind(build, *WORKLOADS)
                   if selects(svc["spec"]["selector"], [template(r)["metadata"]["labels"]])]
        ports = {p.get("name") for r in backing for c in k.containers(next(k.pod_specs(r)))
                 for p in c.get("ports") or []}
        for port in svc["spec"]["ports"]:
            if isinstance(port.get("targetPort"), str) and port["targetPort"] not in ports:
                problems.append(f"Service/{svc['metadata']['name']}: targetPort {port['targetPort']} not on its pods")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("build", list(BUILDS))
def test_containers_request_resources_and_drop_privileges(build: str) -> None:
    problems = []
    for c in k8s_containers(build):
        res = c.container.get("resources") or {}
        if not {"cpu", "memory"} <= set(res.get("requests") or {}) or "memory" not in (res.get("limits") or {}):
            problems.append(f"{c.where}: needs requests cpu+memory and a memory limit, has {res}")
        tag = c.image.rsplit("/", 1)[-1]
        if ":" not in tag or tag.endswith(":latest"):
            problems.append(f"{c.where}: image {c.image} is not pinned")
        if c.program and (c.container.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False:
            problems.append(f"{c.where}: RVA containers run with allowPrivilegeEscalation: false")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("build", list(BUILDS))
def test_services_are_probed_and_scraped_on_their_configured_ports(build: str, tmp_path: Path) -> None:
    annotations = {f"{build}/{r['kind']}/{r['metadata']['name']}": template(r)["metadata"].get("annotations", {})
                   for r in of_kind(build, *WORKLOADS)}
    problems, checked = [], 0
    for c in k8s_containers(build):
        if not (c.program or "").startswith("services."):
            continue
        loaded = load(c, tmp_path)
        port, metrics = loaded.params["port"], loaded.params["metrics_port"]
        checked += 1
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if (c.container.get(probe) or {}).get("grpc", {}).get("port") != port:
                problems.append(f"{c.where}: {probe} is not a grpc probe on the service's port {port}")
        declared = {p["containerPort"] for p in c.container.get("ports") or []}
        if not {port, metrics} <= declared:
            problems.append(f"{c.where}: ports {declared} lack gRPC {port} or metrics {metrics}")
        pod = annotations[c.where.rsplit("/", 1)[0]]
        if pod.get("prometheus.io/scrape") != "true" or pod.get("prometheus.io/port") != str(metrics):
            problems.append(f"{c.where}: pod annotations {pod} do not point Prometheus at {metrics}")
    assert checked >= 5
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("build", list(BUILDS))
def test_gpus_are_requested_where_the_work_is(build: str) -> None:
    gpu = set()
    for c in k8s_containers(build):
        res = c.container.get("resources") or {}
        if "nvidia.com/gpu" in res.get("limits", {}) or "nvidia.com/gpu" in res.get("requests", {}):
            assert res["limits"]["nvidia.com/gpu"] == res["requests"]["nvidia.com/gpu"] == "1", c.where
            gpu.add(c.where.split("/", 2)[2])
    expected = {"triton/triton"} | ({"decode/decode"} if build.endswith("+nvdec") else set())
    assert gpu == expected


@pytest.mark.parametrize("build", OVERLAYS)
def test_overlays_set_namespace_and_registry(build: str) -> None:
    resources = render(build)
    namespaces = [r["metadata"]["name"] for r in resources if r["kind"] == "Namespace"]
    assert len(namespaces) == 1
    for res in resources:
        if res["kind"] != "Namespace":
            assert res["metadata"].get("namespace") == namespaces[0], res["metadata"]
        assert res["metadata"]["labels"]["app.kubernetes.io/part-of"] == "rva"
    rva_images = {c.image for c in k8s_containers(build) if c.program}
    assert rva_images == {"registry.example.com/rva/rva:0.1.0"}


def test_edge_keeps_one_triton_on_its_gpu() -> None:
    assert not [h for h in of_kind("edge", "HorizontalPodAutoscaler") if h["metadata"]["name"] == "triton"]
    triton = next(d for d in of_kind("edge", "Deployment") if d["metadata"]["name"] == "triton")
    assert triton["spec"]["strategy"] == {"type": "Recreate"}
    assert any(s["metadata"]["name"] == "sync" for s in of_kind("edge", "StatefulSet"))


def test_cloud_autoscales_on_cpu_and_on_the_inference_queue() -> None:
    hpas = {h["metadata"]["name"]: h for h in of_kind("cloud", "HorizontalPodAutoscaler")}
    assert all(h["apiVersion"] == "autoscaling/v2" for h in hpas.values())
    kinds = {m["type"] for h in hpas.values() for m in h["spec"]["metrics"]}
    assert {"Resource", "External"} <= kinds
    assert hpas["triton"]["spec"]["maxReplicas"] == 8  # the JSON 6902 patch of the overlay
    adapter = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter-values.yaml").read_text())
    served = {rule["name"]["as"]: rule for rule in adapter["rules"]["external"]}
    for h in hpas.values():
        for m in h["spec"]["metrics"]:
            if m["type"] == "External":
                name = m["external"]["metric"]["name"]
                assert name in served, f"HPA {h['metadata']['name']}: the adapter serves no {name}"
                series = served[name]["seriesQuery"].split("{")[0].strip("'\" ")
                assert series in exported_metrics(), f"{series} is not exported by the code"


def test_generated_config_maps_hold_the_files() -> None:
    def config(build: str) -> str:
        return next(r for r in render(build) if r["metadata"]["name"].startswith("rva-config-"))["data"]["rva.yaml"]

    assert config("base") == (DEPLOY / "config" / "rva.yaml").read_text()
    assert config("edge") == (K8S / "overlays" / "edge" / "rva.yaml").read_text()
    assert config("cloud") == (DEPLOY / "config" / "rva.yaml").read_text()
    dashboards = next(r for r in render("cloud") if r["metadata"]["name"].startswith("rva-grafana-dashboards-"))
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(dashboards["data"]) == {p.name for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}


def test_the_cli_prints_what_build_returns(capsys: pytest.CaptureFixture[str]) -> None:
    k = kustomize()
    assert k.main(["build", str(K8S / "overlays" / "edge")]) == 0
    printed = list(yaml.safe_load_all(capsys.readouterr().out))
    assert printed == list(render("edge"))


def _allows(policy: dict[str, Any], client: dict[str, str], port: int, port_names: set[str]) -> bool:
    for rule in policy["spec"].get("ingress") or []:
        peers = rule.get("from")
        peer_ok = not peers or any(
            "podSelector" in peer and "namespaceSelector" not in peer
            and all(client.get(k) == v for k, v in (peer["podSelector"].get("matchLabels") or {}).items())
            for peer in peers)
        ports = rule.get("ports")
        port_ok = not ports or any(p.get("port") == port or p.get("port") in port_names for p in ports)
        if peer_ok and port_ok:
            return True
    return False


@pytest.mark.parametrize("build", list(BUILDS))
def test_network_policies_allow_every_connection_the_programs_make(build: str, tmp_path: Path) -> None:
    k = kustomize()
    services = {s["metadata"]["name"]: s for s in of_kind(build, "Service")}
    workloads = of_kind(build, *WORKLOADS)
    policies = of_kind(build, "NetworkPolicy")
    problems, checked = [], 0
    for c in k8s_containers(build):
        for what, (host, port) in hosts_used(load(c, tmp_path)).items():
            svc = services.get(host)
            if svc is None:
                continue  # outside the cluster (the cloud gateway of an edge); test_deploy_env checks names
            sport = next((p for p in svc["spec"]["ports"] if p["port"] == port), None)
            if sport is None:
                problems.append(f"{c.where}: {what} uses {host}:{port}, a port Service {host} does not expose")
                continue
            for target in workloads:
                labels = template(target)["metadata"]["labels"]
                if not selects(svc["spec"]["selector"], [labels]):
                    continue
                cports = [p for ct in k.containers(next(k.pod_specs(target))) for p in ct.get("ports") or []]
                match = [p for p in cports if sport["targetPort"] in (p.get("name"), p["containerPort"])]
                if not match:
                    problems.append(f"{c.where}: Service {host} port {port} reaches no container port")
                    continue
                number, names = match[0]["containerPort"], {p.get("name") for p in match}
                selecting = [pol for pol in policies if all(
                    labels.get(key) == v for key, v in (pol["spec"]["podSelector"].get("matchLabels") or {}).items())]
                checked += 1
                if selecting and not any(_allows(pol, c.labels, number, names) for pol in selecting):
                    problems.append(f"{c.where}: {what} -> {host}:{port} is denied by the NetworkPolicies "
                                    f"{[p['metadata']['name'] for p in selecting]}")
    assert checked >= 10
    assert not problems, "\n".join(problems)
