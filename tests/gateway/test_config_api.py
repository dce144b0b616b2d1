"""REST resources: stores, versioned configs, cameras, zones, lines, queues, alert rules, API keys."""

from __future__ import annotations

import copy

import pytest
from gateway_env import CAMERA, Env


def test_store_lifecycle_and_config_versions(env: Env) -> None:
    c, h = env.client, env.auth()
    assert c.post("/v1/stores", json={"id": "cfg1", "name": "Config store", "timezone": "Europe/Paris"},
                  headers=h).status_code == 201
    r = c.get("/v1/stores/cfg1/config", headers=h)
    assert r.status_code == 200 and r.json()["version"] == 1 and r.headers["etag"] == '"v1"'
    assert r.json()["document"] == {"cameras": [], "alert_rules": [], "funnel": []}
    # an edge polling with the current tag gets 304 until something changes
    assert c.get("/v1/stores/cfg1/config", headers={**h, "If-None-Match": '"v1"'}).status_code == 304
    r = c.post("/v1/stores/cfg1/cameras", json=CAMERA, headers=h)
    assert r.status_code == 201 and r.headers["etag"] == '"v2"'
    assert c.post("/v1/stores/cfg1/cameras", json=CAMERA, headers=h).status_code == 409
    zone = {"name": "new_zone", "polygon": [[10, 10], [100, 10], [100, 100]], "capacity": 3}
    r = c.put("/v1/stores/cfg1/cameras/cam1/zones/new_zone", json=zone, headers={**h, "If-Match": '"v2"'})
    assert r.status_code == 200 and r.json()["capacity"] == 3 and r.headers["etag"] == '"v3"'
    # a stale If-Match loses, nothing is written
    assert c.put("/v1/stores/cfg1/cameras/cam1/zones/new_zone", json=zone,
                 headers={**h, "If-Match": '"v2"'}).status_code == 412
    assert c.get("/v1/stores/cfg1/config", headers={**h, "If-None-Match": '"v1"'}).json()["version"] == 3
    names = [z["name"] for z in c.get("/v1/stores/cfg1/cameras/cam1/zones", headers=h).json()]
    assert names == ["entrance", "till", "new_zone"]
    line = {"name": "door", "start": [350, 0], "end": [350, 400]}
    assert c.put("/v1/stores/cfg1/cameras/cam1/lines/door", json=line, headers=h).json()["end"] == [350, 400]
    assert c.delete("/v1/stores/cfg1/cameras/cam1/zones/new_zone", headers=h).status_code == 204
    assert c.delete("/v1/stores/cfg1/cameras/cam1/zones/new_zone", headers=h).status_code == 404
    assert c.get("/v1/stores/cfg1/cameras/cam1/queues/checkout", headers=h).json()["join_after_s"] == 2.0
    versions = [v["version"] for v in c.get("/v1/stores/cfg1/config/versions", headers=h).json()]
    assert versions == [5, 4, 3, 2, 1]
    old = c.get("/v1/stores/cfg1/config?version=2", headers=h).json()
    assert [z["name"] for z in old["document"]["cameras"][0]["zones"]] == ["entrance", "till"]
    # an unchanged PUT makes no new version
    doc = c.get("/v1/stores/cfg1/config", headers=h).json()["document"]
    assert c.put("/v1/stores/cfg1/config", json=doc, headers=h).json()["version"] == 5
    assert c.get("/v1/stores/cfg1", headers=h).json()["config_version"] == 5
    assert c.delete("/v1/stores/cfg1", headers=h).status_code == 204
    assert c.get("/v1/stores/cfg1", headers=h).status_code == 404


def test_alert_rules_are_validated_and_versioned(env: Env) -> None:
    env.store("rules1")
    c, h = env.client, env.auth(role="analyst")
    rule = {"name": "long_queue", "kind": "queue_length", "camera": "cam1", "target": "checkout", "threshold": 4,
            "for_s": 10, "cooldown_s": 120, "severity": "critical"}
    r = c.post("/v1/stores/rules1/alert-rules", json=rule, headers=h)
    assert r.status_code == 201, r.text
    assert c.get("/v1/stores/rules1/alert-rules/long_queue", headers=h).json()["severity"] == "critical"
    bad = {**rule, "name": "no_threshold", "threshold": None}
    r = c.post("/v1/stores/rules1/alert-rules", json=bad, headers=h)
    assert r.status_code == 422 and "threshold is required" in r.text
    r = c.post("/v1/stores/rules1/alert-rules", json={**rule, "name": "ghost", "camera": "nope"}, headers=h)
    assert r.status_code == 422 and "camera 'nope' is not configured" in r.json()["detail"]
    assert c.delete("/v1/stores/rules1/alert-rules/long_queue", headers=h).status_code == 204


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/stores/val1/cameras/cam1/zones/z", {"name": "z", "polygon": [[0, 0], [1, 1]]}, "polygon"),
    ("/v1/stores/val1/cameras/cam1/zones/z", {"name": "z", "polygon": [[0, 0], [10, 0], [10, 10]], "colour": 1},
     "colour"),
    ("/v1/stores/val1/cameras/cam1/lines/l", {"name": "l", "start": [0, 0], "end": [0, 1]}, "(body)"),
    ("/v1/stores/val1/cameras/cam1/queues/q", {"name": "q", "queue_polygon": [[0, 0], [10, 0], [10, 10]]},
     "service_polygon"),
    ("/v1/stores/val1/cameras/cam1/zones/z", {"name": "other", "polygon": [[0, 0], [10, 0], [10, 10]]}, "name"),
    # inside the model, but outside the camera's 768x576 frame: the camera's validator names it
    ("/v1/stores/val1/cameras/cam1/zones/z", {"name": "z", "polygon": [[0, 0], [900, 0], [900, 10]]},
     "document.cameras.0"),
])
def test_invalid_geometry_is_422_naming_the_field(env: Env, path: str, body: dict, field: str) -> None:
    if "val1" not in env.keys:
        env.store("val1")
    r = env.client.put(path, json=body, headers=env.auth())
    assert r.status_code == 422, r.text
    fields = [f["field"] for f in r.json()["fields"]]
    assert any(f.startswith(field) for f in fields), fields


def test_malformed_json_is_422_naming_the_position(env: Env) -> None:
    r = env.client.post("/v1/stores", content=b'{"id": "x", "name": ', headers={
        **env.auth(), "Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["fields"][0]["type"] == "json_invalid"
    r = env.client.post("/v1/stores", json={"id": "bad id!", "name": "x"}, headers=env.auth())
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "id"


def test_camera_replace_and_delete(env: Env) -> None:
    env.store("cams1")
    c, h = env.client, env.auth()
    cam = copy.deepcopy(CAMERA)
    cam["zones"] = []
    assert c.put("/v1/stores/cams1/cameras/cam1", json=cam, headers=h).json()["zones"] == []
    assert c.put("/v1/stores/cams1/cameras/cam2", json=cam, headers=h).status_code == 422  # id differs
    cam["id"] = "cam2"
    assert c.put("/v1/stores/cams1/cameras/cam2", json=cam, headers=h).status_code == 200
    assert [x["id"] for x in c.get("/v1/stores/cams1/cameras", headers=h).json()] == ["cam1", "cam2"]
    assert c.delete("/v1/stores/cams1/cameras/cam2", headers=h).status_code == 204
    assert c.delete("/v1/stores/cams1/cameras/cam2", headers=h).status_code == 404


def test_edge_key_pulls_its_config_only(env: Env) -> None:
    key = env.store("pull1")
    env.store("pull2")
    c = env.client
    r = c.get("/v1/stores/pull1/config", headers={"X-API-Key": key})
    assert r.status_code == 200 and r.json()["document"]["cameras"][0]["id"] == "cam1"
    assert c.get("/v1/stores/pull2/config", headers={"X-API-Key": key}).status_code == 404
    assert c.get("/v1/stores/pull1/metrics/occupancy", headers={"X-API-Key": key}).status_code == 403
    assert c.put("/v1/stores/pull1/config", json={"cameras": []}, headers={"X-API-Key": key}).status_code == 403


def test_openapi_is_published(env: Env) -> None:
    spec = env.client.get("/openapi.json").json()
    assert spec["info"]["title"] == "RVA gateway"
    paths = spec["paths"]
    for p in ("/v1/stores/{store}/cameras/{camera}/zones/{name}", "/v1/ingest/events",
              "/v1/stores/{store}/metrics/occupancy", "/v1/stores/{store}/cameras/{camera}/heatmap.png"):
        assert p in paths, p
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    assert "Idempotency-Key" in paths["/v1/ingest/events"]["post"]["description"]
