"""Runs one service: gRPC server with health and reflection, metrics endpoint, graceful drain.

On SIGTERM (or SIGINT) the service reports NOT_SERVING, stops taking new work, finishes what it
holds for at most ``services.drain_timeout_s``, then stops the server and exits 0.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from rva.config import CameraConfig, RVAConfig
from rva.errors import ConfigError, RVAError
from services.common.config import env_reference, load_service_config, select_cameras
from services.common.metrics import ServiceMetrics
from services.common.telemetry import setup_logging, setup_tracing

log = logging.getLogger(__name__)

#: Frames are ~1-6 MB raw; streams stay up for hours, so keepalive pings find dead peers.
GRPC_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
SERVER_OPTIONS: list[tuple[str, Any]] = [
    *GRPC_OPTIONS,
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.so_reuseport", 0),
]


class MalformedRequest:
    """Stands in for a request whose bytes did not parse; handlers answer it with INVALID_ARGUMENT."""

    def __init__(self, error: str) -> None:
        self.error = error


class ValidateRequests(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Turns unparsable request bytes into INVALID_ARGUMENT instead of grpcio's INTERNAL.

    Unary-request handlers are answered here; streaming-request handlers receive a
    :class:`MalformedRequest` in their iterator and must answer it themselves.
    """

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        """Wrap the handler's request deserializer (and unary behaviours)."""
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer
        method = details.method

        def tolerant(data: bytes) -> Any:
            try:
                return parse(data)
            except Exception as err:  # protobuf DecodeError and friends
                return MalformedRequest(f"{method}: the request is not a valid message: {err}")

        changes: dict[str, Any] = {"request_deserializer": tolerant}
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                if isinstance(request, MalformedRequest):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
                return await inner_uu(request, context)

            changes["unary_unary"] = unary_unary
        elif handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: Any) -> Any:
                if isinstance(request, MalformedRequest):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
                async for response in inner_us(request, context):
                    yield response

            changes["unary_stream"] = unary_stream
        return handler._replace(**changes)


class Service(abc.ABC):
    """What a service implements; :class:`ServiceRuntime` does the rest.

    Attributes:
        name: Short name (``decode``...), the config section and metric label.
        grpc_names: Full gRPC service names served (for health and reflection).

    """

    name: str
    grpc_names: Sequence[str]

    def __init__(self, config: RVAConfig, cameras: Sequence[CameraConfig], metrics: ServiceMetrics | None = None):
        self.config = config
        self.cameras = list(cameras)
        self.metrics = metrics or ServiceMetrics(self.name)

    @abc.abstractmethod
    def register(self, server: grpc.aio.Server) -> None:
        """Add the service's servicers to ``server``."""

    async def start(self) -> None:  # noqa: B027 - optional
        """Connect to what the service needs and start its loops (after the server is up)."""

    async def drain(self, timeout: float) -> None:  # noqa: B027 - optional
        """Stop taking new work and finish what is in flight, within ``timeout`` seconds."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""


class ServiceRuntime:
    """Serves one :class:`Service` over gRPC with health, reflection and metrics.

    Args:
        service: The service.
        host: Interface to listen on.
        port: gRPC port (0: a free one; see :attr:`port` after :meth:`start`).
        metrics_port: Prometheus port (0: a free one; None: none).

    """

    def __init__(self, service: Service, host: str, port: int, metrics_port: int | None) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.metrics_port = metrics_port
        self.health: Any = None
        self.server: Any = None
        self._stopped = False

    async def start(self) -> None:
        """Bind, start serving, start the service's loops, then report SERVING."""
        svc = self.service
        # Made here, not in __init__: grpc.aio objects belong to the running event loop.
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[ValidateRequests()])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        svc.register(self.server)
        names = [*svc.grpc_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], self.server)
        self.port = self.server.add_insecure_port(f"{self.host}:{self.port}")
        if self.metrics_port is not None:
            self.metrics_port = svc.metrics.serve(self.host, self.metrics_port)
        await self.server.start()
        await svc.start()
        for name in ("", *svc.grpc_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("%s serving on %s:%s (metrics %s)", svc.name, self.host, self.port, self.metrics_port)

    async def stop(self, drain_timeout: float) -> None:
        """NOT_SERVING, drain the service, stop the server (in-flight calls get the same grace)."""
        if self._stopped or self.server is None:
            return
        self._stopped = True
        for name in ("", *self.service.grpc_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        try:
            await asyncio.wait_for(self.service.drain(drain_timeout), drain_timeout + 1.0)
        except TimeoutError:
            log.warning("%s: drain did not finish within %.1f s", self.service.name, drain_timeout)
        await self.server.stop(grace=min(drain_timeout, 5.0))
        await self.service.close()
        self.service.metrics.close()
        log.info("%s stopped", self.service.name)

    async def run_until_signal(self, drain_timeout: float) -> None:
        """Serve until SIGTERM/SIGINT, then stop gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        log.info("%s: signal received, draining", self.service.name)
        await self.stop(drain_timeout)


def main(
    name: str, factory: Callable[[RVAConfig, list[CameraConfig]], Service], argv: Sequence[str] | None = None
) -> int:
    """The ``python -m services.<name>`` entry point: parse args, load config, serve until SIGTERM.

    Returns:
        The exit code: 0 after a graceful stop, 2 for a bad config.

    """
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}", description=f"RVA {name} service")
    parser.add_argument("--config", required=True, help="RVA YAML config (the standalone runner's file)")
    parser.add_argument("--cameras", help="comma-separated camera ids this replica serves (default: all; RVA_CAMERAS)")
    parser.add_argument("--port", type=int, help=f"gRPC port (default: services.{name}.port; RVA_{name.upper()}_PORT)")
    parser.add_argument("--help-env", action="store_true", help="list the RVA_* environment overrides and exit")
    args = parser.parse_args(argv)
    if args.help_env:
        for var, path, desc in env_reference():
            print(f"{var:40s} {path:40s} {desc}")
        return 0
    try:
        config = load_service_config(args.config)
        cameras = select_cameras(config, args.cameras)
    except ConfigError as err:
        print(f"error: {err}")
        return 2
    setup_logging(name, config.services.telemetry)
    setup_tracing(name, config.services.telemetry)
    endpoint = getattr(config.services, name)
    try:
        service = factory(config, cameras)
    except (RVAError, ValueError) as err:
        log.error("%s cannot start: %s", name, err)
        return 1
    runtime = ServiceRuntime(
        service, endpoint.host, args.port if args.port is not None else endpoint.port, endpoint.metrics_port
    )
    asyncio.run(runtime.run_until_signal(config.services.drain_timeout_s))
    return 0
