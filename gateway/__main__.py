"""``python -m gateway``: serve, migrate, bootstrap tenants and keys, mint tokens, apply retention, run the demo.

Settings come from the environment (see :mod:`gateway.settings`); secrets from ``*_FILE`` paths or
variables, never from flags (flags end up in shell history and ``ps``).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from gateway.settings import GatewaySettings
from rva.errors import RVAError

app = typer.Typer(name="gateway", help="RVA gateway: REST, WebSocket and GraphQL API, and the dashboard.",
                  no_args_is_help=True, add_completion=False)


def _settings() -> GatewaySettings:
    try:
        return GatewaySettings.from_env()
    except RVAError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate chain (PEM): serve HTTPS/WSS.")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    ssl_ca_certs: Annotated[Path | None, typer.Option(help="CA bundle to verify client certificates (mTLS).")] = None,
    proxy_headers: Annotated[bool, typer.Option(help="Trust X-Forwarded-* from --forwarded-allow-ips.")] = False,
    forwarded_allow_ips: Annotated[str, typer.Option(help="Proxies whose X-Forwarded-* are trusted.")] = "127.0.0.1",
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the API and the dashboard (uvicorn; TLS when a certificate and key are given)."""
    import ssl

    import uvicorn

    from gateway.app import create_app

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise typer.BadParameter("--ssl-certfile and --ssl-keyfile go together")
    uvicorn.run(
        create_app(_settings()), host=host, port=port, log_level=log_level, proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips, ws_max_size=1 << 20,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None, ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        ssl_ca_certs=str(ssl_ca_certs) if ssl_ca_certs else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if ssl_ca_certs else ssl.CERT_NONE,
    )


@app.command()
def migrate() -> None:
    """Create or update the gateway's and the stores' PostgreSQL schemas."""
    from gateway.registry import Registry
    from rva.stores.postgres import connect
    from rva.stores.postgres import migrate as stores_migrate

    s = _settings()
    Registry(s.postgres_dsn).migrate()
    with connect(s.postgres_dsn) as conn:
        typer.echo(f"stores schema: {stores_migrate(conn)}; gateway schema: current")


@app.command("create-tenant")
def create_tenant(tenant: str, name: Annotated[str, typer.Option(help="Display name.")] = "") -> None:
    """Create a tenant directly in the registry (bootstrap, before any operator token exists)."""
    from gateway.models import PrivacyPolicy, RetentionPolicy, TenantIn, dump
    from gateway.registry import Registry

    body = TenantIn(id=tenant, name=name or tenant)
    reg = Registry(_settings().postgres_dsn)
    reg.migrate()
    reg.create_tenant(body.id, body.name, dump(PrivacyPolicy()), dump(RetentionPolicy()))
    typer.echo(f"tenant {tenant} created")


@app.command()
def token(
    tenant: Annotated[str, typer.Option(help="Tenant the token is for.")],
    role: Annotated[str, typer.Option(help="admin, analyst or viewer.")] = "viewer",
    subject: Annotated[str, typer.Option(help="Who (the token's sub).")] = "cli",
    store: Annotated[list[str] | None, typer.Option(help="Limit to these stores (repeat).")] = None,
    ttl: Annotated[float, typer.Option(help="Lifetime in seconds.")] = 3600.0,
) -> None:
    """Sign a user token with the gateway's HMAC key (development and service accounts)."""
    from gateway.auth import USER_ROLES, JwtVerifier

    if role not in USER_ROLES:
        raise typer.BadParameter(f"role: expected one of {USER_ROLES}")
    typer.echo(JwtVerifier(_settings()).mint(subject, tenant, role, stores=store or None, ttl_s=ttl))


@app.command("create-api-key")
def create_api_key(tenant: str, store: str, name: Annotated[str, typer.Option()] = "edge") -> None:
    """Create an edge device key for a store; prints the token once."""
    from gateway.auth import new_api_key
    from gateway.registry import Registry

    reg = Registry(_settings().postgres_dsn)
    key_id, secret, key_hash = new_api_key()
    reg.create_api_key(tenant, store, key_id, name, key_hash)
    typer.echo(secret)


@app.command()
def retention() -> None:
    """Drop stored data past the tenants' retention windows (run daily from cron or a k8s CronJob)."""
    from gateway.privacy import enforce_retention
    from gateway.registry import Registry

    s = _settings()
    for line in enforce_retention(Registry(s.postgres_dsn), s.postgres_dsn):
        typer.echo(line)


@app.command()
def openapi() -> None:
    """Print the OpenAPI document (JSON) without starting anything."""
    from gateway.app import create_app

    typer.echo(json.dumps(create_app(_settings()).openapi(), indent=2))


@app.command()
def demo(
    url: Annotated[str, typer.Option(help="A running gateway.")] = "http://127.0.0.1:8000",
    tenant: Annotated[str, typer.Option()] = "demo",
    store: Annotated[str, typer.Option()] = "demo",
    config: Annotated[Path | None, typer.Option(help="RVA config (default: the vtest.avi demo).")] = None,
    frames: Annotated[int, typer.Option(min=10, help="Frames the runner analyses.")] = 300,
    out: Annotated[Path, typer.Option(help="Where the recording is kept (reused when present).")] = Path("out/gw-demo"),
    loop: Annotated[bool, typer.Option(help="Replay forever.")] = True,
) -> None:
    """Bootstrap a demo tenant and store, record the sample clip once, and stream it into the gateway."""
    from gateway.auth import JwtVerifier, new_api_key
    from gateway.demo import Recording, Replayer
    from gateway.demo import record as record_demo
    from gateway.errors import Conflict
    from gateway.models import PrivacyPolicy, RetentionPolicy, StoreDocument, dump
    from gateway.registry import Registry
    from rva.config import load_config

    s = _settings()
    cfg = load_config(config or Path(__file__).resolve().parents[1] / "rva" / "configs" / "vtest.yaml")
    reg = Registry(s.postgres_dsn)
    reg.migrate()
    with contextlib.suppress(Conflict):
        reg.create_tenant(tenant, tenant.title(), dump(PrivacyPolicy()), dump(RetentionPolicy()))
    with contextlib.suppress(Conflict):
        reg.create_store(tenant, store, f"{store.title()} store", "UTC", "demo")
    doc = StoreDocument(cameras=list(cfg.cameras), funnel=[z.name for z in cfg.cameras[0].zones])
    reg.update_config(tenant, store, lambda _: dump(doc), "demo")
    key_id, api_key, key_hash = new_api_key()
    reg.create_api_key(tenant, store, key_id, "demo feeder", key_hash)
    viewer = JwtVerifier(s).mint("demo-viewer", tenant, "viewer", ttl_s=12 * 3600)
    typer.echo(f"dashboard: {url}/dashboard/{store}#token={viewer}")
    rec_dir = out.resolve()
    if (rec_dir / "recording.json").is_file():
        recording = Recording.load(rec_dir)
    else:
        rec_dir.mkdir(parents=True, exist_ok=True)
        typer.echo(f"recording {frames} frames with the standalone runner (once) into {rec_dir} ...")
        recording = record_demo(cfg, rec_dir, max_frames=frames)
    replayer = Replayer(url, api_key, store)
    typer.echo(f"snapshot: {replayer.upload_background(recording)}")
    worker = threading.Thread(target=replayer.play, args=(recording,), kwargs={"loop": loop}, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(1.0)
    except KeyboardInterrupt:
        replayer.stop.set()
    typer.echo(f"sent {replayer.sent} events in {replayer.batches} batches")


if __name__ == "__main__":
    sys.exit(app())
