"""The FastAPI application: routes, errors, middleware, the dashboard, and the services' lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from gateway.deps import PrincipalDep
from gateway.errors import install_handlers
from gateway.exporter import RequestMetrics
from gateway.graphql import graphql_router
from gateway.middleware import GatewayMiddleware
from gateway.routes import alerts, config, live, metrics, models, tenants
from gateway.routes.common import require_operator
from gateway.settings import GatewaySettings
from gateway.state import Gateway, start_gateway

log = logging.getLogger(__name__)
DASHBOARD = Path(__file__).parent / "dashboard"

DESCRIPTION = """Retail Vision Analytics: store metrics from camera analytics.

**Auth**: users send a JWT (`Authorization: Bearer …`; roles admin, analyst, viewer; scoped to a tenant and
optionally to stores); edge devices send their store's API key (`Bearer rvak_…` or `X-API-Key`).
Another tenant's resources answer 404; a role that may not act answers 403. Every caller has a
token-bucket rate limit (`RateLimit-*` headers; 429 with `Retry-After`). Errors are
`{"error", "detail"[, "fields"]}`. Live data: WebSocket `/v1/stores/{store}/live/ws`; reads: GraphQL `/graphql`.
"""


def _limit_for(settings: GatewaySettings) -> Any:
    def limit_for(method: str, path: str) -> int:
        if path == "/v1/ingest/events":
            return settings.ingest_max_body_bytes
        if method == "PUT" and path.endswith("/snapshot"):
            return settings.snapshot_max_bytes
        return settings.max_body_bytes
    return limit_for


def create_app(settings: GatewaySettings | None = None, *, clickhouse: Any = None) -> FastAPI:
    """Build the gateway app; the stores are connected at startup (lifespan), not here.

    Args:
        settings: Validated settings (default: read from the environment).
        clickhouse: A ClickHouse driver to share (see :func:`gateway.state.start_gateway`).

    """
    settings = settings or GatewaySettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = await start_gateway(settings, clickhouse)
        app.state.gateway = gw
        try:
            yield
        finally:
            await gw.close()

    app = FastAPI(title="RVA gateway", version="1.0.0", description=DESCRIPTION, lifespan=lifespan,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    install_handlers(app)
    app.include_router(tenants.router)
    app.include_router(config.router)
    app.include_router(models.router)
    app.include_router(metrics.router)
    app.include_router(live.router)
    app.include_router(alerts.router)
    app.include_router(graphql_router(), prefix="/graphql", include_in_schema=False)

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request) -> JSONResponse:
        """Liveness and readiness: 200 when PostgreSQL answers, 503 otherwise."""
        gw: Gateway = request.app.state.gateway
        try:
            gw.registry.ping()
        except Exception as err:  # any failure means not ready
            return JSONResponse({"status": "unavailable", "detail": str(err)[:200]}, 503)
        return JSONResponse({"status": "ok"})

    @app.get("/v1/status", tags=["ops"])
    def status(request: Request, p: PrincipalDep) -> dict[str, Any]:
        """Counters of this gateway process (operator only)."""
        gw: Gateway = request.app.state.gateway
        require_operator(p, gw.settings)
        limiter = gw.limiter
        return {"counters": gw.counters, "live": vars(gw.hub.stats),
                "rate_limit": {"refused": limiter.refused, "redis_errors": limiter.errors} if limiter else None,
                "sinks": list(gw.settings.sinks)}

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @app.get("/dashboard/", include_in_schema=False)
    @app.get("/dashboard/{store}", include_in_schema=False)
    def dashboard(store: str | None = None) -> FileResponse:
        return FileResponse(DASHBOARD / "index.html", media_type="text/html")

    app.mount("/dashboard/static", StaticFiles(directory=DASHBOARD), name="dashboard-static")
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match"],
                           expose_headers=["ETag", "RateLimit-Limit", "RateLimit-Remaining", "Retry-After"])
    app.add_middleware(GatewayMiddleware, limit_for=_limit_for(settings))
    app.add_middleware(RequestMetrics, metrics=lambda: getattr(getattr(app.state, "gateway", None), "prometheus",
                                                               None))
    return app
