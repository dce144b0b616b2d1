"""A store's detector model manifest: which model file its edge devices download and run.

Versioned like the configuration: every change is a new revision, answered as ``ETag: "v<n>"``; an
edge polls with ``If-None-Match`` and gets 304 until it changes, then applies the manifest
(:class:`rva.sync.models.ModelUpdater`: download, verify, swap, roll back if it fails to load).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response

from gateway.deps import GatewayDep, PrincipalDep
from gateway.models import ModelManifestRevision, dump
from gateway.routes.common import StoreId, parse_version, version_tag
from rva.sync.models import ModelManifest

router = APIRouter(prefix="/v1")


def _revision(store: str, row: tuple[int, dict[str, Any], Any, str]) -> ModelManifestRevision:
    revision, manifest, at, by = row
    return ModelManifestRevision(store=store, revision=revision, manifest=ModelManifest.model_validate(manifest),
                                 created_at=at, created_by=by)


@router.get("/stores/{store}/model", tags=["models"],
            responses={304: {"description": "Not modified"}, 404: {"description": "No such store, or no manifest"}})
def get_model(
    store: StoreId, p: PrincipalDep, gw: GatewayDep, response: Response,
    if_none_match: Annotated[str | None, Header(description='"v<n>": 304 if still current.')] = None,
) -> Any:
    """The store's model manifest (edge devices poll this with ``If-None-Match``); 404 until one is set."""
    gw.tenancy.store(p, store, "pull_config")
    row = gw.registry.model_manifest(p.tenant, store)
    if parse_version(if_none_match) == row[0]:
        return Response(status_code=304, headers={"ETag": version_tag(row[0])})
    response.headers["ETag"] = version_tag(row[0])
    return _revision(store, row)


@router.put("/stores/{store}/model", tags=["models"])
def put_model(
    store: StoreId, body: ModelManifest, p: PrincipalDep, gw: GatewayDep, response: Response,
    if_match: Annotated[str | None, Header(description='"v<n>": refuse with 412 unless still current.')] = None,
) -> ModelManifestRevision:
    """Set the model the store's edges run (admins); a new revision when anything changed."""
    gw.tenancy.store(p, store, "write_config")
    revision = gw.registry.put_model_manifest(p.tenant, store, dump(body), p.subject, parse_version(if_match))
    response.headers["ETag"] = version_tag(revision)
    return _revision(store, gw.registry.model_manifest(p.tenant, store))
