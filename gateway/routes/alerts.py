"""Alerts the alerts service could not deliver: its ``alert_undelivered`` dead letters, from the event store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway.deps import GatewayDep, PrincipalDep
from gateway.routes.common import StoreId
from gateway.routes.metrics import Camera, End, Start
from rva.core.events import EventType

router = APIRouter(prefix="/v1/stores/{store}", tags=["alerts"])


@router.get("/alerts/dead-letters")
def dead_letters(store: StoreId, p: PrincipalDep, gw: GatewayDep, start: Start = None, end: End = None,
                 camera: Camera = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """Alerts given up on after their retries, newest first (default window: the last 24 hours).

    Each row is the ``alert_undelivered`` event: ``{event_id, store, camera, ts, zone/queue/track_id, attrs:
    {sink, sink_type, attempts, status, error, alert_id, rule, kind, severity, message, failed_at}}``.
    """
    scope = gw.metrics.scope(p, store, start, end, camera)
    with gw.pool.get() as q:
        rows = q.events(scope, event_type=EventType.ALERT_UNDELIVERED.value, limit=limit)
    return [{"event_id": r.event_id.hex, "store": r.store, **r.event.to_dict()} for r in rows]
