"""What tests/deploy shares: the rendered manifests and compose file, and each container's program, env and config.

Nothing here runs a container: a deployment is checked by loading what its containers would load
(the RVA config file with its ``RVA_*`` overrides, the gateway's settings, the stores' CLI options)
with the same code the processes run.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import shlex
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
K8S_VERSION = "1.30"  # the Kubernetes JSON schema kubernetes-validate validates against (strict)
#: Kustomizations rendered by the tests: name -> (directory, components applied on top).
BUILDS: dict[str, tuple[Path, tuple[str, ...]]] = {
    "base": (K8S / "base", ()),
    "edge": (K8S / "overlays" / "edge", ()),
    "cloud": (K8S / "overlays" / "cloud", ()),
    "cloud+nvdec": (K8S / "overlays" / "cloud", ("components/nvdec",)),
}
PROFILES = ("edge", "cloud")


def kustomize() -> Any:
    """deploy/kustomize.py as a module (deploy/ is not a package)."""
    if "rva_deploy_kustomize" not in sys.modules:
        spec = importlib.util.spec_from_file_location("rva_deploy_kustomize", DEPLOY / "kustomize.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["rva_deploy_kustomize"]


@cache
def render(name: str) -> tuple[dict[str, Any], ...]:
    """The resources of one of :data:`BUILDS` (cached; callers must not modify them)."""
    directory, components = BUILDS[name]
    k = kustomize()
    if not components:
        return tuple(k.build(directory))
    rel = directory.relative_to(K8S)
    return tuple(k.build_inline({"resources": [str(rel)], "components": list(components)}, K8S))


@cache
def example_secrets() -> dict[tuple[str, str], dict[str, str]]:
    """``(namespace, name) -> {key: value}`` of deploy/k8s/secrets.example.yaml."""
    out = {}
    for doc in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()):
        out[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = dict(doc["stringData"])
    return out


# --- compose ---------------------------------------------------------------------------------------------------------

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``..."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def repl(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4)
        have = env.get(name)
        present = bool(have) if op in (":-", ":?") else have is not None
        if op in (":-", "-"):
            return have if present else arg  # type: ignore[return-value]
        if op in (":?", "?"):
            if not present:
                raise KeyError(f"compose: required variable {name} is missing: {arg}")
            return have  # type: ignore[return-value]
        if have is None:
            raise KeyError(f"compose: variable {name} is not set (and has no default)")
        return have

    return _VAR.sub(repl, value)


@cache
def dotenv() -> dict[str, str]:
    """deploy/compose/.env.example: what ``cp .env.example .env`` gives compose."""
    out = {}
    for line in (COMPOSE_DIR / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


@cache
def compose_raw() -> dict[str, Any]:
    """The compose file as YAML (merge keys resolved, variables not interpolated)."""
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


@cache
def compose() -> dict[str, Any]:
    """The compose file as compose sees it with .env.example: interpolated."""
    return dict(interpolate(compose_raw(), dotenv()))


def active_services(*profiles: str) -> dict[str, dict[str, Any]]:
    """Services compose starts with ``--profile P`` for each of ``profiles``."""
    services = compose()["services"]
    return {name: s for name, s in services.items() if not s.get("profiles") or set(profiles) & set(s["profiles"])}


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment as a mapping."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


@cache
def image_env() -> dict[str, str]:
    """``ENV`` of the RVA image's final stage (deploy/docker/Dockerfile)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    final = text.split("\nFROM ")[-1]
    out: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, _, value = item.partition("=")
                out[key] = value
    return out


# --- containers ------------------------------------------------------------------------------------------------------


@dataclass
class Container:
    """One container of a manifest or compose service, as the tests see it.

    Attributes:
        where: ``build/Kind/name/container`` or ``compose:<profile>/<service>``.
        argv: Command line (command + args).
        env: Environment, with secrets and field refs resolved to example values.
        files: Paths in the container -> file contents (config files, secret files).
        image: The container image.
        pod: The pod spec (Kubernetes) or compose service.
        container: The container (Kubernetes).
        labels: The pod's labels (Kubernetes).

    """

    where: str
    argv: list[str]
    env: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)
    image: str = ""
    pod: dict[str, Any] = field(default_factory=dict)
    container: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def program(self) -> str | None:
        """``services.<name>``, ``rva.stores``, ``gateway``, ``prepare_triton_repo`` or None (not RVA code)."""
        argv = self.argv
        if argv[:1] == ["rva-nats-streams"]:  # deploy/docker/nats_streams.py in the image
            return "rva-nats-streams"
        if len(argv) >= 3 and argv[0] in ("python", "python3") and argv[1] == "-m":
            return argv[2]
        if len(argv) >= 2 and argv[0] in ("python", "python3") and argv[1].endswith("prepare_triton_repo.py"):
            return "prepare_triton_repo"
        return None

    @property
    def args(self) -> list[str]:
        """Arguments after the program."""
        if self.argv[:1] == ["rva-nats-streams"]:
            return self.argv[1:]
        return self.argv[3:] if self.argv[1:2] == ["-m"] else self.argv[2:]


def k8s_containers(build: str) -> list[Container]:
    """Every container (init containers too) of one rendered build, env and mounted files resolved."""
    k = kustomize()
    resources = render(build)
    config_maps = {(r["metadata"].get("namespace"), r["metadata"]["name"]): r.get("data", {})
                   for r in resources if r["kind"] == "ConfigMap"}
    out = []
    for res in resources:
        ns = res["metadata"].get("namespace")
        labels = next(iter(k.pod_templates(copy.deepcopy(res))), {}).get("metadata", {}).get("labels", {})
        for spec in k.pod_specs(res):
            volumes = {v["name"]: v for v in spec.get("volumes") or []}
            for c in k.containers(spec):
                env = {}
                for item in c.get("env") or []:
                    env[item["name"]] = _env_value(item, ns, config_maps)
                files = {}
                for mount in c.get("volumeMounts") or []:
                    files.update(_mounted_files(volumes.get(mount["name"]), mount, ns, config_maps))
                out.append(Container(
                    where=f"{build}/{res['kind']}/{res['metadata']['name']}/{c['name']}",
                    argv=[str(a) for a in (c.get("command") or []) + (c.get("args") or [])],
                    env=env, files=files, image=c["image"], pod=spec, container=c, labels=labels,
                ))
    return out


def _env_value(item: dict[str, Any], ns: str | None, config_maps: dict[Any, dict[str, str]]) -> str:
    if "value" in item:
        return str(item["value"])
    source = item["valueFrom"]
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        return example_secrets()[(ns or "", ref["name"])][ref["key"]]
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        return config_maps[(ns, ref["name"])][ref["key"]]
    if "fieldRef" in source:
        return "rva-pod-0"
    raise AssertionError(f"unsupported env source {source}")


def _mounted_files(volume: dict[str, Any] | None, mount: dict[str, Any], ns: str | None,
                   config_maps: dict[Any, dict[str, str]]) -> dict[str, str]:
    if volume is None:
        return {}
    if "configMap" in volume:
        data = config_maps.get((ns, volume["configMap"]["name"]), {})
        items = volume["configMap"].get("items")
    elif "secret" in volume:
        data = example_secrets().get((ns or "", volume["secret"]["secretName"]), {})
        items = volume["secret"].get("items")
    else:
        return {}
    paths = {i["path"]: data[i["key"]] for i in items} if items else dict(data)
    if "subPath" in mount:
        return {mount["mountPath"]: paths[mount["subPath"]]}
    return {f"{mount['mountPath'].rstrip('/')}/{p}": v for p, v in paths.items()}


def compose_containers(profile: str) -> list[Container]:
    """Every service of a compose profile as a container: env (image ENV + environment), bind-mounted files."""
    top = compose()
    secrets_top = top.get("secrets") or {}
    out = []
    for name, svc in active_services(profile).items():
        is_rva = str(svc.get("image", "")).startswith("rva:")
        env = {**(image_env() if is_rva else {}), **compose_env(svc)}
        files = {}
        for vol in svc.get("volumes") or []:
            src, _, rest = str(vol).partition(":")
            dst = rest.split(":")[0]
            if src.startswith((".", "/")) and (COMPOSE_DIR / src).resolve().is_file():
                files[dst] = (COMPOSE_DIR / src).resolve().read_text()
        for secret in svc.get("secrets") or []:
            sname = secret if isinstance(secret, str) else secret["source"]
            files[f"/run/secrets/{sname}"] = dotenv()[secrets_top[sname]["environment"]]
        command = svc.get("command") or []
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        out.append(Container(where=f"compose:{profile}/{name}", argv=argv, env=env, files=files,
                             image=str(svc.get("image", "")), pod=svc))
    return out


