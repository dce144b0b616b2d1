"""The ``services:`` section of the config: how the distributed services reach each other.

The same YAML file configures the standalone runner and every service; this section is ignored by
the standalone runner. Each field can be overridden per process by an environment variable
``RVA_<SECTION>_<FIELD>`` (``RVA_NATS_URL``, ``RVA_DECODE_PORT``, ``RVA_INFERENCE_DECODE_ADDRS``...),
see :mod:`services.common.config`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_addr(addr: str) -> str:
    if not re.match(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$", addr):
        raise ValueError(f"expected host:port, got {addr!r}")
    return addr


class NatsConfig(_Model):
    """The NATS server with JetStream that carries work between stages and publishes events."""

    url: str = Field("nats://127.0.0.1:4222", description="nats:// or tls:// URL of the NATS server.")
    connect_timeout_s: float = Field(5.0, gt=0, le=120, description="Give up one connection attempt after this.")
    publish_timeout_s: float = Field(5.0, gt=0, le=120, description="Wait this long for JetStream's publish ack.")
    events_max_age_s: float = Field(
        7 * 86400, gt=0, description="Retention of the RVA_EVENTS stream (applied only when RVA creates it)."
    )
    work_max_age_s: float = Field(3600.0, gt=0, description="Retention of unprocessed work in RVA_WORK.")
    work_max_bytes: int = Field(
        1 << 30, ge=1 << 20, description="Disk bound of RVA_WORK; past it the oldest work is discarded (counted)."
    )
    duplicate_window_s: float = Field(
        120.0, gt=0, le=86400, description="JetStream de-duplication window on Nats-Msg-Id."
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if not re.match(r"^(nats|tls|ws|wss)://", url):
            raise ValueError(f"expected a nats:// or tls:// URL, got {url!r}")
        return url


class _Endpoint(_Model):
    host: str = Field("127.0.0.1", description="Interface the gRPC server listens on.")
    port: int = Field(0, ge=0, le=65535, description="gRPC port (0: any free port).")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Prometheus /metrics port (0: any free port; null: no endpoint)."
    )


class DecodeServiceConfig(_Endpoint):
    """The decode service: sources -> frames, streamed over gRPC."""

    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0: any free port).")
    buffer_frames: int = Field(
        32,
        ge=1,
        le=10000,
        description="Frames buffered per camera. Live sources drop the oldest when full (counted); "
        "files wait instead, so nothing is lost.",
    )
    encoding: Literal["bgr24", "jpeg"] = Field(
        "bgr24", description="Pixels on the wire: raw (lossless) or JPEG (~10x smaller, lossy)."
    )
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality when encoding is jpeg.")
    max_frames: int | None = Field(
        None, ge=1, description="Stop each camera after this many frames (tests, benchmarks)."
    )


class InferenceServiceConfig(_Endpoint):
    """The inference service: frames from decode -> detector -> JetStream work subject."""

    port: int = Field(50052, ge=0, le=65535, description="gRPC port (0: any free port).")
    decode_addrs: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:50051"], description="Decode services to pull frames from."
    )
    queue_frames: int = Field(
        16, ge=1, le=10000, description="Frames in flight per camera; past it, pulling from decode pauses."
    )
    max_batch: int = Field(8, ge=1, le=256, description="Largest batch of the in-process (onnxruntime) backend.")
    max_delay_ms: float = Field(
        5.0, ge=0, le=1000, description="In-process backend: wait this long for a batch to fill."
    )
    retry_initial_s: float = Field(0.2, gt=0, le=60, description="First retry delay when the detector is down.")
    retry_max_s: float = Field(5.0, gt=0, le=600, description="Retry delay ceiling (exponential backoff).")
    give_up_s: float = Field(
        120.0, gt=0, description="Drop a frame (counted) when the detector stays unavailable this long."
    )

    _addrs = field_validator("decode_addrs")(lambda cls, v: [_check_addr(a) for a in v])


class ConsumerServiceConfig(_Endpoint):
    """A service that consumes a JetStream work subject through a durable consumer per camera."""

    ack_wait_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Work not acknowledged within this is redelivered (how long a crashed consumer's frame waits).",
    )
    max_ack_pending: int = Field(
        1,
        ge=1,
        le=100000,
        description="Unacknowledged messages per camera. 1 keeps a camera's frames in order across a crash "
        "(a redelivered frame comes before any later one); more only if order does not matter.",
    )
    fetch_batch: int = Field(1, ge=1, le=1000, description="Messages fetched per pull (at most max_ack_pending).")


class TrackingServiceConfig(ConsumerServiceConfig):
    """The tracking service: detections -> ByteTrack per camera -> tracks work subject."""

    port: int = Field(50053, ge=0, le=65535, description="gRPC port (0: any free port).")


class AnalyticsServiceConfig(ConsumerServiceConfig):
    """The analytics service: tracks -> zones, lines, queues -> events on JetStream."""

    port: int = Field(50054, ge=0, le=65535, description="gRPC port (0: any free port).")
    event_time: Literal["wall", "stream"] = Field(
        "wall",
        description="Times on published events: 'wall' (Unix seconds: the decode session's start on the wall "
        "clock + stream time, what the stores and dashboards expect) or 'stream' (the camera's PTS clock).",
    )


class SyncServiceConfig(_Endpoint):
    """The sync service (edge): events to the cloud exactly once, config and models from it.

    JetStream events -> SQLite outbox -> gzip batches to the cloud's ingest endpoint; versioned config
    and model updates pulled from the cloud and applied in place.
    """

    port: int = Field(50055, ge=0, le=65535, description="gRPC port (0: any free port).")
    cloud_url: str | None = Field(
        None, description="Base URL of the cloud gateway (https://...); null: no uplink (standalone)."
    )
    api_key: str | None = Field(
        None, description="The store's device API key (rvak_...); pass it as ${RVA_SYNC_API_KEY}, never in a file."
    )
    ca_file: str | None = Field(None, description="CA bundle that signs the cloud's certificate (null: system CAs).")
    outbox_path: str = Field("data/outbox.sqlite3", description="SQLite outbox (WAL) holding events not yet acked.")
    outbox_max_bytes: int = Field(
        1 << 30, ge=1 << 16, description="Disk bound of the outbox; past it the full policy applies (reported)."
    )
    outbox_full_policy: Literal["drop_oldest", "reject_new"] = Field(
        "drop_oldest",
        description="When the outbox is full: drop the oldest events not yet in a batch, or refuse new ones "
        "(JetStream then keeps them until the consumer's limits). Every drop is counted per camera and kind.",
    )
    batch_events: int = Field(100, ge=1, le=10000, description="Events per uploaded batch.")
    batch_linger_s: float = Field(
        1.0, ge=0, le=300, description="Upload a partial batch once its oldest event waited this long."
    )
    request_timeout_s: float = Field(15.0, gt=0, le=600, description="Deadline of one upload or download.")
    backoff_initial_s: float = Field(0.5, gt=0, le=60, description="First retry delay after a failed upload.")
    backoff_max_s: float = Field(60.0, gt=0, le=3600, description="Retry delay ceiling (exponential, full jitter).")
    poll_interval_s: float = Field(
        10.0, gt=0, le=86400, description="How often config and model versions are checked in the cloud."
    )
    state_dir: str = Field(
        "data/sync", description="Applied config versions and downloaded models (each swapped in atomically)."
    )
    model_updates: bool = Field(
        True, description="Apply the cloud's model manifest (GET /v1/stores/{store}/model) when it changes."
    )
    triton_model_repository: str | None = Field(
        None,
        description="With a Triton detector: the server's model repository as mounted here (Triton must run "
        "with --model-control-mode=explicit); null: model updates are not applied to Triton.",
    )

    @field_validator("cloud_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"expected an http(s):// URL, got {url!r}")
        return url.rstrip("/") if url else url


class AlertsServiceConfig(ConsumerServiceConfig):
    """The alerts service: alert events from JetStream -> webhook, Slack and email sinks.

    Each delivery is retried, then dead-lettered (published as an ``alert_undelivered`` event).
    """

    port: int = Field(50056, ge=0, le=65535, description="gRPC port (0: any free port).")


class TelemetryConfig(_Model):
    """Traces, logs."""

    otlp_endpoint: str | None = Field(None, description="OTLP/gRPC collector for traces (null: none).")
    trace_sample_ratio: float = Field(
        0.05, ge=0, le=1, description="Share of frames traced end to end (parent-based sampling)."
    )
    log_format: Literal["json", "text"] = Field("json", description="Log lines as JSON or plain text.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged.")


class ServicesConfig(_Model):
    """How the distributed services are wired (ignored by the standalone runner)."""

    nats: NatsConfig = Field(default_factory=NatsConfig)
    decode: DecodeServiceConfig = Field(default_factory=DecodeServiceConfig)
    inference: InferenceServiceConfig = Field(default_factory=InferenceServiceConfig)
    tracking: TrackingServiceConfig = Field(default_factory=TrackingServiceConfig)
    analytics: AnalyticsServiceConfig = Field(default_factory=AnalyticsServiceConfig)
    sync: SyncServiceConfig = Field(default_factory=SyncServiceConfig)
    alerts: AlertsServiceConfig = Field(default_factory=AlertsServiceConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    rpc_timeout_s: float = Field(5.0, gt=0, le=300, description="Deadline of unary calls and of connecting.")
    drain_timeout_s: float = Field(
        10.0, gt=0, le=600, description="On SIGTERM, finish work in flight for at most this long."
    )
