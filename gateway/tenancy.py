"""Tenant isolation: every store access and every query scope is derived from the caller, never the request.

A store outside the caller's tenant or store list is *not found* (404, the same answer as a store
that does not exist, so ids do not leak); a visible store the role may not change is *forbidden*
(403). Query scopes take the tenant from the :class:`~gateway.auth.Principal`, and the stores'
query layer filters every statement on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.auth import Action, Principal
from gateway.errors import NotFound
from gateway.pool import Pool
from gateway.registry import Registry, StoreRecord
from rva.stores.query import EventQueries
from rva.stores.results import MAX_WINDOW, Scope


class QueryPool(Pool[EventQueries]):
    """Several :class:`EventQueries` (each holds one PostgreSQL connection); a call checks one out.

    Args:
        factory: Builds one ``EventQueries``.
        size: How many at most (queries beyond it wait).
        clickhouse: The ClickHouse driver they share (None: none).

    """

    def __init__(self, factory: Callable[[], EventQueries], size: int, clickhouse: Any = None) -> None:
        super().__init__(factory, size, close=lambda q: q.close(), what="query-layer connection")
        self.clickhouse = clickhouse


class Tenancy:
    """Store access checks and query scopes for a caller.

    Args:
        registry: Tenants and stores.
        tenant_ttl_s: How long tenant settings (retention) are cached.
        store_ttl_s: How long a store's ownership is cached (keyed by tenant, so never shared across tenants;
            a deleted store stops answering within this long on other gateway processes).

    """

    def __init__(self, registry: Registry, tenant_ttl_s: float = 5.0, store_ttl_s: float = 2.0) -> None:
        self.registry = registry
        self.tenant_ttl_s = tenant_ttl_s
        self.store_ttl_s = store_ttl_s
        self._tenants: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stores: dict[tuple[str, str], tuple[float, StoreRecord]] = {}
        self._lock = threading.Lock()

    def store(self, principal: Principal, store: str, action: Action) -> StoreRecord:
        """The store, if the caller may see it and its role allows ``action``.

        Raises:
            NotFound: Not the caller's tenant's store, not in its store list, or absent.
            Forbidden: Visible, but the role may not do ``action``.

        """
        if not principal.sees(store):
            raise NotFound(f"store {store!r} not found")
        key = (principal.tenant, store)
        now = time.monotonic()
        with self._lock:
            hit = self._stores.get(key)
        if hit is not None and now - hit[0] < self.store_ttl_s:
            record = hit[1]
        else:
            record = self.registry.store(principal.tenant, store)  # filters on the tenant in SQL
            with self._lock:
                if len(self._stores) > 10_000:
                    self._stores.clear()
                self._stores[key] = (now, record)
        principal.require(action)
        return record

    def stores(self, principal: Principal) -> list[StoreRecord]:
        """The stores the caller may see."""
        return self.registry.stores(principal.tenant, principal.stores)

    def tenant(self, tenant: str) -> dict[str, Any]:
        """A tenant's settings (cached for ``tenant_ttl_s``)."""
        now = time.monotonic()
        with self._lock:
            hit = self._tenants.get(tenant)
        if hit and now - hit[0] < self.tenant_ttl_s:
            return hit[1]
        record = self.registry.tenant(tenant)
        with self._lock:
            self._tenants[tenant] = (now, record)
        return record

    def forget(self, tenant: str, store: str | None = None) -> None:
        """Drop a cached tenant (after its settings changed), or one of its stores (after a change to it)."""
        with self._lock:
            if store is None:
                self._tenants.pop(tenant, None)
            else:
                self._stores.pop((tenant, store), None)

    def scope(
        self, principal: Principal, store: str, start: datetime | None = None, end: datetime | None = None,
        camera: str | None = None, *, default_span: timedelta = timedelta(hours=24),
    ) -> Scope:
        """The query scope of a read: the caller's tenant, one visible store, a window within retention.

        The window defaults to the last ``default_span``; its start is raised to the tenant's retention
        horizon, so data past it is never served even before the stores have dropped it.

        Raises:
            NotFound: The store is not visible.
            Forbidden: The caller may not read.
            ValueError: The window is empty, naive, too long, or entirely past retention.

        """
        self.store(principal, store, "read")
        now = datetime.now(UTC)
        end = end or now
        start = start or (end - default_span)
        for name, value in (("start", start), ("end", end)):
            if value.tzinfo is None:
                raise ValueError(f"{name}: expected a timezone-aware time (e.g. 2026-03-07T10:00:00Z), got {value}")
        horizon = now - timedelta(days=int(self.tenant(principal.tenant)["retention"]["raw_days"]))
        if end <= horizon:
            raise ValueError(f"end: the window lies past the tenant's retention horizon ({horizon.isoformat()})")
        if end - start > MAX_WINDOW:
            raise ValueError(f"window: expected at most {MAX_WINDOW.days} days, got {end - start}")
        return Scope(tenant=principal.tenant, start=max(start, horizon), end=end, store=store, camera=camera)
