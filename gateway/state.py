"""The gateway's long-lived services, built once at start from the settings and closed at shutdown."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from gateway.alerts import AlertFeed
from gateway.auth import Authenticator
from gateway.exporter import GatewayMetrics
from gateway.ingest import IngestSinks
from gateway.metrics import MetricsService
from gateway.privacy import PrivacyFilter
from gateway.ratelimit import RateLimiter
from gateway.registry import Registry
from gateway.settings import GatewaySettings
from gateway.tenancy import QueryPool, Tenancy
from gateway.ws import LiveHub
from rva.stores.query import EventQueries

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    """Everything a request may need."""

    settings: GatewaySettings
    registry: Registry
    auth: Authenticator
    tenancy: Tenancy
    pool: QueryPool
    metrics: MetricsService
    privacy: PrivacyFilter
    sinks: IngestSinks
    hub: LiveHub
    limiter: RateLimiter | None = None
    alerts: AlertFeed | None = None
    nc: Any = None
    clickhouse: Any = None
    owns_clickhouse: bool = True
    counters: dict[str, int] = field(default_factory=dict)
    prometheus: GatewayMetrics = field(default_factory=GatewayMetrics)

    def count(self, name: str, n: int = 1) -> None:
        """Add to a named counter (``/v1/status``, and ``rva_gateway_operations_total{operation}``)."""
        self.counters[name] = self.counters.get(name, 0) + n
        self.prometheus.operations.labels(name).inc(n)

    async def close(self) -> None:
        """Close clients first, then connections."""
        await self.hub.close()
        self.prometheus.close()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
        for closer in (self.sinks.close, self.pool.close, self.registry.close, self.privacy.close):
            with contextlib.suppress(Exception):
                closer()
        for client in (self.limiter, self.alerts):
            if client is not None:
                client.close()
        if self.clickhouse is not None and self.owns_clickhouse:
            self.clickhouse.close()


async def start_gateway(settings: GatewaySettings, clickhouse: Any = None) -> Gateway:
    """Connect to every configured store, migrate the schemas, and build the services.

    Args:
        settings: The settings.
        clickhouse: A ClickHouse driver to use instead of opening ``settings.clickhouse_url`` (chdb allows one
            data path per process, so an embedding process shares its own); it is not closed with the gateway.

    Raises:
        StoreUnavailable: A configured store cannot be reached.

    """
    from rva.stores.postgres import PostgresWriter, connect, migrate

    registry = Registry(settings.postgres_dsn, pool_size=max(8, settings.query_pool_size * 2))
    registry.migrate()
    with connect(settings.postgres_dsn) as conn:
        migrate(conn)  # the stores' schema, so queries work before the first event arrives
    owns_clickhouse = clickhouse is None
    if clickhouse is None and settings.clickhouse_url:
        from rva.stores.clickhouse import open_driver

        clickhouse = open_driver(settings.clickhouse_url)
    nc = js = None
    if settings.nats_url:
        import nats

        from rva.stores.publish import ensure_stream

        nc = await nats.connect(settings.nats_url, connect_timeout=5, max_reconnect_attempts=-1,
                                name="rva-gateway")
        if "jetstream" in settings.sinks:
            js = nc.jetstream(timeout=10.0)
            await ensure_stream(js)
    writers: list[Any] = []
    if "writers" in settings.sinks:
        writers.append(PostgresWriter(settings.postgres_dsn))
        if settings.redis_url:
            from rva.stores.redis_live import RedisLiveWriter

            writers.append(RedisLiveWriter(settings.redis_url))
        if clickhouse is not None:
            from rva.stores.clickhouse import ClickHouseWriter

            writers.append(ClickHouseWriter(clickhouse, settings.clickhouse_db))

    def make_queries() -> EventQueries:
        return EventQueries(settings.postgres_dsn, clickhouse, settings.clickhouse_db, settings.redis_url)

    pool = QueryPool(make_queries, settings.query_pool_size, clickhouse)
    tenancy = Tenancy(registry)
    metrics = MetricsService(tenancy, pool, registry)
    alerts = AlertFeed(settings.redis_url) if settings.redis_url else None
    limiter = (RateLimiter(settings.redis_url, fail_open=settings.rate_limit_fail_open)
               if settings.redis_url else None)
    hub = LiveHub(settings, metrics, registry, nc, alerts)
    log.info("gateway: sinks %s, nats %s, redis %s, clickhouse %s", settings.sinks, bool(nc),
             bool(settings.redis_url), bool(clickhouse))
    gw = Gateway(settings, registry, Authenticator(settings, registry), tenancy, pool, metrics,
                 PrivacyFilter(settings.privacy_detector), IngestSinks(writers, js), hub, limiter, alerts, nc,
                 clickhouse, owns_clickhouse)
    gw.prometheus.ws_clients.set_function(lambda: hub.stats.clients)
    if settings.metrics_port is not None:
        port = gw.prometheus.serve(settings.metrics_host, settings.metrics_port)
        log.info("gateway: Prometheus /metrics on %s:%d", settings.metrics_host, port)
    return gw
