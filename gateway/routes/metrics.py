"""Metrics through the stores' query layer, heatmaps (grid and PNG), camera snapshots, live view, alerts.

Windows are ``start``/``end`` ISO 8601 times with a zone (default: the last 24 hours); filters are
bound as parameters by the query layer, and ids are checked against the id pattern before any query.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from gateway.deps import GatewayDep, PrincipalDep
from gateway.errors import NotFound, Unprocessable
from gateway.images import decode_image, heatmap_png
from gateway.metrics import grid_dict
from gateway.routes.common import CameraId, StoreId

router = APIRouter(prefix="/v1/stores/{store}", tags=["metrics"])

Start = Annotated[datetime | None, Query(description="Window start, ISO 8601 with a zone (default: end - 24 h).")]
End = Annotated[datetime | None, Query(description="Window end, ISO 8601 with a zone (default: now).")]
Camera = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="One camera.")]
NameQ = Annotated[str | None, Query(pattern=r"^[^\x00-\x1f]{1,64}$", description="A name (no control characters).")]
Rows = list[dict[str, Any]]


@router.get("/metrics/occupancy")
def occupancy(store: StoreId, p: PrincipalDep, gw: GatewayDep, start: Start = None, end: End = None,
              camera: Camera = None, zone: NameQ = None,
              step_s: Annotated[float, Query(gt=0, le=86400, description="Sampling step.")] = 300.0) -> Rows:
    """People in each zone, sampled every ``step_s``: ``[{camera, zone, ts, occupancy, peak}]``."""
    return gw.metrics.occupancy(p, store, start, end, camera=camera, zone=zone, step_s=step_s)


@router.get("/metrics/footfall")
def footfall(store: StoreId, p: PrincipalDep, gw: GatewayDep, start: Start = None, end: End = None,
             camera: Camera = None, line: NameQ = None,
             tz: Annotated[str | None, Query(max_length=64, description="IANA zone (default: the store's).")] = None,
             ) -> Rows:
    """Line crossings per local hour, zeros included: ``[{hour, in_count, out_count}]``."""
    return gw.metrics.footfall(p, store, start, end, camera=camera, line=line, tz=tz)


@router.get("/metrics/dwell")
def dwell(store: StoreId, p: PrincipalDep, gw: GatewayDep, start: Start = None, end: End = None,
          camera: Camera = None, zone: NameQ = None) -> Rows:
    """Dwell histogram and percentiles of the visits that ended in the window, per zone."""
    return gw.metrics.dwell(p, store, start, end, camera=camera, zone=zone)


@router.get("/metrics/queues")
def queues(store: StoreId, p: PrincipalDep, gw: GatewayDep, start: Start = None, end: End = None,
           camera: Camera = None, queue: NameQ = None) -> Rows:
    """Joined, served, abandoned and wait percentiles per queue."""
    return gw.metrics.queues(p, store, start, end, camera=camera, queue=queue)


@router.get("/metrics/funnel")
def funnel(store: StoreId, p: PrincipalDep, gw: GatewayDep,
           steps: Annotated[str | None, Query(max_length=1400, description="Zones in order, comma-separated "
                                              "(default: the store config's funnel).")] = None,
           start: Start = None, end: End = None,
           window_s: Annotated[float, Query(gt=0, le=86400)] = 3600.0) -> Rows:
    """Visitors reaching each zone in order, and the conversion: ``[{zone, visitors, conversion, ...}]``."""
    names = [s.strip() for s in steps.split(",") if s.strip()] if steps else _default_funnel(gw, p, store)
    if not names or len(names) > 20 or any(len(n) > 64 or any(ord(ch) < 32 for ch in n) for n in names):
        message = "expected 1 to 20 zone names of 1-64 characters"
        raise Unprocessable(f"steps: {message}", [{"field": "steps", "message": message, "type": "value_error"}])
    return gw.metrics.funnel(p, store, names, start, end, window_s=window_s)


def _default_funnel(gw: Any, p: Any, store: str) -> list[str]:
    gw.tenancy.store(p, store, "read")
    doc = gw.registry.config(p.tenant, store)[1]
    return list(doc.get("funnel") or [z["name"] for c in doc.get("cameras", [])[:1] for z in c.get("zones", [])])


@router.get("/metrics/journeys")
def journeys(store: StoreId, p: PrincipalDep, gw: GatewayDep, start: Start = None, end: End = None,
             limit: Annotated[int, Query(ge=1, le=100)] = 10, min_zones: Annotated[int, Query(ge=1, le=20)] = 1,
             ends_at: NameQ = None) -> Rows:
    """The most common zone paths: ``[{path, visitors}]``."""
    return gw.metrics.journeys(p, store, start, end, limit=limit, min_zones=min_zones, ends_at=ends_at)


@router.get("/metrics/hourly")
def hourly(store: StoreId, p: PrincipalDep, gw: GatewayDep, start: Start = None, end: End = None,
           camera: Camera = None,
           event_type: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None) -> Rows:
    """Distinct events per hour, camera, kind and name."""
    return gw.metrics.hourly(p, store, start, end, camera=camera, event_type=event_type)


@router.get("/live")
def live(store: StoreId, p: PrincipalDep, gw: GatewayDep,
         recent: Annotated[int, Query(ge=0, le=500)] = 20) -> dict[str, Any]:
    """The store now (Redis): occupancy per zone, queues with wait estimates, today's line counts, latest events."""
    return gw.metrics.live(p, store, recent=recent)


@router.get("/alerts")
def alerts(store: StoreId, p: PrincipalDep, gw: GatewayDep,
           limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Rows:
    """The latest alerts raised by the store's rules, newest first."""
    gw.tenancy.store(p, store, "read")
    return gw.alerts.latest(p.tenant, store, limit) if gw.alerts is not None else []


@router.get("/cameras/{camera}/heatmap")
def heatmap(store: StoreId, camera: CameraId, p: PrincipalDep, gw: GatewayDep, start: Start = None,
            end: End = None) -> dict[str, Any]:
    """Person-seconds per grid cell: ``{camera, cell_px, rows, cols, grid: [[...]], snapshots, skipped}``."""
    return grid_dict(gw.metrics.heatmap(p, store, camera, start, end))


@router.get("/cameras/{camera}/heatmap.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "The heatmap over the camera snapshot."}})
def heatmap_image(store: StoreId, camera: CameraId, p: PrincipalDep, gw: GatewayDep, start: Start = None,
                  end: End = None) -> Response:
    """The heatmap drawn over the camera's privacy-filtered snapshot (grey when there is none)."""
    grid = gw.metrics.heatmap(p, store, camera, start, end)
    snap = gw.registry.snapshot(p.tenant, store, camera)
    background = decode_image(snap.image) if snap is not None else None
    return Response(heatmap_png(grid, background), media_type="image/png")


@router.get("/cameras/{camera}/snapshot.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "The privacy-filtered snapshot."}})
def snapshot(store: StoreId, camera: CameraId, p: PrincipalDep, gw: GatewayDep) -> Response:
    """The camera's latest snapshot, as stored after the privacy policy."""
    gw.tenancy.store(p, store, "read")
    snap = gw.registry.snapshot(p.tenant, store, camera)
    if snap is None:
        raise NotFound(f"no snapshot of camera {camera!r}")
    return Response(snap.image, media_type="image/jpeg", headers={
        "X-Privacy": snap.privacy, "X-People-Blurred": str(snap.people_blurred),
        "Last-Modified": snap.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT")})


@router.put("/cameras/{camera}/snapshot", openapi_extra={"requestBody": {"required": True, "content": {
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}}}}})
async def put_snapshot(
    store: StoreId, camera: CameraId, request: Request, p: PrincipalDep, gw: GatewayDep,
    x_person_boxes: Annotated[str | None, Header(max_length=20000, description="Person boxes the edge found, "
                                                 "JSON [[x1, y1, x2, y2], ...]; blurred too.")] = None,
) -> dict[str, Any]:
    """Upload a camera snapshot (the edge device, or an admin). People are blurred per the tenant's policy."""
    import asyncio

    await asyncio.to_thread(gw.tenancy.store, p, store, "upload_snapshot")
    data = await request.body()
    boxes = _boxes(x_person_boxes)
    policy = (await asyncio.to_thread(gw.tenancy.tenant, p.tenant))["privacy"]
    out = await asyncio.to_thread(gw.privacy.apply, data, policy, boxes)
    await asyncio.to_thread(gw.registry.put_snapshot, p.tenant, store, camera, out.jpeg, out.size, out.applied,
                            out.people)
    return {"store": store, "camera": camera, "width": out.size[0], "height": out.size[1], "privacy": out.applied,
            "people_blurred": out.people}


def _boxes(header: str | None) -> list[tuple[float, float, float, float]]:
    if not header:
        return []
    try:
        raw = json.loads(header)
        boxes = [tuple(float(v) for v in b) for b in raw]
        if len(boxes) > 1000 or any(len(b) != 4 for b in boxes):
            raise ValueError("expected at most 1000 boxes of 4 numbers")
    except (ValueError, TypeError) as err:
        raise Unprocessable(f"X-Person-Boxes: {err}", [{"field": "X-Person-Boxes", "message": str(err),
                                                        "type": "value_error"}]) from None
    return boxes  # type: ignore[return-value]
