"""Cameras, zones, lines, queues and alert rules: sub-resources of a store's configuration document.

Each change is validated by the config's own models (every camera is re-validated, so a zone outside
the camera's frame or a duplicate name fails with the field's path) and stored as a new version;
responses carry it as ``ETag: "v<n>"``, and ``If-Match`` makes a change conditional on it.
"""

# No `from __future__ import annotations` here: the routes are built in loops and FastAPI must see
# the body model classes themselves, not their names.

from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status
from pydantic import BaseModel, ValidationError

from gateway.auth import Action, Principal
from gateway.errors import Conflict, NotFound, Unprocessable, field_errors
from gateway.models import StoreDocument, dump
from gateway.routes.common import CameraId, Name, StoreId, parse_version, version_tag
from gateway.state import Gateway
from rva.config import AlertRuleConfig, CameraConfig, LineConfig, QueueConfig, ZoneConfig

from gateway.deps import GatewayDep, PrincipalDep  # isort: skip

router = APIRouter(prefix="/v1")
IfMatch = Annotated[str | None, Header(description='"v<n>": refuse with 412 unless the config is still at v<n>.')]
Doc = dict[str, Any]


def _change(gw: Gateway, p: Principal, store: str, action: Action, fn: Callable[[Doc], Doc], if_match: str | None,
            response: Response) -> Doc:
    """Apply ``fn`` to the current document, validate, store as the next version; return the new document."""
    gw.tenancy.store(p, store, action)

    def validated(doc: Doc) -> Doc:
        new = fn(doc)
        try:
            return dump(StoreDocument.model_validate(new))
        except ValidationError as err:
            fields = field_errors(list(err.errors()), ("document",))
            raise Unprocessable("; ".join(f"{f['field']}: {f['message']}" for f in fields[:3]), fields) from None

    version = gw.registry.update_config(p.tenant, store, validated, p.subject, parse_version(if_match))
    response.headers["ETag"] = version_tag(version)
    return gw.registry.config(p.tenant, store, version)[1]


def _doc(gw: Gateway, p: Principal, store: str, response: Response) -> Doc:
    gw.tenancy.store(p, store, "pull_config")
    version, doc, _, _ = gw.registry.config(p.tenant, store)
    response.headers["ETag"] = version_tag(version)
    return doc


def _find(items: list[Doc], key: str, value: str, what: str) -> Doc:
    for item in items:
        if item[key] == value:
            return item
    raise NotFound(f"{what} {value!r} not found")


def _added(items: list[Doc], item: Doc, key: str, what: str) -> list[Doc]:
    if any(i[key] == item[key] for i in items):
        raise Conflict(f"{what} {item[key]!r} exists")
    return [*items, item]


def _put(items: list[Doc], item: Doc, key: str) -> list[Doc]:
    return [i for i in items if i[key] != item[key]] + [item]


def _removed(items: list[Doc], key: str, value: str, what: str) -> list[Doc]:
    _find(items, key, value, what)
    return [i for i in items if i[key] != value]


def _same(field: str, body_value: str, path_value: str) -> None:
    if body_value != path_value:
        raise Unprocessable(f"{field}: the body says {body_value!r}, the path {path_value!r}",
                            [{"field": field, "message": "must equal the path's", "type": "value_error"}])


def _camera(doc: Doc, camera: str) -> Doc:
    return _find(doc["cameras"], "id", camera, "camera")


# -- cameras --------------------------------------------------------------------------------------


@router.get("/stores/{store}/cameras", tags=["config"])
def list_cameras(store: StoreId, p: PrincipalDep, gw: GatewayDep, response: Response) -> list[CameraConfig]:
    """The store's cameras with their zones, lines and queues."""
    return [CameraConfig.model_validate(c) for c in _doc(gw, p, store, response)["cameras"]]


@router.post("/stores/{store}/cameras", status_code=status.HTTP_201_CREATED, tags=["config"])
def add_camera(store: StoreId, body: CameraConfig, p: PrincipalDep, gw: GatewayDep, response: Response,
               if_match: IfMatch = None) -> CameraConfig:
    """Add a camera (admins); 409 if its id is taken."""
    def fn(doc: Doc) -> Doc:
        return {**doc, "cameras": _added(doc["cameras"], dump(body), "id", "camera")}

    return CameraConfig.model_validate(_camera(_change(gw, p, store, "write_config", fn, if_match, response), body.id))


@router.get("/stores/{store}/cameras/{camera}", tags=["config"])
def get_camera(store: StoreId, camera: CameraId, p: PrincipalDep, gw: GatewayDep, response: Response) -> CameraConfig:
    """One camera."""
    return CameraConfig.model_validate(_camera(_doc(gw, p, store, response), camera))


@router.put("/stores/{store}/cameras/{camera}", tags=["config"])
def put_camera(store: StoreId, camera: CameraId, body: CameraConfig, p: PrincipalDep, gw: GatewayDep,
               response: Response, if_match: IfMatch = None) -> CameraConfig:
    """Create or replace a camera (admins); the body's id must be the path's."""
    _same("id", body.id, camera)

    def fn(doc: Doc) -> Doc:
        return {**doc, "cameras": _put(doc["cameras"], dump(body), "id")}

    return CameraConfig.model_validate(_camera(_change(gw, p, store, "write_config", fn, if_match, response), camera))


@router.delete("/stores/{store}/cameras/{camera}", status_code=status.HTTP_204_NO_CONTENT, tags=["config"])
def delete_camera(store: StoreId, camera: CameraId, p: PrincipalDep, gw: GatewayDep, response: Response,
                  if_match: IfMatch = None) -> Response:
    """Remove a camera (admins); 404 if absent."""
    def fn(doc: Doc) -> Doc:
        return {**doc, "cameras": _removed(doc["cameras"], "id", camera, "camera")}

    _change(gw, p, store, "write_config", fn, if_match, response)
    return Response(status_code=204, headers={"ETag": response.headers["ETag"]})


# -- zones, lines, queues -------------------------------------------------------------------------


def _add_geometry(kind: str, model: type[BaseModel]) -> None:
    one = kind.rstrip("s")
    base = f"/stores/{{store}}/cameras/{{camera}}/{kind}"

    def in_camera(doc: Doc, camera: str, change: Callable[[list[Doc]], list[Doc]]) -> Doc:
        _camera(doc, camera)
        return {**doc, "cameras": [{**c, kind: change(c[kind])} if c["id"] == camera else c for c in doc["cameras"]]}

    def list_items(store: StoreId, camera: CameraId, p: PrincipalDep, gw: GatewayDep, response: Response) -> Any:
        return _camera(_doc(gw, p, store, response), camera)[kind]

    def get_item(store: StoreId, camera: CameraId, name: Name, p: PrincipalDep, gw: GatewayDep,
                 response: Response) -> Any:
        return _find(_camera(_doc(gw, p, store, response), camera)[kind], "name", name, one)

    def put_item(store: StoreId, camera: CameraId, name: Name, body: model, p: PrincipalDep,  # type: ignore[valid-type]
                 gw: GatewayDep, response: Response, if_match: IfMatch = None) -> Any:
        _same("name", body.name, name)  # type: ignore[attr-defined]
        item = dump(body)
        doc = _change(gw, p, store, "write_config", lambda d: in_camera(d, camera, lambda i: _put(i, item, "name")),
                      if_match, response)
        return _find(_camera(doc, camera)[kind], "name", name, one)

    def delete_item(store: StoreId, camera: CameraId, name: Name, p: PrincipalDep, gw: GatewayDep,
                    response: Response, if_match: IfMatch = None) -> Response:
        _change(gw, p, store, "write_config", lambda d: in_camera(d, camera, lambda i: _removed(i, "name", name, one)),
                if_match, response)
        return Response(status_code=204, headers={"ETag": response.headers["ETag"]})

    tags: list[str | Enum] = ["config"]
    router.add_api_route(base, list_items, methods=["GET"], response_model=list[model], tags=tags,  # type: ignore[valid-type]
                         name=f"list_{kind}", summary=f"The camera's {kind}")
    router.add_api_route(f"{base}/{{name}}", get_item, methods=["GET"], response_model=model, tags=tags,
                         name=f"get_{one}", summary=f"One {one}")
    router.add_api_route(f"{base}/{{name}}", put_item, methods=["PUT"], response_model=model, tags=tags,
                         name=f"put_{one}", summary=f"Create or replace a {one} (admins; a new config version)")
    router.add_api_route(f"{base}/{{name}}", delete_item, methods=["DELETE"], status_code=204, tags=tags,
                         name=f"delete_{one}", summary=f"Remove a {one} (admins; a new config version)",
                         response_class=Response)


for _kind, _model in (("zones", ZoneConfig), ("lines", LineConfig), ("queues", QueueConfig)):
    _add_geometry(_kind, _model)


# -- alert rules ----------------------------------------------------------------------------------


def _rules(fn: Callable[[list[Doc]], list[Doc]]) -> Callable[[Doc], Doc]:
    return lambda doc: {**doc, "alert_rules": fn(doc["alert_rules"])}


@router.get("/stores/{store}/alert-rules", tags=["alert rules"])
def list_rules(store: StoreId, p: PrincipalDep, gw: GatewayDep, response: Response) -> list[AlertRuleConfig]:
    """The store's alert rules."""
    return [AlertRuleConfig.model_validate(r) for r in _doc(gw, p, store, response)["alert_rules"]]


@router.post("/stores/{store}/alert-rules", status_code=status.HTTP_201_CREATED, tags=["alert rules"])
def add_rule(store: StoreId, body: AlertRuleConfig, p: PrincipalDep, gw: GatewayDep, response: Response,
             if_match: IfMatch = None) -> AlertRuleConfig:
    """Add an alert rule (admins, analysts); 409 if its name is taken."""
    doc = _change(gw, p, store, "write_rules", _rules(lambda r: _added(r, dump(body), "name", "alert rule")),
                  if_match, response)
    return AlertRuleConfig.model_validate(_find(doc["alert_rules"], "name", body.name, "alert rule"))


@router.get("/stores/{store}/alert-rules/{name}", tags=["alert rules"])
def get_rule(store: StoreId, name: Name, p: PrincipalDep, gw: GatewayDep, response: Response) -> AlertRuleConfig:
    """One alert rule."""
    return AlertRuleConfig.model_validate(_find(_doc(gw, p, store, response)["alert_rules"], "name", name,
                                                "alert rule"))


@router.put("/stores/{store}/alert-rules/{name}", tags=["alert rules"])
def put_rule(store: StoreId, name: Name, body: AlertRuleConfig, p: PrincipalDep, gw: GatewayDep, response: Response,
             if_match: IfMatch = None) -> AlertRuleConfig:
    """Create or replace an alert rule (admins, analysts)."""
    _same("name", body.name, name)
    doc = _change(gw, p, store, "write_rules", _rules(lambda r: _put(r, dump(body), "name")), if_match, response)
    return AlertRuleConfig.model_validate(_find(doc["alert_rules"], "name", name, "alert rule"))


@router.delete("/stores/{store}/alert-rules/{name}", status_code=status.HTTP_204_NO_CONTENT, tags=["alert rules"])
def delete_rule(store: StoreId, name: Name, p: PrincipalDep, gw: GatewayDep, response: Response,
                if_match: IfMatch = None) -> Response:
    """Remove an alert rule (admins, analysts)."""
    _change(gw, p, store, "write_rules", _rules(lambda r: _removed(r, "name", name, "alert rule")), if_match, response)
    return Response(status_code=204, headers={"ETag": response.headers["ETag"]})
