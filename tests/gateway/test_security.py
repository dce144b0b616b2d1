"""Security: tenants never cross, tokens are checked to the letter, keys revoke, roles hold, bodies are bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import psycopg
import pytest
from fastapi.testclient import TestClient
from gateway_env import CAMERA, JWT_SECRET, Env, settings_for

from gateway.app import create_app
from gateway.ratelimit import RateLimiter
from gateway.settings import RateLimit


@pytest.fixture(scope="module")
def stores(env: Env) -> Env:
    env.store("sec_a")
    env.store("sec_b")
    env.store("sec_other", tenant="other")
    return env


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "mallory", "tenant": "acme", "role": "admin", "iss": "rva", "aud": "rva-gateway", "iat": now,
            "exp": now + 600}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/v1/stores/sec_other", None),
    ("GET", "/v1/stores/sec_other/config", None),
    ("GET", "/v1/stores/sec_other/cameras/cam1/zones", None),
    ("GET", "/v1/stores/sec_other/metrics/occupancy", None),
    ("GET", "/v1/stores/sec_other/live", None),
    ("GET", "/v1/stores/sec_other/cameras/cam1/heatmap.png", None),
    ("GET", "/v1/stores/sec_other/alerts", None),
    ("GET", "/v1/tenants/other", None),
    ("PUT", "/v1/stores/sec_other/config", {"cameras": []}),
    ("PUT", "/v1/stores/sec_other/cameras/cam1/zones/z", {"name": "z", "polygon": [[0, 0], [9, 0], [9, 9]]}),
    ("POST", "/v1/stores/sec_other/api-keys", {"name": "stolen"}),
    ("DELETE", "/v1/stores/sec_other", None),
    ("PATCH", "/v1/tenants/other", {"name": "pwned"}),
])
def test_cross_tenant_reads_and_writes_are_not_found(stores: Env, method: str, path: str, body: Any) -> None:
    r = stores.client.request(method, path, json=body, headers=stores.auth("acme", "admin"))
    assert r.status_code == 404, r.text
    # the owner still sees it unchanged
    owner = stores.client.get("/v1/stores/sec_other", headers=stores.auth("other", "viewer"))
    assert owner.status_code == 200 and owner.json()["config_version"] == 2


def test_store_ids_do_not_leak_across_tenants(stores: Env) -> None:
    assert [s["id"] for s in stores.client.get("/v1/stores", headers=stores.auth("other")).json()] == ["sec_other"]
    # a store-limited token sees only its stores; the rest is "not found", like another tenant's
    h = stores.auth("acme", "viewer", stores=["sec_a"])
    assert [s["id"] for s in stores.client.get("/v1/stores", headers=h).json()] == ["sec_a"]
    assert stores.client.get("/v1/stores/sec_b", headers=h).status_code == 404
    assert stores.client.get("/v1/stores/sec_b/metrics/queues", headers=h).status_code == 404


@pytest.mark.parametrize(("case", "token", "needle"), [
    ("expired", lambda: jwt.encode(claims(iat=int(time.time()) - 900, exp=int(time.time()) - 300), JWT_SECRET),
     "expired"),
    ("forged", lambda: jwt.encode(claims(), "someone-elses-secret-that-is-long-enough!!"), "Signature"),
    ("wrong audience", lambda: jwt.encode(claims(aud="another-api"), JWT_SECRET), "audience"),
    ("wrong issuer", lambda: jwt.encode(claims(iss="evil"), JWT_SECRET), "issuer"),
    ("alg none", lambda: jwt.encode(claims(), None, algorithm="none"), "invalid token"),
    ("no tenant", lambda: jwt.encode(claims(tenant=None), JWT_SECRET), "tenant"),
    ("bad role", lambda: jwt.encode(claims(role="root"), JWT_SECRET), "role"),
    ("no expiry", lambda: jwt.encode(claims(exp=None), JWT_SECRET), "exp"),
    ("too long-lived", lambda: jwt.encode(claims(exp=int(time.time()) + 90 * 86400), JWT_SECRET), "lifetime"),
    ("not yet valid", lambda: jwt.encode(claims(nbf=int(time.time()) + 3600), JWT_SECRET), "not yet valid"),
    ("garbage", lambda: "not.a.token", "invalid token"),
])
def test_bad_user_tokens_are_401(stores: Env, case: str, token: Any, needle: str) -> None:
    r = stores.client.get("/v1/stores", headers={"Authorization": f"Bearer {token()}"})
    assert r.status_code == 401, r.text
    assert needle in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer"}])
def test_missing_credentials_are_401(stores: Env, headers: dict[str, str]) -> None:
    assert stores.client.get("/v1/stores", headers=headers).status_code == 401


def test_revoked_api_key_is_401(stores: Env) -> None:
    c, h = stores.client, stores.auth()
    created = c.post("/v1/stores/sec_a/api-keys", json={"name": "box-2"}, headers=h).json()
    key = created["token"]
    assert c.get("/v1/stores/sec_a/config", headers={"X-API-Key": key}).status_code == 200
    assert c.delete(f"/v1/stores/sec_a/api-keys/{created['id']}", headers=h).status_code == 204
    r = c.get("/v1/stores/sec_a/config", headers={"X-API-Key": key})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert c.get("/v1/stores/sec_a/config", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    listed = {k["id"]: k for k in c.get("/v1/stores/sec_a/api-keys", headers=h).json()}
    assert listed[created["id"]]["revoked_at"] is not None and "token" not in listed[created["id"]]
    # a key with a valid id but the wrong secret, and a made-up key
    forged = key[: -4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert c.get("/v1/stores/sec_a/config", headers={"X-API-Key": forged}).status_code == 401
    assert c.get("/v1/stores/sec_a/config", headers={"X-API-Key": "rvak_x"}).status_code == 401
    # keys are stored hashed, never in clear
    with psycopg.connect(stores.dsn) as conn:
        (stored,) = conn.execute("SELECT hash FROM gateway.api_keys WHERE id = %s", (created["id"],)).fetchone()
    assert stored.startswith("scrypt$") and key.split("_", 2)[2] not in stored


@pytest.mark.parametrize(("role", "method", "path", "body", "status"), [
    ("viewer", "PUT", "/v1/stores/sec_a/config", {"cameras": [CAMERA]}, 403),
    ("viewer", "POST", "/v1/stores/sec_a/alert-rules", {"name": "r", "kind": "camera_offline"}, 403),
    ("viewer", "DELETE", "/v1/stores/sec_a/cameras/cam1", None, 403),
    ("viewer", "POST", "/v1/stores", {"id": "v_store", "name": "x"}, 403),
    ("viewer", "POST", "/v1/stores/sec_a/api-keys", {"name": "k"}, 403),
    ("viewer", "PATCH", "/v1/tenants/acme", {"name": "x"}, 403),
    ("analyst", "PUT", "/v1/stores/sec_a/cameras/cam1/zones/z", {"name": "z", "polygon": [[0, 0], [9, 0], [9, 9]]},
     403),
    ("analyst", "POST", "/v1/stores/sec_a/alert-rules", {"name": "r1", "kind": "camera_offline"}, 201),
    ("admin", "POST", "/v1/tenants", {"id": "newco", "name": "x"}, 403),  # only the operator creates tenants
    ("viewer", "GET", "/v1/stores/sec_a/metrics/footfall", None, 200),
])
def test_roles(stores: Env, role: str, method: str, path: str, body: Any, status: int) -> None:
    r = stores.client.request(method, path, json=body, headers=stores.auth("acme", role))
    assert r.status_code == status, r.text


def test_operator_manages_tenants(stores: Env) -> None:
    h = stores.auth("operator", "admin")
    r = stores.client.post("/v1/tenants", json={"id": "newco", "name": "New Co",
                                                 "privacy": {"snapshots": "blur_all"}}, headers=h)
    assert r.status_code == 201 and r.json()["privacy"]["snapshots"] == "blur_all"
    assert stores.client.post("/v1/tenants", json={"id": "newco", "name": "again"}, headers=h).status_code == 409
    assert "newco" in [t["id"] for t in stores.client.get("/v1/tenants", headers=h).json()]
    assert [t["id"] for t in stores.client.get("/v1/tenants", headers=stores.auth("acme")).json()] == ["acme"]


def test_oversized_bodies_are_413(stores: Env) -> None:
    big = b'{"cameras": [], "pad": "' + b"x" * (2 << 20) + b'"}'
    r = stores.client.put("/v1/stores/sec_a/config", content=big,
                          headers={**stores.auth(), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"cameras": [], "pad": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    r = stores.client.put("/v1/stores/sec_a/config", content=chunks(),
                          headers={**stores.auth(), "Content-Type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("evil", [
    "'; DROP TABLE rva.events; --", "A' OR '1'='1", "A\" OR 1=1 --", "A\\'; SELECT pg_sleep(5); --",
    "${jndi:ldap://x}", "A%' UNION SELECT * FROM gateway.api_keys --", "\u0000A",
])
def test_injection_strings_in_filters_are_harmless(stores: Env, evil: str) -> None:
    c, h = stores.client, stores.auth()
    window = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}
    for path, key in (("/v1/stores/sec_a/metrics/occupancy", "zone"), ("/v1/stores/sec_a/metrics/dwell", "zone"),
                      ("/v1/stores/sec_a/metrics/queues", "queue"), ("/v1/stores/sec_a/metrics/footfall", "line"),
                      ("/v1/stores/sec_a/metrics/funnel", "steps"), ("/v1/stores/sec_a/metrics/occupancy", "camera")):
        started = time.monotonic()
        r = c.get(path, params={**window, key: evil}, headers=h)
        assert r.status_code in (200, 422), (path, r.status_code, r.text)
        if r.status_code == 200:  # treated as just another name nobody uses
            assert r.json() == c.get(path, params={**window, key: "no_such_name"}, headers=h).json()
        assert time.monotonic() - started < 4  # no pg_sleep ran
    from urllib.parse import quote

    assert c.get(f"/v1/stores/{quote(evil, safe='')}", headers=h).status_code in (404, 422)
    with psycopg.connect(stores.dsn) as conn:  # everything is still there
        assert conn.execute("SELECT count(*) FROM gateway.api_keys").fetchone()[0] >= 3  # type: ignore[index]
        assert conn.execute("SELECT to_regclass('rva.events')").fetchone()[0] is not None  # type: ignore[index]


def test_rate_limit_per_caller(stores: Env) -> None:
    settings = settings_for(stores.dsn, stores.redis_url, None, rate_limit_user=RateLimit(rate=0.5, burst=3))
    with TestClient(create_app(settings)) as client:
        h = {"Authorization": f"Bearer {stores.token('acme', 'viewer', subject='busy-user')}"}
        got = [client.get("/v1/stores", headers=h) for _ in range(4)]
        assert [r.status_code for r in got] == [200, 200, 200, 429]
        assert got[0].headers["ratelimit-limit"] == "3" and got[2].headers["ratelimit-remaining"] == "0"
        assert int(got[3].headers["retry-after"]) >= 1 and got[3].json()["error"] == "rate_limited"
        other = {"Authorization": f"Bearer {stores.token('acme', 'viewer', subject='calm-user')}"}
        assert client.get("/v1/stores", headers=other).status_code == 200  # buckets are per caller


def test_token_bucket_is_atomic_under_concurrency(stores: Env) -> None:
    limiter = RateLimiter(stores.redis_url)
    limit = RateLimit(rate=0.001, burst=25)
    allowed: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(10):
            d = limiter.check("concurrency-test", limit)
            with lock:
                allowed.append(d.allowed)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 80 and sum(allowed) == 25  # never overspent, whatever the interleaving
    limiter.close()
