"""Prometheus metrics of one gateway process, served on their own port (``metrics_port``), off the API.

``rva_gateway_requests_total{method, route, status}`` and ``rva_gateway_request_seconds{route}`` are
recorded by :class:`RequestMetrics` (an ASGI middleware) per route *template*
(``/v1/stores/{store}/metrics/occupancy``), so the label set stays small whatever the paths;
``rva_gateway_operations_total{operation}`` mirrors the process's named counters (ingest batches and
events, duplicate batches...; the same numbers ``/v1/status`` shows) and
``rva_gateway_ws_clients`` is the live WebSocket clients now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

#: Request latency buckets, seconds (1 ms to ~30 s).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    """The process's metrics (one registry each, so several apps can share a test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rva_gateway_requests", "HTTP requests by route template and status.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("rva_gateway_request_seconds", "HTTP request time by route template.",
                                 ["route"], buckets=BUCKETS, registry=r)
        self.operations = Counter("rva_gateway_operations", "Named operations (ingest batches, events...).",
                                  ["operation"], registry=r)
        self.ws_clients = Gauge("rva_gateway_ws_clients", "Live WebSocket clients of this process.", registry=r)
        self._server: Any = None
        self.port: int | None = None

    def serve(self, host: str, port: int) -> int:
        """Expose ``/metrics`` on ``host:port`` (0: a free port); return the port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        self.port = int(server.server_port)
        return self.port

    def close(self) -> None:
        """Stop the metrics endpoint."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class RequestMetrics:
    """ASGI middleware recording each HTTP request's count and time under its route template.

    Args:
        app: The wrapped ASGI app.
        metrics: Where to record (``None`` until the app's lifespan made it: then nothing is recorded).

    """

    def __init__(self, app: Any, metrics: Callable[[], GatewayMetrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Handle one ASGI connection."""
        m = self.metrics() if scope["type"] == "http" else None
        if m is None:
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/dashboard/static" if scope["path"].startswith(
                "/dashboard/static/") else "unmatched")
            m.requests.labels(scope["method"], template, str(status[0])).inc()
            m.latency.labels(template).observe(time.perf_counter() - start)
