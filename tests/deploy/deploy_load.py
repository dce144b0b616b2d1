"""What each deployed program would load, loaded with the code the program runs: the RVA config with its
``RVA_*`` overrides, the gateway's settings, the stores' CLI options, the NATS streams job, the Triton
repository step; and the hosts and ports each then connects to.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy_checks import REPO, Container

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


