"""What tests/deploy shares: the rendered manifests and compose file, and each container's program, env and config.

Nothing here runs a container: a deployment is checked by loading what its containers would load
(the RVA config file with its ``RVA_*`` overrides, the gateway's settings, the stores' CLI options)
with the same code the processes run.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import re
import shlex
import sys
from collections.abc import Iterator
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


# --- what each program would load ------------------------------------------------------------------------------------

#: ``RVA_*`` variables read by any RVA process (rva/assets.py: the model and sample cache, the sample clip).
GLOBAL_ENV = frozenset({"RVA_CACHE", "RVA_SAMPLE_VIDEO"})


@contextlib.contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` is exactly ``env`` inside the ``with`` (config interpolation and click read it)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Loaded:
    """What a container's process would run with, or the problems that would stop it."""

    problems: list[str]
    config: Any = None  # RVAConfig for services and prepare_triton_repo
    settings: Any = None  # GatewaySettings
    params: dict[str, Any] = field(default_factory=dict)  # parsed CLI options (gateway, stores, services)


def _service_args(args: list[str]) -> dict[str, Any]:
    """``python -m services.<name>``'s flags (services/common/runtime.py main())."""
    import argparse

    parser = argparse.ArgumentParser(exit_on_error=False, add_help=False)
    parser.add_argument("--config", required=True)
    parser.add_argument("--cameras")
    parser.add_argument("--port", type=int)
    return vars(parser.parse_args(args))


def load(c: Container, tmp: Path) -> Loaded:
    """Load what the container's program would load at start, with its env; collect every problem."""
    program = c.program
    rva_vars = sorted(v for v in c.env if v.startswith("RVA_"))
    if program is None:
        return Loaded([f"{c.where}: sets {rva_vars} but runs no RVA program"] if rva_vars else [])
    if program.startswith("services."):
        return _load_service(c, tmp, program.removeprefix("services."))
    if program == "prepare_triton_repo":
        return _load_triton_repo(c, tmp)
    if program == "rva-nats-streams":
        return _load_nats_streams(c, tmp)
    if program == "gateway":
        return _load_gateway(c, tmp)
    if program == "rva.stores":
        return _load_stores(c)
    return Loaded([f"{c.where}: unknown program {program}"])


def interpolated(text: str) -> set[str]:
    """Variables a config file reads through ``${VAR}`` / ``${VAR:-default}`` (rva.config's interpolation)."""
    from rva.config import _ENV

    return {m.group(1) for m in _ENV.finditer(text)}


def _config(c: Container, tmp: Path, path: str | None) -> tuple[Any, list[str]]:
    from rva.config import load_config
    from rva.errors import ConfigError

    if not path or path not in c.files:
        return None, [f"{c.where}: config {path} is not a file mounted in the container ({sorted(c.files)})"]
    local = tmp / re.sub(r"[^A-Za-z0-9_.-]", "_", c.where)
    local.write_text(c.files[path])
    try:
        with environ(c.env):
            return load_config(local), []
    except ConfigError as err:
        return None, [f"{c.where}: {err}"]


def _load_service(c: Container, tmp: Path, name: str) -> Loaded:
    from rva.errors import ConfigError
    from services.common.config import CAMERAS_ENV, apply_env, env_targets, select_cameras

    if importlib.util.find_spec(f"services.{name}.__main__") is None:
        return Loaded([f"{c.where}: there is no python -m services.{name}"])
    try:
        params = _service_args(c.args)
    except Exception as err:  # argparse.ArgumentError or the required flag
        return Loaded([f"{c.where}: bad arguments {c.args}: {err}"])
    config, problems = _config(c, tmp, params["config"])
    if config is None:
        return Loaded(problems)
    known = set(env_targets(config)) | {CAMERAS_ENV} | GLOBAL_ENV | interpolated(c.files[params["config"]])
    problems += [f"{c.where}: unknown variable {v} (python -m services.{name} --help-env lists them)"
                 for v in c.env if v.startswith("RVA_") and v not in known]
    try:
        with environ(c.env):
            config = apply_env(config, c.env, params["config"])
            select_cameras(config, params["cameras"])
    except ConfigError as err:
        return Loaded([*problems, f"{c.where}: {err}"])
    if not hasattr(config.services, name):
        return Loaded([*problems, f"{c.where}: the config has no services.{name} section"])
    endpoint = getattr(config.services, name)
    if endpoint.host != "0.0.0.0":
        problems.append(f"{c.where}: services.{name}.host is {endpoint.host}: unreachable from outside the container")
    if not endpoint.metrics_port:
        problems.append(f"{c.where}: services.{name}.metrics_port is {endpoint.metrics_port}: nothing to scrape")
    params["port"] = params["port"] or endpoint.port
    params["metrics_port"] = endpoint.metrics_port
    params["service"] = name
    return Loaded(problems, config=config, params=params)


def _load_nats_streams(c: Container, tmp: Path) -> Loaded:
    """``rva-nats-streams --config FILE --replicas N``: the config and its RVA_* overrides, as the services."""
    import argparse

    from rva.errors import ConfigError
    from services.common.config import apply_env, env_targets

    parser = argparse.ArgumentParser(exit_on_error=False, add_help=False)
    parser.add_argument("--config", required=True)
    parser.add_argument("--replicas", type=int, choices=range(1, 6))
    parser.add_argument("--deadline", type=float)
    try:
        params = vars(parser.parse_args(c.args))
    except Exception as err:
        return Loaded([f"{c.where}: bad arguments {c.args}: {err}"])
    config, problems = _config(c, tmp, params["config"])
    if config is None:
        return Loaded(problems)
    known = set(env_targets(config)) | GLOBAL_ENV | interpolated(c.files[params["config"]])
    problems += [f"{c.where}: unknown variable {v}" for v in c.env if v.startswith("RVA_") and v not in known]
    try:
        with environ(c.env):
            config = apply_env(config, c.env, params["config"])
    except ConfigError as err:
        return Loaded([*problems, f"{c.where}: {err}"])
    return Loaded(problems, config=config, params={**params, "nats_streams": True})


def _load_triton_repo(c: Container, tmp: Path) -> Loaded:
    import argparse

    models = sorted(p.name for p in (REPO / "triton_models").iterdir() if (p / "config.pbtxt").is_file())
    parser = argparse.ArgumentParser(exit_on_error=False, add_help=False)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", action="append", choices=models)
    parser.add_argument("--copy", action="store_true")
    try:
        params = vars(parser.parse_args(c.args))
    except Exception as err:
        return Loaded([f"{c.where}: bad arguments {c.args}: {err}"])
    problems = [f"{c.where}: unknown variable {v}" for v in c.env if v.startswith("RVA_") and v not in GLOBAL_ENV]
    if not (REPO / c.argv[1]).is_file():
        problems.append(f"{c.where}: no script {c.argv[1]} in the repository")
    config, more = _config(c, tmp, params["config"])
    problems += more
    if config is not None:
        served = getattr(config.detector, "model_name", None)
        if config.detector.type != "triton" or served not in (params["model"] or []):
            problems.append(f"{c.where}: prepares {params['model']} but the config's detector calls {served!r}")
    return Loaded(problems, config=config, params=params)


def _click_params(app: Any, args: list[str], env: dict[str, str], where: str) -> tuple[dict[str, Any], list[str]]:
    import click
    import typer

    group = typer.main.get_command(app)
    if not args or args[0] not in group.commands:  # type: ignore[attr-defined]
        return {}, [f"{where}: no command {args[:1]} (commands: {sorted(group.commands)})"]  # type: ignore[attr-defined]
    command = group.commands[args[0]]  # type: ignore[attr-defined]
    try:
        with environ(env):
            ctx = command.make_context(args[0], list(args[1:]))
    except click.ClickException as err:
        return {}, [f"{where}: {args}: {err.format_message()}"]
    return dict(ctx.params), []


def _load_gateway(c: Container, tmp: Path) -> Loaded:
    import gateway.settings as gs
    from gateway.__main__ import app
    from rva.errors import ConfigError

    known = set(GLOBAL_ENV)
    for name in gs.GatewaySettings.model_fields:
        known.add(gs._STORE_ENV.get(name, f"RVA_GATEWAY_{name.upper()}"))
    known |= {f"RVA_GATEWAY_{name.upper()}_FILE" for name in gs._SECRETS}
    problems = [f"{c.where}: unknown variable {v} (gateway/settings.py)"
                for v in c.env if v.startswith("RVA_") and v not in known]
    env = dict(c.env)
    for var, path in c.env.items():
        if var.endswith("_FILE") and var.startswith("RVA_GATEWAY_"):
            if path not in c.files:
                problems.append(f"{c.where}: {var}={path} is not a file mounted in the container")
                continue
            local = tmp / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{c.where}{path}")
            local.write_text(c.files[path])
            env[var] = str(local)
    params, more = _click_params(app, c.args, env, c.where)
    problems += more
    try:
        settings = gs.GatewaySettings.from_env(env)
    except ConfigError as err:
        return Loaded([*problems, f"{c.where}: {err}"], params=params)
    return Loaded(problems, settings=settings, params=params)


def _load_stores(c: Container) -> Loaded:
    from urllib.parse import urlparse

    import psycopg
    import redis
    import typer

    from rva.service_config import NatsConfig
    from rva.stores.__main__ import app

    run = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    known = {p.envvar for p in run.params if isinstance(p.envvar, str)} | GLOBAL_ENV
    problems = [f"{c.where}: unknown variable {v} (python -m rva.stores run --help)"
                for v in c.env if v.startswith("RVA_") and v not in known]
    params, more = _click_params(app, c.args, c.env, c.where)
    problems += more
    if not params:
        return Loaded(problems)
    try:
        NatsConfig(url=params["nats_url"])
    except ValueError as err:
        problems.append(f"{c.where}: RVA_NATS_URL: {err}")
    if not any(params.get(k) for k in ("postgres", "clickhouse", "redis_url")):
        problems.append(f"{c.where}: names no store (RVA_POSTGRES_DSN, RVA_CLICKHOUSE_URL or RVA_REDIS_URL)")
    if params.get("postgres"):
        try:
            psycopg.conninfo.conninfo_to_dict(params["postgres"])
        except psycopg.ProgrammingError as err:
            problems.append(f"{c.where}: RVA_POSTGRES_DSN: {err}")
    if params.get("clickhouse") and urlparse(params["clickhouse"]).scheme not in ("chdb", "http", "https"):
        # the schemes rva.stores.clickhouse.open_driver accepts (it connects, so it is not called here)
        problems.append(f"{c.where}: RVA_CLICKHOUSE_URL: expected chdb:///path or http(s)://host:port")
    if params.get("redis_url"):
        try:
            redis.Redis.from_url(params["redis_url"]).close()
        except ValueError as err:
            problems.append(f"{c.where}: RVA_REDIS_URL: {err}")
    return Loaded(problems, params=params)


_DEFAULT_PORTS = {"nats": 4222, "tls": 4222, "http": 80, "https": 443, "redis": 6379, "postgresql": 5432}


def hosts_used(loaded: Loaded) -> dict[str, tuple[str, int]]:
    """``what -> (host, port)`` for every server a loaded program connects to (to check the deployment has it)."""
    from urllib.parse import urlparse

    import psycopg

    out: dict[str, tuple[str, int]] = {}

    def add(what: str, url: str | None) -> None:
        if not url or url.startswith("chdb:"):
            return
        u = urlparse(url if "://" in url else f"grpc://{url}")
        if u.hostname:
            out[what] = (u.hostname, u.port or _DEFAULT_PORTS.get(u.scheme, 0))

    def add_dsn(what: str, dsn: str | None) -> None:
        if dsn:
            info = psycopg.conninfo.conninfo_to_dict(dsn)
            out[what] = (str(info.get("host", "")), int(info.get("port") or 5432))

    cfg, service = loaded.config, loaded.params.get("service")
    if cfg is not None and loaded.params.get("nats_streams"):
        add("services.nats.url", cfg.services.nats.url)
    if cfg is not None and service:  # an RVA service: who connects where (services/*/service.py)
        add("services.telemetry.otlp_endpoint", cfg.services.telemetry.otlp_endpoint)
        if service != "decode":  # the others connect to JetStream
            add("services.nats.url", cfg.services.nats.url)
        if service == "inference":
            if cfg.detector.type == "triton":
                add("detector.url", cfg.detector.url)
            for n, addr in enumerate(cfg.services.inference.decode_addrs):
                add(f"services.inference.decode_addrs[{n}]", addr)
    if loaded.settings is not None:
        s = loaded.settings
        add_dsn("RVA_POSTGRES_DSN", s.postgres_dsn)
        add("RVA_REDIS_URL", s.redis_url)
        add("RVA_NATS_URL", s.nats_url)
        add("RVA_CLICKHOUSE_URL", s.clickhouse_url)
    p = loaded.params
    if "nats_url" in p:  # the stores
        add("RVA_NATS_URL", p["nats_url"])
        add("RVA_CLICKHOUSE_URL", p.get("clickhouse"))
        add("RVA_REDIS_URL", p.get("redis_url"))
        add_dsn("RVA_POSTGRES_DSN", p.get("postgres"))
    return out


# --- metrics the code exports ----------------------------------------------------------------------------------------

_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}


@cache
def exported_metrics() -> dict[str, frozenset[str]]:
    """Every Prometheus series name the code can export -> its label names.

    Found by parsing ``Counter("name", "help", [labels])`` (and Gauge, Histogram, Summary, Info, Enum)
    calls in rva/, services/ and gateway/, with the suffixes prometheus_client adds: ``_total`` for
    counters (the given name minus any ``_total``), ``_bucket``/``_sum``/``_count`` for histograms
    (``le`` on buckets), ``_created`` timestamps.
    """
    import ast

    out: dict[str, frozenset[str]] = {}
    for package in ("rva", "services", "gateway"):
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                first = node.args[0]
                if func not in _SUFFIXES or not isinstance(first, ast.Constant) or not isinstance(first.value, str):
                    continue
                labels = _labelnames(node)
                base = first.value.removesuffix("_total") if func == "Counter" else first.value
                for suffix in _SUFFIXES[func]:
                    extra = {"le"} if suffix == "_bucket" else set()
                    out[base + suffix] = frozenset(labels | extra)
    return out


def _labelnames(call: Any) -> set[str]:
    import ast

    node = call.args[2] if len(call.args) > 2 else next(
        (kw.value for kw in call.keywords if kw.arg == "labelnames"), None)
    if isinstance(node, ast.List | ast.Tuple):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return set()
