"""Service config: the same validated YAML as the standalone runner, plus ``RVA_*`` env overrides.

Every field of ``services.<section>`` and of ``detector`` / ``tracker`` can be overridden per
process by ``RVA_<SECTION>_<FIELD>`` (upper case): ``RVA_NATS_URL``, ``RVA_DECODE_PORT``,
``RVA_INFERENCE_DECODE_ADDRS`` (comma-separated), ``RVA_DETECTOR_URL``, ``RVA_TELEMETRY_OTLP_ENDPOINT``...
``RVA_<SECTION>_<FIELD>_FILE`` names a file holding the value instead (a mounted secret:
``RVA_SYNC_API_KEY_FILE=/run/secrets/rva-api-key``); it wins over the plain variable.
Top-level service fields are ``RVA_RPC_TIMEOUT_S`` and ``RVA_DRAIN_TIMEOUT_S``. ``RVA_CAMERAS``
(comma-separated ids) limits a replica to some cameras. Overridden values are validated like the
file's, and an error names both the field and the variable.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rva.config import CameraConfig, RVAConfig, TrackerConfig, TritonDetectorConfig, load_config, parse_config
from rva.errors import ConfigError
from rva.service_config import ServicesConfig

CAMERAS_ENV = "RVA_CAMERAS"


def env_targets(config: RVAConfig) -> dict[str, tuple[tuple[str, ...], Any, str]]:
    """Map each ``RVA_*`` variable to ``(path in the config, annotation, description)``."""
    out: dict[str, tuple[tuple[str, ...], Any, str]] = {}

    def add(prefix: str, path: tuple[str, ...], model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            out[f"RVA_{prefix}_{name}".upper()] = ((*path, name), field.annotation, field.description or "")

    add("detector", ("detector",), TritonDetectorConfig)  # a superset of the onnx detector's fields
    add("tracker", ("tracker",), TrackerConfig)
    for section, field in ServicesConfig.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            add(section, ("services", section), ann)
        else:
            out[f"RVA_{section}".upper()] = (("services", section), ann, field.description or "")
    return out


def _parse(raw: str, annotation: Any) -> Any:
    """Env strings to config values: lists from commas, JSON for objects, 'null' for None."""
    if raw.strip().lower() in ("null", "none") and type(None) in typing.get_args(annotation):
        return None
    origin = typing.get_origin(annotation)
    if origin in (list, tuple) or raw.lstrip().startswith(("[", "{")):
        if raw.lstrip().startswith(("[", "{")):
            return json.loads(raw)
        return [part.strip() for part in raw.split(",") if part.strip()]
    if origin is dict:
        return json.loads(raw)
    return raw


def apply_env(config: RVAConfig, environ: Mapping[str, str] | None = None, origin: str = "<config>") -> RVAConfig:
    """Return ``config`` with every ``RVA_<SECTION>_<FIELD>`` variable of ``environ`` applied.

    Raises:
        ConfigError: An overridden value is invalid (the message names the variable).

    """
    env = os.environ if environ is None else environ
    targets = env_targets(config)
    used = {name: env[name] for name in targets if name in env}
    for name in targets:  # RVA_<...>_FILE: the value is the file's content (Docker/Kubernetes secrets); wins
        path = env.get(f"{name}_FILE")
        if path:
            try:
                used[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as err:
                raise ConfigError(f"{name}_FILE: cannot read {path}: {err.strerror}") from None
    if not used:
        return config
    raw = config.model_dump(mode="python")  # not "json": that masks SecretStr values as "**********"
    for name, value in used.items():
        path, annotation, _ = targets[name]
        node = raw
        for key in path[:-1]:
            node = node.setdefault(key, {})
        try:
            node[path[-1]] = _parse(value, annotation)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{name}: not valid JSON: {err}") from None
    try:
        return parse_config(raw, f"{origin} + environment ({', '.join(sorted(used))})")
    except ConfigError as err:
        raise ConfigError(f"{err}\n  (from environment variables: {', '.join(sorted(used))})") from None


def load_service_config(path: str | Path, environ: Mapping[str, str] | None = None) -> RVAConfig:
    """Load and validate the YAML file, then apply ``RVA_*`` overrides.

    Raises:
        ConfigError: The file or an override is invalid; the message names the field's path.

    """
    return apply_env(load_config(path), environ, str(path))


def select_cameras(config: RVAConfig, spec: str | None = None) -> list[CameraConfig]:
    """The cameras this replica serves: ``spec`` (comma-separated ids), else ``RVA_CAMERAS``, else all.

    Raises:
        ConfigError: An id is not a configured camera.

    """
    spec = spec if spec is not None else os.environ.get(CAMERAS_ENV)
    if not spec:
        return list(config.cameras)
    wanted = [c.strip() for c in spec.split(",") if c.strip()]
    known = {c.id: c for c in config.cameras}
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise ConfigError(f"cameras {unknown} are not in the config (known: {sorted(known)})")
    return [known[c] for c in wanted]


def env_reference(config: RVAConfig | None = None) -> list[tuple[str, str, str]]:
    """``(variable, config path, description)`` for every override, for docs and ``--help-env``."""
    cfg = config or parse_config({"cameras": [{"id": "x", "source": {"type": "file", "path": "x"}}]})
    rows = [(name, ".".join(path), desc) for name, (path, _, desc) in env_targets(cfg).items()]
    rows.append((CAMERAS_ENV, "(process)", "Comma-separated camera ids this replica serves (default: all)."))
    return sorted(rows)
