"""Tenants, stores, their versioned configuration documents and their edge API keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status

from gateway.auth import new_api_key
from gateway.deps import GatewayDep, PrincipalDep
from gateway.errors import Forbidden
from gateway.models import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    ConfigVersion,
    ConfigVersionInfo,
    StoreDocument,
    StoreIn,
    StoreOut,
    StorePatch,
    TenantIn,
    TenantOut,
    TenantPatch,
    dump,
)
from gateway.registry import ApiKeyRecord, StoreRecord
from gateway.routes.common import (
    StoreId,
    TenantId,
    is_operator,
    own_tenant,
    parse_version,
    require_operator,
    version_tag,
)

router = APIRouter(prefix="/v1")
KeyId = Annotated[str, Path(pattern=r"^[a-z0-9]{16}$", description="API key id.")]


def _store_out(r: StoreRecord) -> StoreOut:
    return StoreOut(id=r.id, tenant=r.tenant, name=r.name, timezone=r.timezone, config_version=r.config_version,
                    created_at=r.created_at)


def _key_out(r: ApiKeyRecord) -> ApiKeyOut:
    return ApiKeyOut(id=r.id, store=r.store, name=r.name, created_at=r.created_at, revoked_at=r.revoked_at)


# -- tenants --------------------------------------------------------------------------------------


@router.post("/tenants", status_code=status.HTTP_201_CREATED, tags=["tenants"])
def create_tenant(body: TenantIn, p: PrincipalDep, gw: GatewayDep) -> TenantOut:
    """Create a tenant (platform operator only)."""
    require_operator(p, gw.settings)
    gw.registry.create_tenant(body.id, body.name, dump(body.privacy), dump(body.retention))
    return TenantOut.model_validate(gw.registry.tenant(body.id))


@router.get("/tenants", tags=["tenants"])
def list_tenants(p: PrincipalDep, gw: GatewayDep) -> list[TenantOut]:
    """The caller's tenant (the operator sees every tenant)."""
    rows = gw.registry.tenants(None if is_operator(p, gw.settings) else p.tenant)
    return [TenantOut.model_validate(r) for r in rows]


@router.get("/tenants/{tenant}", tags=["tenants"])
def get_tenant(tenant: TenantId, p: PrincipalDep, gw: GatewayDep) -> TenantOut:
    """One tenant: its privacy and retention policies."""
    own_tenant(p, tenant, gw.settings)
    p.require("read")
    return TenantOut.model_validate(gw.registry.tenant(tenant))


@router.patch("/tenants/{tenant}", tags=["tenants"])
def update_tenant(tenant: TenantId, body: TenantPatch, p: PrincipalDep, gw: GatewayDep) -> TenantOut:
    """Change a tenant's name, privacy policy or retention windows (tenant admins)."""
    own_tenant(p, tenant, gw.settings)
    p.require("admin")
    gw.registry.tenant(tenant)
    gw.registry.update_tenant(tenant, body.model_dump(mode="json", exclude_none=True))
    gw.tenancy.forget(tenant)
    return TenantOut.model_validate(gw.registry.tenant(tenant))


@router.post("/admin/retention", tags=["tenants"])
def apply_retention(p: PrincipalDep, gw: GatewayDep) -> dict[str, list[str]]:
    """Drop stored data past every tenant's retention window now (operator; also run it from cron)."""
    from gateway.privacy import enforce_retention

    require_operator(p, gw.settings)
    return {"done": enforce_retention(gw.registry, gw.settings.postgres_dsn)}


# -- stores ---------------------------------------------------------------------------------------


@router.get("/stores", tags=["stores"])
def list_stores(p: PrincipalDep, gw: GatewayDep) -> list[StoreOut]:
    """The stores the caller may see."""
    p.require("read")
    return [_store_out(r) for r in gw.tenancy.stores(p)]


@router.post("/stores", status_code=status.HTTP_201_CREATED, tags=["stores"])
def create_store(body: StoreIn, p: PrincipalDep, gw: GatewayDep) -> StoreOut:
    """Create a store in the caller's tenant (admins). Its configuration starts empty, at version 1."""
    p.require("write_config")
    if p.stores is not None:
        raise Forbidden("a token limited to some stores may not create stores")
    gw.registry.create_store(p.tenant, body.id, body.name, body.timezone, p.subject)
    return _store_out(gw.registry.store(p.tenant, body.id))


@router.get("/stores/{store}", tags=["stores"])
def get_store(store: StoreId, p: PrincipalDep, gw: GatewayDep) -> StoreOut:
    """One store."""
    gw.tenancy.store(p, store, "read")
    return _store_out(gw.registry.store(p.tenant, store))  # fresh: the config version may have just moved


@router.patch("/stores/{store}", tags=["stores"])
def update_store(store: StoreId, body: StorePatch, p: PrincipalDep, gw: GatewayDep) -> StoreOut:
    """Rename a store or change its time zone (admins)."""
    gw.tenancy.store(p, store, "write_config")
    gw.registry.update_store(p.tenant, store, body.model_dump(exclude_none=True))
    gw.tenancy.forget(p.tenant, store)
    return _store_out(gw.registry.store(p.tenant, store))


@router.delete("/stores/{store}", status_code=status.HTTP_204_NO_CONTENT, tags=["stores"])
def delete_store(store: StoreId, p: PrincipalDep, gw: GatewayDep) -> Response:
    """Delete a store with its configs, keys and snapshots (admins). Its events age out by retention."""
    gw.tenancy.store(p, store, "write_config")
    gw.registry.delete_store(p.tenant, store)
    gw.tenancy.forget(p.tenant, store)
    return Response(status_code=204)


# -- configuration documents ----------------------------------------------------------------------


@router.get("/stores/{store}/config", tags=["config"], responses={304: {"description": "Not modified"}})
def get_config(
    store: StoreId, p: PrincipalDep, gw: GatewayDep, response: Response,
    version: Annotated[int | None, Query(ge=1, le=10**9, description="A past version (default: current).")] = None,
    if_none_match: Annotated[str | None, Header(description='"v<n>": 304 if still current.')] = None,
) -> Any:
    """The store's configuration (edges poll this with ``If-None-Match`` and get 304 until it changes)."""
    gw.tenancy.store(p, store, "pull_config")
    v, doc, at, by = gw.registry.config(p.tenant, store, version)
    if version is None and parse_version(if_none_match) == v:
        return Response(status_code=304, headers={"ETag": version_tag(v)})
    response.headers["ETag"] = version_tag(v)
    return ConfigVersion(store=store, version=v, document=StoreDocument.model_validate(doc), created_at=at,
                         created_by=by)


@router.put("/stores/{store}/config", tags=["config"])
def put_config(
    store: StoreId, body: StoreDocument, p: PrincipalDep, gw: GatewayDep, response: Response,
    if_match: Annotated[str | None, Header(description='"v<n>": refuse with 412 unless still current.')] = None,
) -> ConfigVersion:
    """Replace the whole configuration (admins); a new version when anything changed."""
    gw.tenancy.store(p, store, "write_config")
    new = dump(body)
    v = gw.registry.update_config(p.tenant, store, lambda _: new, p.subject, parse_version(if_match))
    response.headers["ETag"] = version_tag(v)
    _, doc, at, by = gw.registry.config(p.tenant, store, v)
    return ConfigVersion(store=store, version=v, document=StoreDocument.model_validate(doc), created_at=at,
                         created_by=by)


@router.get("/stores/{store}/config/versions", tags=["config"])
def config_versions(store: StoreId, p: PrincipalDep, gw: GatewayDep) -> list[ConfigVersionInfo]:
    """Every version of the configuration, newest first."""
    gw.tenancy.store(p, store, "read")
    return [ConfigVersionInfo(version=v, created_at=at, created_by=by)
            for v, at, by in gw.registry.config_versions(p.tenant, store)]


# -- API keys -------------------------------------------------------------------------------------


@router.get("/stores/{store}/api-keys", tags=["api keys"])
def list_api_keys(store: StoreId, p: PrincipalDep, gw: GatewayDep) -> list[ApiKeyOut]:
    """The store's device keys, revoked ones included (admins)."""
    gw.tenancy.store(p, store, "admin")
    return [_key_out(r) for r in gw.registry.api_keys(p.tenant, store)]


@router.post("/stores/{store}/api-keys", status_code=status.HTTP_201_CREATED, tags=["api keys"])
def create_api_key(store: StoreId, body: ApiKeyIn, p: PrincipalDep, gw: GatewayDep) -> ApiKeyCreated:
    """A new device key for this store (admins). The token is in this response only."""
    gw.tenancy.store(p, store, "admin")
    key_id, token, key_hash = new_api_key()
    r = gw.registry.create_api_key(p.tenant, store, key_id, body.name, key_hash)
    return ApiKeyCreated(**_key_out(r).model_dump(), token=token)


@router.delete("/stores/{store}/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["api keys"])
def revoke_api_key(store: StoreId, key_id: KeyId, p: PrincipalDep, gw: GatewayDep) -> Response:
    """Revoke a device key (admins); its next request gets 401."""
    gw.tenancy.store(p, store, "admin")
    gw.registry.revoke_api_key(p.tenant, store, key_id)
    return Response(status_code=204)
