"""Prometheus metrics every service exports: frames, drops by reason, queue depths, stage latencies, errors.

One registry per service object, so several services can share a process (tests).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.parser import text_string_to_metric_families

#: Latency buckets, seconds: 1 ms to 60 s, ~1.5x apart (p50/p99 interpolate between them).
LATENCY_BUCKETS = tuple(round(0.001 * 1.5**i, 6) for i in range(28))


class ServiceMetrics:
    """The metrics of one service.

    Attributes:
        frames: ``rva_frames_total{service, camera}``: frames (or records) handled.
        dropped: ``rva_dropped_total{service, camera, reason}``: items dropped; never silent.
        queue_depth: ``rva_queue_depth{service, queue}``: items waiting now.
        latency: ``rva_stage_latency_seconds{service, stage}``: time per stage.
        errors: ``rva_errors_total{service, kind}``: failures by kind (retried or not).
        events: ``rva_events_published_total{camera, kind}``: events acknowledged by JetStream.
        alerts_delivered: ``rva_alerts_delivered_total{sink}``: alerts a sink took (alerts service).
        alerts_dead_lettered: ``rva_alerts_dead_lettered_total{sink}``: alerts a sink was given up on.

    """

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames = Counter("rva_frames", "Frames or records handled.", ["service", "camera"], registry=r)
        self.dropped = Counter(
            "rva_dropped", "Items dropped, by reason (never silent).", ["service", "camera", "reason"], registry=r
        )
        self.queue_depth = Gauge(
            "rva_queue_depth", "Items waiting in a bounded queue.", ["service", "queue"], registry=r
        )
        self.latency = Histogram(
            "rva_stage_latency_seconds",
            "Time spent per stage.",
            ["service", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("rva_errors", "Failures by kind.", ["service", "kind"], registry=r)
        self.events = Counter(
            "rva_events_published", "Events acknowledged by JetStream.", ["camera", "kind"], registry=r
        )
        self.alerts_delivered = Counter("rva_alerts_delivered", "Alerts a sink took.", ["sink"], registry=r)
        self.alerts_dead_lettered = Counter(
            "rva_alerts_dead_lettered", "Alerts given up on after retries (published as alert_undelivered).",
            ["sink"], registry=r,
        )
        self.gauge = Gauge("rva_state", "Service-specific state values.", ["service", "name"], registry=r)
        self._http: Any = None

    def frame(self, camera: str) -> None:
        """Count one handled frame."""
        self.frames.labels(self.service, camera).inc()

    def drop(self, camera: str, reason: str, n: int = 1) -> None:
        """Count ``n`` dropped items."""
        self.dropped.labels(self.service, camera, reason).inc(n)

    def depth(self, queue: str, value: float) -> None:
        """Set a queue's current depth."""
        self.queue_depth.labels(self.service, queue).set(value)

    def observe(self, stage: str, seconds: float) -> None:
        """Record one stage latency."""
        self.latency.labels(self.service, stage).observe(seconds)

    def error(self, kind: str) -> None:
        """Count one failure."""
        self.errors.labels(self.service, kind).inc()

    def serve(self, host: str, port: int) -> int:
        """Expose ``/metrics`` over HTTP on ``host:port`` (0: a free port); return the port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return int(server.server_port)

    def close(self) -> None:
        """Stop the HTTP endpoint."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text exposition -> ``{sample name: [(labels, value)]}``."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile``: ``buckets`` are cumulative ``(upper bound, count)``."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            width = count - prev_count
            return prev_bound + (bound - prev_bound) * ((rank - prev_count) / width if width > 0 else 1.0)
        prev_bound, prev_count = bound, count
    return prev_bound
