"""GraphQL read API (strawberry) over the same metrics service as REST, with depth, alias, token and cost limits.

Every resolver goes through :class:`gateway.metrics.MetricsService` with the caller's principal, so
tenant and store visibility are exactly REST's. A store the caller may not see resolves to null.
Cost: each field costs 1, each metrics field 10, and fields under the ``stores`` list count
``STORES_FACTOR`` times; a query over ``MAX_COST`` is refused before anything runs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import strawberry
from fastapi import Depends
from graphql import FieldNode, FragmentSpreadNode, GraphQLError, InlineFragmentNode, OperationDefinitionNode
from graphql.validation import ValidationContext, ValidationRule
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.fastapi import GraphQLRouter
from strawberry.scalars import JSON
from strawberry.types import Info

from gateway.auth import Principal
from gateway.deps import get_gateway, get_principal
from gateway.errors import NotFound
from gateway.state import Gateway

MAX_DEPTH = 6
MAX_COST = 300
STORES_FACTOR = 10
METRIC_FIELDS = frozenset({"occupancy", "footfall", "dwell", "queueWaits", "funnel", "journeys", "live"})


def _ctx(info: Info) -> tuple[Gateway, Principal]:
    return info.context["gateway"], info.context["principal"]


@strawberry.type
class OccupancyPoint:
    """People in a zone at ``ts`` and the peak until the next sample."""

    camera: str
    zone: str
    ts: datetime
    occupancy: int
    peak: int


@strawberry.type
class FootfallHour:
    """Line crossings in one local hour."""

    hour: datetime
    in_count: int
    out_count: int


@strawberry.type
class Dwell:
    """Dwell statistics of a zone's visits."""

    camera: str
    zone: str
    visits: int
    mean_s: float
    p50_s: float
    p90_s: float
    max_s: float
    edges: list[float]
    counts: list[int]


@strawberry.type
class QueueWaits:
    """A queue's outcomes and waits."""

    camera: str
    queue: str
    joined: int
    served: int
    abandoned: int
    mean_wait_s: float | None
    max_wait_s: float | None
    percentiles: JSON


@strawberry.type
class FunnelStep:
    """Visitors reaching a zone in order."""

    zone: str
    visitors: int
    conversion: float
    step_conversion: float


@strawberry.type
class Journey:
    """A zone path and how many took it."""

    path: list[str]
    visitors: int


@strawberry.type
class Camera:
    """A configured camera."""

    id: str
    zones: list[str]
    lines: list[str]
    queues: list[str]


def _rows(cls: Any, rows: list[dict[str, Any]]) -> list[Any]:
    names = set(cls.__annotations__)
    return [cls(**{k: (datetime.fromisoformat(v) if k in ("ts", "hour") else v) for k, v in r.items() if k in names})
            for r in rows]


@strawberry.type
class Store:
    """A store and its metrics. Windows default to the last 24 hours."""

    id: str
    name: str
    timezone: str
    config_version: int

    @strawberry.field
    async def tenant(self, info: Info) -> Tenant:
        """The store's tenant (the caller's own)."""
        return await _tenant(info)

    @strawberry.field
    async def cameras(self, info: Info) -> list[Camera]:
        """Cameras from the current config."""
        gw, p = _ctx(info)
        doc = (await asyncio.to_thread(gw.registry.config, p.tenant, self.id))[1]
        return [Camera(id=c["id"], zones=[z["name"] for z in c.get("zones", [])],
                       lines=[ln["name"] for ln in c.get("lines", [])], queues=[q["name"] for q in c.get("queues", [])])
                for c in doc.get("cameras", [])]

    @strawberry.field
    async def occupancy(self, info: Info, start: datetime | None = None, end: datetime | None = None,
                        camera: str | None = None, zone: str | None = None,
                        step_s: float = 300.0) -> list[OccupancyPoint]:
        """Zone occupancy sampled every ``step_s``."""
        gw, p = _ctx(info)
        rows = await asyncio.to_thread(gw.metrics.occupancy, p, self.id, start, end, camera=camera, zone=zone,
                                       step_s=step_s)
        return _rows(OccupancyPoint, rows)

    @strawberry.field
    async def footfall(self, info: Info, start: datetime | None = None, end: datetime | None = None,
                       camera: str | None = None, line: str | None = None) -> list[FootfallHour]:
        """Crossings per local hour."""
        gw, p = _ctx(info)
        rows = await asyncio.to_thread(gw.metrics.footfall, p, self.id, start, end, camera=camera, line=line)
        return _rows(FootfallHour, rows)

    @strawberry.field
    async def dwell(self, info: Info, start: datetime | None = None, end: datetime | None = None,
                    camera: str | None = None, zone: str | None = None) -> list[Dwell]:
        """Dwell distribution per zone."""
        gw, p = _ctx(info)
        return _rows(Dwell, await asyncio.to_thread(gw.metrics.dwell, p, self.id, start, end, camera=camera,
                                                    zone=zone))

    @strawberry.field
    async def queue_waits(self, info: Info, start: datetime | None = None, end: datetime | None = None,
                          camera: str | None = None, queue: str | None = None) -> list[QueueWaits]:
        """Queue outcomes and waits."""
        gw, p = _ctx(info)
        return _rows(QueueWaits, await asyncio.to_thread(gw.metrics.queues, p, self.id, start, end, camera=camera,
                                                         queue=queue))

    @strawberry.field
    async def funnel(self, info: Info, steps: list[str], start: datetime | None = None, end: datetime | None = None,
                     window_s: float = 3600.0) -> list[FunnelStep]:
        """Conversion through zones in order."""
        gw, p = _ctx(info)
        if not 1 <= len(steps) <= 20:
            raise ValueError("steps: expected 1 to 20 zone names")
        return _rows(FunnelStep, await asyncio.to_thread(gw.metrics.funnel, p, self.id, steps, start, end,
                                                         window_s=window_s))

    @strawberry.field
    async def journeys(self, info: Info, start: datetime | None = None, end: datetime | None = None,
                       limit: int = 10) -> list[Journey]:
        """Most common zone paths."""
        gw, p = _ctx(info)
        if not 1 <= limit <= 100:
            raise ValueError("limit: expected 1 to 100")
        return _rows(Journey, await asyncio.to_thread(gw.metrics.journeys, p, self.id, start, end, limit=limit))

    @strawberry.field
    async def live(self, info: Info) -> JSON:
        """The live view (occupancy, queues with wait estimates, today's line counts)."""
        gw, p = _ctx(info)
        view: dict[str, Any] = await asyncio.to_thread(gw.metrics.live, p, self.id, recent=0)
        return view  # type: ignore[return-value]


def _store(r: Any) -> Store:
    return Store(id=r.id, name=r.name, timezone=r.timezone, config_version=r.config_version)


@strawberry.type
class Tenant:
    """The caller's tenant."""

    id: str
    name: str
    retention_days: int

    @strawberry.field
    async def stores(self, info: Info) -> list[Store]:
        """The tenant's stores the caller may see."""
        gw, p = _ctx(info)
        return [_store(r) for r in await asyncio.to_thread(gw.tenancy.stores, p)]


async def _tenant(info: Info) -> Tenant:
    gw, p = _ctx(info)
    p.require("read")
    t = await asyncio.to_thread(gw.tenancy.tenant, p.tenant)
    return Tenant(id=t["id"], name=t["name"], retention_days=int(t["retention"]["raw_days"]))


@strawberry.type
class Query:
    """Read-only access to the caller's stores."""

    @strawberry.field
    async def tenant(self, info: Info) -> Tenant:
        """The caller's tenant."""
        return await _tenant(info)

    @strawberry.field
    async def stores(self, info: Info) -> list[Store]:
        """The stores the caller may see."""
        gw, p = _ctx(info)
        p.require("read")
        return [_store(r) for r in await asyncio.to_thread(gw.tenancy.stores, p)]

    @strawberry.field
    async def store(self, info: Info, id: str) -> Store | None:
        """One store, or null when the caller may not see it."""
        gw, p = _ctx(info)
        try:
            await asyncio.to_thread(gw.tenancy.store, p, id, "read")
        except NotFound:
            return None
        return _store(await asyncio.to_thread(gw.registry.store, p.tenant, id))


class CostLimit(ValidationRule):
    """Refuses operations whose estimated cost is over :data:`MAX_COST` (fragments expanded)."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        """Estimate the operation's cost and report it when over the limit."""
        cost = self._cost(node.selection_set, 1, set())
        if cost > MAX_COST:
            self.report_error(GraphQLError(f"query cost {cost} is over the limit {MAX_COST}", node))

    def _cost(self, selection_set: Any, factor: int, seen: set[str]) -> int:
        if selection_set is None:
            return 0
        total = 0
        ctx: ValidationContext = self.context
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                name = sel.name.value
                if name.startswith("__"):
                    continue
                weight = 10 if name in METRIC_FIELDS else 1
                child = factor * STORES_FACTOR if name == "stores" else factor  # a list of stores fans out
                total += weight * factor + self._cost(sel.selection_set, child, seen)
            elif isinstance(sel, InlineFragmentNode):
                total += self._cost(sel.selection_set, factor, seen)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                frag = ctx.get_fragment(sel.name.value)
                if frag is not None:
                    total += self._cost(frag.selection_set, factor, seen | {sel.name.value})
        return total


def _ignore_introspection(ctx: Any) -> bool:
    return bool(ctx.field_name.startswith("__"))


schema = strawberry.Schema(query=Query, extensions=[
    lambda: QueryDepthLimiter(max_depth=MAX_DEPTH, should_ignore=_ignore_introspection),
    lambda: MaxAliasesLimiter(max_alias_count=15),
    lambda: MaxTokensLimiter(max_token_count=2000),
    lambda: AddValidationRules([CostLimit]),
])


async def _context(gw: Annotated[Gateway, Depends(get_gateway)],
                   p: Annotated[Principal, Depends(get_principal)]) -> dict[str, Any]:
    return {"gateway": gw, "principal": p}


def graphql_router() -> GraphQLRouter[Any, Any]:
    """The ``/graphql`` router (GraphiQL in a browser; POST queries with a bearer token)."""
    return GraphQLRouter(schema, context_getter=_context, graphql_ide="graphiql", allow_queries_via_get=False)
