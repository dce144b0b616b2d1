"""The ingest endpoint (edge sync) and the live WebSocket."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, WebSocket

import gateway.ingest as ingest_module
from gateway.auth import Principal, websocket_token
from gateway.deps import GatewayDep, PrincipalDep, get_gateway
from gateway.errors import Forbidden, GatewayError, NotFound, RateLimited, Unauthorized
from gateway.ingest import inflate, parse_batch
from gateway.models import IngestBatch, IngestResult
from gateway.routes.common import StoreId
from gateway.state import Gateway
from gateway.ws import LiveClient

router = APIRouter(prefix="/v1")

_INGEST_DOC = (ingest_module.__doc__ or "").split("\n\n", 1)[-1]


@router.post("/ingest/events", tags=["ingest"], description=_INGEST_DOC, openapi_extra={"requestBody": {
    "required": True, "content": {
        "application/json": {"schema": IngestBatch.model_json_schema(ref_template="#/components/schemas/{model}")},
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary",
                                              "description": "rva.sync.v1.EventBatch"}}}}})
async def ingest(
    request: Request, p: PrincipalDep, gw: GatewayDep,
    content_encoding: Annotated[str, Header(description="gzip (recommended) or identity")] = "identity",
    idempotency_key: Annotated[str | None, Header(max_length=128, description="The batch id.")] = None,
) -> IngestResult:
    """Accept a batch of events from an edge device; idempotent by batch id and event id."""
    p.require("ingest")
    s = gw.settings
    body = await request.body()
    data = inflate(body, content_encoding, s.ingest_max_inflated_bytes)
    batch = await asyncio.to_thread(parse_batch, data, request.headers.get("content-type", ""), p.tenant,
                                    idempotency_key, s.ingest_max_events)
    if not p.sees(batch.store):
        raise Forbidden(f"this key is for store {sorted(p.stores or [])[0]!r}, not {batch.store!r}")
    seen = await asyncio.to_thread(gw.registry.ingested_batch, batch.store, batch.batch_id)
    if seen is not None:
        gw.count("ingest_duplicate_batches")
        return IngestResult(batch_id=batch.batch_id, store=batch.store, events=seen[0], new_events=0,
                            duplicate_batch=True, sinks={k: 0 for k in seen[2]})
    sinks = await gw.sinks.commit(batch.records)
    if gw.sinks.js is None:
        gw.hub.publish_local(batch.records)
    new = sinks.get("postgres", max(sinks.values(), default=0))
    await asyncio.to_thread(gw.registry.record_batch, batch.store, batch.batch_id, len(batch.records), new, sinks)
    gw.count("ingest_batches")
    gw.count("ingest_events", len(batch.records))
    return IngestResult(batch_id=batch.batch_id, store=batch.store, events=len(batch.records), new_events=new,
                        duplicate_batch=False, sinks=sinks)


@router.websocket("/stores/{store}/live/ws")
async def live_ws(
    websocket: WebSocket, store: StoreId,
    types: Annotated[str | None, Query(max_length=400, description="Event types, comma-separated.")] = None,
    cameras: Annotated[str | None, Query(max_length=2000, description="Cameras, comma-separated.")] = None,
) -> None:
    """Live events, metrics and alerts of one store (see :mod:`gateway.ws` for the messages).

    Credentials: ``Authorization: Bearer …``, or from a browser the subprotocols ``["rva.v1",
    "bearer.<token>"]``. Refusals close with 4401 (credentials), 4404 (store), 4403 (role), 4429 (rate),
    1013 (gateway full).
    """
    gw = get_gateway(websocket)  # type: ignore[arg-type]
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    subprotocol = "rva.v1" if "rva.v1" in offered else None
    await websocket.accept(subprotocol=subprotocol)
    try:
        principal = await asyncio.to_thread(_authorize, gw, websocket, offered, store)
    except GatewayError as err:
        code = {Unauthorized: 4401, NotFound: 4404, Forbidden: 4403}.get(type(err), 4429 if err.status == 429 else 4400)
        await websocket.close(code=code, reason=err.detail[:120])
        return
    if gw.hub.full():
        await websocket.close(code=1013, reason="gateway at its WebSocket client limit; retry later")
        return
    client = LiveClient(websocket, principal, store, _names(types), _names(cameras))
    await gw.hub.serve(client)


def _authorize(gw: Gateway, websocket: WebSocket, offered: list[str], store: str) -> Principal:
    token = websocket_token(offered)
    header = websocket.headers.get("authorization")
    principal = gw.auth.authenticate(header if token is None else f"Bearer {token}",
                                     websocket.headers.get("x-api-key"))
    gw.tenancy.store(principal, store, "read")
    if gw.limiter is not None:
        limit = gw.settings.rate_limit_device if principal.kind == "device" else gw.settings.rate_limit_user
        decision = gw.limiter.check(principal.rate_key, limit)
        if not decision.allowed:
            raise RateLimited("rate limit reached")
    return principal


def _names(value: str | None) -> frozenset[str] | None:
    """A comma-separated filter as a set (None: no filter)."""
    names = frozenset(x.strip() for x in (value or "").split(",") if x.strip())
    return names or None
