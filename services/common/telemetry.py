"""Tracing and logs: one trace follows a frame through every service.

Context crosses process boundaries as W3C trace context (``traceparent``): in gRPC metadata for
calls, in the frame message for per-frame context on a long-lived stream (metadata covers a whole
stream), and in NATS message headers between inference, tracking and analytics.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from rva.service_config import TelemetryConfig

_provider: TracerProvider | None = None


def setup_tracing(service: str, cfg: TelemetryConfig, exporter: SpanExporter | None = None) -> trace.TracerProvider:
    """Install the process's tracer provider once (sampling parent-based at ``trace_sample_ratio``).

    Args:
        service: ``service.name`` of the spans.
        cfg: Telemetry config; ``otlp_endpoint`` adds a batching OTLP/gRPC exporter.
        exporter: An extra exporter, run synchronously (tests pass an in-memory one).

    Returns:
        The provider (the existing one when called again in the same process).

    """
    global _provider
    current = trace.get_tracer_provider()
    if _provider is None and isinstance(current, TracerProvider):
        _provider = current  # someone in this process installed an SDK provider first: share it
    if _provider is not None:
        if exporter is not None:
            _provider.add_span_processor(SimpleSpanProcessor(exporter))
        return _provider
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"rva-{service}"}),
        sampler=ParentBased(TraceIdRatioBased(cfg.trace_sample_ratio)),
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if cfg.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=cfg.otlp_endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def tracer(service: str) -> trace.Tracer:
    """The tracer a service's spans come from."""
    return trace.get_tracer(f"rva.services.{service}")


def inject(ctx: otel_context.Context | None = None) -> dict[str, str]:
    """The W3C trace context of ``ctx`` (default: the current one) as a string map."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    return carrier


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """A context whose parent is the span described by ``carrier`` (empty: a new root)."""
    return propagate.extract(dict(carrier or {}))


def from_grpc(invocation_metadata: Any) -> otel_context.Context:
    """The caller's context from a gRPC call's metadata."""
    return extract({str(k): str(v) for k, v in (invocation_metadata or ()) if isinstance(v, str)})


def to_grpc_metadata(ctx: otel_context.Context | None = None) -> tuple[tuple[str, str], ...]:
    """The current (or given) trace context as gRPC metadata."""
    return tuple(inject(ctx).items())


def span_ids() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the current span (empty when none), for log lines."""
    sc = trace.get_current_span().get_span_context()
    if not sc.is_valid:
        return {}
    return {"trace_id": f"{sc.trace_id:032x}", "span_id": f"{sc.span_id:016x}"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, message, camera, trace and span ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("camera", "stream_id", "index", "generation"):
            if hasattr(record, key):
                line[key] = getattr(record, key)
        line.update(span_ids())
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup_logging(service: str, cfg: TelemetryConfig) -> None:
    """Log to stderr as JSON lines (or text) at ``cfg.log_level``."""
    handler = logging.StreamHandler(sys.stderr)
    if cfg.log_format == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.log_level)
