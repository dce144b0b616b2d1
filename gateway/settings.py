"""Gateway settings: validated at start, read from the environment; secrets from env or files, never code.

Stores use the names the stores' CLI uses (``RVA_POSTGRES_DSN``, ``RVA_REDIS_URL``, ``RVA_NATS_URL``,
``RVA_CLICKHOUSE_URL``, ``RVA_CLICKHOUSE_DB``); everything else is ``RVA_GATEWAY_<FIELD>`` (upper
case). A secret field also reads ``RVA_GATEWAY_<FIELD>_FILE``: the path of a file holding it (Docker
and Kubernetes secrets), which wins over the plain variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from rva.config import format_validation_error
from rva.errors import ConfigError

_STORE_ENV = {
    "postgres_dsn": "RVA_POSTGRES_DSN",
    "redis_url": "RVA_REDIS_URL",
    "nats_url": "RVA_NATS_URL",
    "clickhouse_url": "RVA_CLICKHOUSE_URL",
    "clickhouse_db": "RVA_CLICKHOUSE_DB",
}
_SECRETS = ("jwt_secret", "jwt_public_key")
_LISTS = ("jwt_algorithms", "ingest_sinks", "cors_origins")


class RateLimit(BaseModel):
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float = Field(gt=0, le=1e6, description="Requests per second, sustained.")
    burst: int = Field(ge=1, le=1_000_000, description="Requests allowed at once after a quiet spell.")


JwtAlgorithm = Literal["HS256", "HS384", "HS512", "RS256", "RS512", "ES256", "ES384", "EdDSA"]


def _default_algorithms() -> list[JwtAlgorithm]:
    return ["HS256"]


class GatewaySettings(BaseModel):
    """Everything the gateway needs to start. A bad value fails at start, naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    postgres_dsn: str = Field(description="PostgreSQL: the gateway's registry and the stores' history.")
    redis_url: str | None = Field(None, description="Redis: live view, rate limits, alert feed.")
    nats_url: str | None = Field(None, description="NATS with JetStream: live events; ingest publishes here.")
    clickhouse_url: str | None = Field(None, description="chdb:///dir or http(s)://…: journeys, funnels.")
    clickhouse_db: str = Field("rva", pattern=r"^[A-Za-z0-9_]{1,64}$", description="ClickHouse database.")

    jwt_issuer: str = Field("rva", min_length=1, description="Required `iss` of user tokens.")
    jwt_audience: str = Field("rva-gateway", min_length=1, description="Required `aud` of user tokens.")
    jwt_algorithms: list[JwtAlgorithm] = Field(
        default_factory=_default_algorithms, min_length=1, description="Accepted signing algorithms (never 'none')."
    )
    jwt_secret: SecretStr | None = Field(None, description="HMAC key (HS*), at least 32 bytes.")
    jwt_public_key: SecretStr | None = Field(None, description="PEM public key (RS*/ES*/EdDSA).")
    jwt_leeway_s: float = Field(30.0, ge=0, le=300, description="Clock skew tolerated on exp/nbf/iat.")
    jwt_max_lifetime_s: float = Field(
        86_400.0, gt=0, le=30 * 86400, description="Tokens whose exp - iat is longer are refused."
    )
    operator_tenant: str = Field(
        "operator", pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Admins of this tenant may create and list every tenant (the platform operator).",
    )

    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest request body (JSON APIs).")
    ingest_max_body_bytes: int = Field(8 << 20, ge=1024, description="Largest compressed ingest batch.")
    ingest_max_inflated_bytes: int = Field(64 << 20, ge=1024, description="Largest ingest batch after gunzip.")
    ingest_max_events: int = Field(10_000, ge=1, le=1_000_000, description="Most events in one ingest batch.")
    ingest_sinks: list[Literal["writers", "jetstream"]] = Field(
        default_factory=list,
        description="Where ingested events go: the stores' writers (tenant-correct, durable before the "
        "response) and/or JetStream (Nats-Msg-Id = event id). Empty: writers, plus jetstream when "
        "nats_url is set.",
    )
    snapshot_max_bytes: int = Field(8 << 20, ge=1024, description="Largest camera snapshot upload.")
    privacy_detector: str = Field(
        "default",
        description="Person detector the gateway blurs snapshots with: 'default' (the RVA model), a .onnx "
        "path, or 'off' (then blur_people falls back to blurring the whole image).",
    )

    rate_limit_user: RateLimit = Field(default_factory=lambda: RateLimit(rate=20.0, burst=60))
    rate_limit_device: RateLimit = Field(default_factory=lambda: RateLimit(rate=10.0, burst=40))
    rate_limit_fail_open: bool = Field(
        True, description="Serve requests (counted) when Redis is down, instead of refusing them."
    )

    ws_queue_messages: int = Field(
        256, ge=1, le=100_000, description="A WebSocket client this far behind that takes nothing for "
        "ws_send_timeout_s is dropped (a burst is fine while it keeps reading).")
    ws_queue_max_messages: int = Field(
        4096, ge=1, le=1_000_000, description="A WebSocket client this far behind is dropped at once (memory bound).")
    ws_send_timeout_s: float = Field(5.0, gt=0, le=120, description="A client that takes longer is dropped.")
    ws_live_interval_s: float = Field(1.0, gt=0, le=60, description="How often live metrics are refreshed.")
    ws_max_clients: int = Field(10_000, ge=1, description="WebSocket clients per gateway process.")
    query_pool_size: int = Field(4, ge=1, le=64, description="Query-layer connections used at once.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed to call the API.")
    alerts_source: Literal["edge", "gateway"] = Field(
        "edge",
        description="edge: the alert feed shows the alerts the edges raise (the analytics stage evaluates the "
        "store's rules on every frame); gateway: this process also evaluates the rules on the cloud's live view "
        "(for event sources that run no rules; with RVA edges that doubles the alerts).",
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Prometheus /metrics on this port, apart from the API (0: any free "
        "port; null: none).",
    )
    metrics_host: str = Field("0.0.0.0", description="Interface of the /metrics port.")

    @model_validator(mode="after")
    def _keys(self) -> GatewaySettings:
        hmac = [a for a in self.jwt_algorithms if a.startswith("HS")]
        asym = [a for a in self.jwt_algorithms if not a.startswith("HS")]
        if hmac and asym:
            raise ValueError("jwt_algorithms: mix of HMAC and public-key algorithms (algorithm confusion risk)")
        if hmac:
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < 32:
                raise ValueError("jwt_secret: expected at least 32 bytes for HS* (set RVA_GATEWAY_JWT_SECRET[_FILE])")
        elif self.jwt_public_key is None:
            raise ValueError("jwt_public_key: required for RS*/ES*/EdDSA (set RVA_GATEWAY_JWT_PUBLIC_KEY_FILE)")
        return self

    @property
    def sinks(self) -> tuple[str, ...]:
        """The ingest sinks in force."""
        if self.ingest_sinks:
            return tuple(dict.fromkeys(self.ingest_sinks))
        return ("writers", "jetstream") if self.nats_url else ("writers",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> GatewaySettings:
        """Read the settings from environment variables (and ``*_FILE`` secrets).

        Args:
            environ: Variables to read (default ``os.environ``).
            **overrides: Values that win over the environment (tests, CLI flags).

        Raises:
            ConfigError: A value is missing or invalid; the message names each field.

        """
        env = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for name in cls.model_fields:
            var = _STORE_ENV.get(name, f"RVA_GATEWAY_{name.upper()}")
            file_var = f"RVA_GATEWAY_{name.upper()}_FILE"
            if name in _SECRETS and env.get(file_var):
                try:
                    raw[name] = Path(env[file_var]).read_text(encoding="utf-8").strip()
                except OSError as err:
                    raise ConfigError(f"{file_var}: cannot read {env[file_var]}: {err.strerror}") from None
            elif var in env:
                raw[name] = _parse(name, env[var])
        raw.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, "gateway settings (RVA_GATEWAY_*)")) from None


def _parse(name: str, value: str) -> object:
    """Lists as comma-separated values, rate limits as JSON (``{"rate": 20, "burst": 60}``)."""
    if name in _LISTS:
        return [v.strip() for v in value.split(",") if v.strip()]
    if name.startswith("rate_limit_") and name != "rate_limit_fail_open":
        try:
            return json.loads(value)
        except ValueError:
            example = '{"rate": 20, "burst": 60}'
            raise ConfigError(f"RVA_GATEWAY_{name.upper()}: expected JSON like {example}") from None
    return value
