"""``python -m rva.stores``: run the store writers, migrate, print the schema, apply retention, show counts."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import Annotated, Any

import typer

from rva.stores.consumer import EventConsumer, EventWriter
from rva.stores.errors import StoreError

app = typer.Typer(
    name="rva.stores", help="Event stores: JetStream -> Redis (live), PostgreSQL (history), ClickHouse (paths).",
    no_args_is_help=True, add_completion=False,
)
log = logging.getLogger("rva.stores")

NatsOpt = Annotated[str, typer.Option("--nats", envvar="RVA_NATS_URL", help="NATS server URL.")]
PgOpt = Annotated[str | None, typer.Option("--postgres", envvar="RVA_POSTGRES_DSN", help="PostgreSQL DSN.")]
ChOpt = Annotated[
    str | None,
    typer.Option("--clickhouse", envvar="RVA_CLICKHOUSE_URL", help="chdb:///data/dir or http(s)://user:pw@host:port"),
]
ChDbOpt = Annotated[str, typer.Option("--clickhouse-db", envvar="RVA_CLICKHOUSE_DB", help="ClickHouse database.")]
RedisOpt = Annotated[str | None, typer.Option("--redis", envvar="RVA_REDIS_URL", help="Redis URL.")]
TenantOpt = Annotated[str, typer.Option("--tenant", envvar="RVA_TENANT", help="Tenant the events belong to.")]


def _writers(postgres: str | None, clickhouse: str | None, clickhouse_db: str, redis_url: str | None) -> list[Any]:
    writers: list[Any] = []
    if postgres:
        from rva.stores.postgres import PostgresWriter

        writers.append(PostgresWriter(postgres))
    if clickhouse:
        from rva.stores.clickhouse import ClickHouseWriter

        writers.append(ClickHouseWriter.open(clickhouse, clickhouse_db))
    if redis_url:
        from rva.stores.redis_live import RedisLiveWriter

        writers.append(RedisLiveWriter(redis_url))
    return writers


async def _run(
    nats_url: str, writers: list[EventWriter], *, tenant: str, stream: str, durable_prefix: str, batch_size: int,
    max_wait_s: float, ack_wait_s: float, until_caught_up: bool, start_seq: int | None, create_stream: bool,
    stats_every_s: float, metrics_port: int | None = None,
) -> dict[str, Any]:
    import nats

    from rva.stores.publish import ensure_stream

    nc = await nats.connect(nats_url, connect_timeout=10, max_reconnect_attempts=-1)
    if create_stream:
        await ensure_stream(nc.jetstream(), stream)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    consumers = [
        EventConsumer(
            nc, w, tenant=tenant, stream=stream, durable=f"{durable_prefix}-{w.name}", batch_size=batch_size,
            max_wait_s=max_wait_s, ack_wait_s=ack_wait_s, start_seq=start_seq,
        )
        for w in writers
    ]

    async def report() -> None:
        while not stop.is_set():
            await asyncio.sleep(stats_every_s)
            for c in consumers:
                log.info("%s: %s", c.durable, c.stats)

    reporter = asyncio.create_task(report())
    exporter = None
    if metrics_port is not None:
        from rva.stores.exporter import StoreMetrics

        exporter = StoreMetrics()
        log.info("Prometheus /metrics on port %d", exporter.serve("0.0.0.0", metrics_port))
        mirror = asyncio.create_task(exporter.run(consumers, stop))
    print("READY", flush=True)  # tests and supervisors wait for this line
    try:
        await asyncio.gather(*(c.run(stop, until_caught_up=until_caught_up) for c in consumers))
    finally:
        reporter.cancel()
        if exporter is not None:
            stop.set()
            await mirror
            exporter.close()
        await nc.drain()
    return {c.durable: {"written": c.stats.written, "received": c.stats.received, "batches": c.stats.batches,
                        "dead_letters": dict(c.stats.dead_letters), "retries": c.stats.retries,
                        "max_batch_wait_s": round(c.stats.max_batch_wait_s, 3)} for c in consumers}


@app.command()
def run(
    nats_url: NatsOpt = "nats://127.0.0.1:4222",
    tenant: TenantOpt = "default",
    postgres: PgOpt = None,
    clickhouse: ChOpt = None,
    clickhouse_db: ChDbOpt = "rva",
    redis_url: RedisOpt = None,
    stream: Annotated[str, typer.Option(help="JetStream stream of the events.")] = "RVA_EVENTS",
    durable_prefix: Annotated[str, typer.Option(help="Durable consumer names: <prefix>-<writer>.")] = "rva-stores",
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Most events per batch.")] = 5000,
    max_wait: Annotated[float, typer.Option(min=0.01, max=1.0, help="Seconds a batch may wait to fill.")] = 1.0,
    ack_wait: Annotated[float, typer.Option(min=0.5, help="Seconds before an unacked message is redelivered.")] = 60.0,
    until_caught_up: Annotated[bool, typer.Option(help="Exit once nothing is pending (a backfill).")] = False,
    start_seq: Annotated[int | None, typer.Option(help="New durables start at this stream sequence.")] = None,
    create_stream: Annotated[bool, typer.Option(help="Create the stream if it is missing.")] = True,
    fanout: Annotated[bool, typer.Option(help="One consumer writes every store (decodes once).")] = False,
    stats_every: Annotated[float, typer.Option(help="Log the counters every this many seconds.")] = 30.0,
    metrics_port: Annotated[int | None, typer.Option(
        envvar="RVA_STORES_METRICS_PORT", min=0, max=65535,
        help="Serve Prometheus /metrics here (written, batches, retries, dead letters, pending per writer).")] = None,
) -> None:
    """Run one durable consumer per configured store until SIGTERM (or until caught up)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        writers = _writers(postgres, clickhouse, clickhouse_db, redis_url)
    except StoreError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    if not writers:
        typer.echo("error: name at least one store (--postgres, --clickhouse, --redis)", err=True)
        raise typer.Exit(2)
    if fanout:
        from rva.stores.fanout import FanoutWriter

        writers = [FanoutWriter(writers)]
    try:
        summary = asyncio.run(_run(
            nats_url, writers, tenant=tenant, stream=stream, durable_prefix=durable_prefix, batch_size=batch_size,
            max_wait_s=max_wait, ack_wait_s=ack_wait, until_caught_up=until_caught_up, start_seq=start_seq,
            create_stream=create_stream,
            stats_every_s=stats_every, metrics_port=metrics_port,
        ))
    finally:
        for w in writers:
            w.close()
    typer.echo(json.dumps(summary))


@app.command()
def migrate(
    postgres: PgOpt = None,
    clickhouse: ChOpt = None,
    clickhouse_db: ChDbOpt = "rva",
    timescale: Annotated[bool | None, typer.Option("--timescale/--no-timescale", help="Force the mode.")] = None,
) -> None:
    """Create or update the schemas (PostgreSQL: TimescaleDB when available unless forced)."""
    if postgres:
        from rva.stores.postgres import connect
        from rva.stores.postgres import migrate as pg_migrate

        with connect(postgres) as conn:
            typer.echo(f"postgres: {pg_migrate(conn, timescale=timescale)}")
    if clickhouse:
        from rva.stores.clickhouse import ClickHouseWriter

        ClickHouseWriter.open(clickhouse, clickhouse_db).close()
        typer.echo(f"clickhouse: {clickhouse_db}")


@app.command()
def schema(
    timescale: Annotated[bool, typer.Option("--timescale/--native", help="Which rendering.")] = False,
) -> None:
    """Print the PostgreSQL migration SQL (review it, or apply it by hand)."""
    from rva.stores.postgres_schema import MIGRATIONS, bootstrap_sql

    for stmt in bootstrap_sql():
        typer.echo(stmt + ";\n")
    for version, name, render in MIGRATIONS:
        typer.echo(f"-- migration {version}: {name}")
        for stmt in render(timescale):
            typer.echo(stmt + ";\n")


@app.command()
def retention(postgres: PgOpt = None) -> None:
    """Drop expired PostgreSQL partitions and rollup rows (native mode; TimescaleDB runs policies)."""
    if not postgres:
        raise typer.BadParameter("--postgres is required")
    from rva.stores.postgres import PostgresWriter

    writer = PostgresWriter(postgres)
    try:
        for line in writer.apply_retention():
            typer.echo(line)
    finally:
        writer.close()


@app.command()
def stats(
    tenant: TenantOpt = "default",
    postgres: PgOpt = None,
    clickhouse: ChOpt = None,
    clickhouse_db: ChDbOpt = "rva",
) -> None:
    """Print what each store holds for a tenant, as JSON (distinct events; visits and rollup totals)."""
    out: dict[str, Any] = {}
    if postgres:
        from rva.stores.postgres import connect

        with connect(postgres) as conn:
            q = "SELECT (SELECT count(*) FROM rva.events WHERE tenant = %(t)s), " \
                "(SELECT count(*) FROM rva.visits WHERE tenant = %(t)s), " \
                "(SELECT coalesce(sum(in_count + out_count), 0)::bigint FROM rva.line_counts_30s WHERE tenant = %(t)s)"
            events, visits, crossings = conn.execute(q, {"t": tenant}).fetchone() or (0, 0, 0)
            out["postgres"] = {"events": events, "visits": visits, "line_crossings": crossings}
    if clickhouse:
        from rva.stores.clickhouse import open_driver
        from rva.stores.clickhouse_queries import ClickHouseQueries

        ch = ClickHouseQueries(open_driver(clickhouse), clickhouse_db)
        out["clickhouse"] = {"events": ch.count_events(tenant), "hourly_total": ch.count_hourly(tenant)}
    typer.echo(json.dumps(out))


if __name__ == "__main__":
    sys.exit(app())
