"""``python -m gateway serve`` with TLS (uvicorn's --ssl-* options) and its signing key from a secret file."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
from gateway_env import JWT_SECRET, REPO, fresh_database, seed_tenants

from bench.fault_harness import self_signed
from gateway.auth import JwtVerifier
from gateway.settings import GatewaySettings
from rva.stores.servers import LocalServer, free_port


def test_https_with_a_secret_file(pg_server: LocalServer, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    secret = tmp_path / "jwt-secret"
    secret.write_text(JWT_SECRET)
    trust = ssl.create_default_context(cafile=str(cert))
    with fresh_database(pg_server) as dsn:
        seed_tenants(dsn)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RVA_")}
        env.update({"RVA_POSTGRES_DSN": dsn, "RVA_GATEWAY_JWT_SECRET_FILE": str(secret)})
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--port", str(port), "--ssl-certfile",
                                 str(cert), "--ssl-keyfile", str(key), "--log-level", "warning"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            url = f"https://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    r = httpx.get(f"{url}/healthz", verify=trust, timeout=2)
                    break
                except httpx.HTTPError:
                    assert proc.poll() is None and time.monotonic() < deadline, "the gateway did not start"
                    time.sleep(0.2)
            assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
            token = JwtVerifier(GatewaySettings(postgres_dsn=dsn, jwt_secret=JWT_SECRET)).mint("u", "acme", "viewer")
            r = httpx.get(f"{url}/v1/tenants/acme", headers={"Authorization": f"Bearer {token}"}, verify=trust)
            assert r.status_code == 200 and r.json()["id"] == "acme"
            try:  # plain HTTP on the TLS port is not served
                plain = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
            except httpx.HTTPError:
                plain = None
            assert plain != 200
        finally:
            proc.terminate()
            proc.wait(30)
