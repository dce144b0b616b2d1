"""Edge-to-cloud delivery under faults, with real processes: does every event arrive once?

Each scenario runs the real pieces as separate processes: a nats-server with JetStream on the edge,
the sync service (``python -m services.sync``), the cloud gateway (``python -m gateway serve``, HTTPS
with a self-signed certificate the edge trusts) on PostgreSQL, and for one scenario the chaos proxy
(``bench/chaos_proxy.py``) in between. This process publishes the events (what the analytics service
does in production), breaks things on a schedule, waits for the outbox to drain, then reads the
cloud's PostgreSQL:

* ``sent``: events published on the edge; ``received``: distinct sent event ids stored in the cloud;
* ``lost`` = sent - received; ``duplicated``: rows stored beyond one per event id;
* ``dropped_reported``: what the sync service says its full policy dropped (``GetSyncStatus``);
* ``resent``: events the cloud received again and de-duplicated (whole batches it already had, counted
  by the outbox, plus events re-cut into a new batch, counted by the gateway's ingest bookkeeping):
  the retries that batch ids and event ids made harmless.

Scenarios: ``baseline``, ``burst`` (no fault: an outbox of 20,000 events drained, the upload rate),
``gateway_down_60s``, ``sync_sigkill`` (killed right after the cloud committed a batch, then four more
SIGKILLs at random moments), ``proxy_cuts`` (30 % of reply chunks cut, a third as many requests),
``disk_full`` (a 64 KiB outbox while the cloud is away: drops exactly what it reports), ``clock_skew``
(the edge's clock 2 h ahead, through libfaketime when installed).

Run: ``python bench/faults.py --json out/faults.json`` (all, ~4 min) or ``--scenarios proxy_cuts``.
PostgreSQL: ``--postgres-dsn`` (a database is created per scenario) or a private server is started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fault_harness import (  # noqa: E402
    Cloud,
    Edge,
    Harness,
    Producer,
    outbox_resent,
    settle,
    wait,
)


@dataclass
class Result:
    """One scenario's outcome."""

    name: str
    sent: int
    received: int
    lost: int
    duplicated: int
    dropped_reported: int = 0
    resent: int = 0
    seconds: float = 0.0
    notes: str = ""

    @property
    def ok(self) -> bool:
        """0 lost and 0 duplicated, or (disk full) lost exactly what was reported dropped."""
        if self.duplicated:
            return False
        return self.lost == self.dropped_reported


# -- scenarios --------------------------------------------------------------------------------------


def _result(name: str, sent: list[str], rows: int, ids: set[str], status: Any, cloud: Cloud, edge: Edge,
            t0: float, notes: str = "") -> Result:
    received = len(ids & set(sent))
    return Result(name, len(sent), received, len(sent) - received, rows - len(ids),
                  int(status.events_dropped) if status is not None else 0, cloud.resent() + outbox_resent(edge),
                  round(time.monotonic() - t0, 1), notes)


def baseline(h: Harness) -> Result:
    with h.stack("baseline") as (cloud, edge):
        cloud.start()
        edge.start_sync()
        t0 = time.monotonic()
        sent = Producer(edge.nats.url, edge.store, 2000, 400).join()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        return _result("baseline", sent, rows, ids, status, cloud, edge, t0)


def burst(h: Harness) -> Result:
    """No fault: 20,000 events wait in the outbox, then the cloud comes up; how fast does the edge drain?"""
    with h.stack("burst") as (cloud, edge):
        edge.start_sync()
        t0 = time.monotonic()
        sent = Producer(edge.nats.url, edge.store, 20_000, 1e9).join()
        wait(lambda: (s := edge.status()) is not None and s.outbox_events >= len(sent), 120, "the outbox to fill")
        cloud.start()
        drain0 = time.monotonic()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        took = time.monotonic() - drain0
        return _result("burst", sent, rows, ids, status, cloud, edge, t0,
                       f"outbox of {len(sent)} drained in {took:.1f} s = {len(sent) / took:,.0f} events/s "
                       f"(batches of 100, HTTPS, gzip, one uploader)")


def gateway_down(h: Harness) -> Result:
    name = f"gateway_down_{h.down_s:.0f}s"
    with h.stack(name) as (cloud, edge):
        cloud.start()
        edge.start_sync()
        t0 = time.monotonic()
        rate = 50.0
        producer = Producer(edge.nats.url, edge.store, int(rate * (h.down_s + 20)), rate)
        time.sleep(5)
        cloud.gateway.kill()
        h.log(f"{name}: gateway killed; down for {h.down_s:.0f} s while events keep coming")
        time.sleep(h.down_s)
        backlog = edge.status()
        cloud.start()
        h.log(f"{name}: gateway back; outbox held {backlog.outbox_events if backlog else '?'} events")
        sent = producer.join()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        return _result(name, sent, rows, ids, status, cloud, edge, t0,
                        f"outbox peak ~{backlog.outbox_events if backlog else '?'} events while down")


def sync_sigkill(h: Harness) -> Result:
    with h.stack("sync_sigkill") as (cloud, edge):
        cloud.start()
        rng = random.Random(7)
        edge.start_sync({"RVA_STORES_FAULT": "sync:committed:3"})
        t0 = time.monotonic()
        producer = Producer(edge.nats.url, edge.store, 3000, 150)
        wait(lambda: not edge.sync.alive(), 60, "the armed SIGKILL after the 3rd committed batch")
        kills = 1
        edge.start_sync()
        for _ in range(4):
            time.sleep(rng.uniform(1.0, 3.0))
            edge.sync.kill()
            kills += 1
            time.sleep(0.3)
            edge.start_sync()
        sent = producer.join()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        return _result("sync_sigkill", sent, rows, ids, status, cloud, edge, t0,
                       f"{kills} SIGKILLs, the first right after the cloud committed a batch")


def proxy_cuts(h: Harness) -> Result:
    args = ["--cut-prob", "0.3", "--seed", "3"]
    with h.stack("proxy_cuts", proxy=args) as (cloud, edge):
        cloud.start()
        edge.start_sync()
        t0 = time.monotonic()
        sent = Producer(edge.nats.url, edge.store, 3000, 300).join()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        assert edge.proxy is not None
        edge.proxy.stop()
        return _result("proxy_cuts", sent, rows, ids, status, cloud, edge, t0, f"proxy: {edge.proxy.tail(1)}")


def disk_full(h: Harness) -> Result:
    with h.stack("disk_full", outbox_max_bytes=1 << 16, outbox_full_policy="drop_oldest") as (cloud, edge):
        edge.start_sync()  # the cloud is away from the start
        t0 = time.monotonic()
        sent = Producer(edge.nats.url, edge.store, 1500, 500).join()
        wait(lambda: (s := edge.status()) is not None and s.events_dropped > 0, 60, "the outbox to fill")
        time.sleep(2)
        cloud.start()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        return _result("disk_full", sent, rows, ids, status, cloud, edge, t0,
                       "64 KiB outbox, drop_oldest, cloud away while all events were produced")


def clock_skew(h: Harness) -> Result:
    faketime = shutil.which("faketime")
    with h.stack("clock_skew") as (cloud, edge):
        cloud.start()
        if faketime:
            edge.start_sync(wrap=[faketime, "-f", "+2h"])
            notes = "sync under libfaketime +2h"
        else:
            edge.start_sync()
            notes = "faketime not installed: ran without skew"
        t0 = time.monotonic()
        sent = Producer(edge.nats.url, edge.store, 1000, 300).join()
        rows, ids, status = settle(cloud, edge, sent, h.drain_timeout_s)
        warned = [ln for ln in edge.sync.log.read_text().splitlines() if "clock skew:" in ln]
        if warned:
            notes += "; sync: " + warned[0].split("clock skew: ", 1)[1].split(";")[0]
        return _result("clock_skew", sent, rows, ids, status, cloud, edge, t0, notes)


SCENARIOS: dict[str, Callable[[Harness], Result]] = {
    "baseline": baseline, "burst": burst, "gateway_down": gateway_down, "sync_sigkill": sync_sigkill,
    "proxy_cuts": proxy_cuts, "disk_full": disk_full, "clock_skew": clock_skew,
}


def _table(results: list[Result]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Edge -> cloud delivery under faults")
    for col in ("scenario", "sent", "received", "lost", "duplicated", "dropped (reported)", "resent (deduped)",
                "s", "ok", "notes"):
        table.add_column(col, justify="right" if col not in ("scenario", "notes") else "left")
    for r in results:
        table.add_row(r.name, str(r.sent), str(r.received), str(r.lost), str(r.duplicated), str(r.dropped_reported),
                      str(r.resent), f"{r.seconds:.0f}", "yes" if r.ok else "NO", r.notes)
    Console(width=200).print(table)


@contextlib.contextmanager
def postgres(dsn: str | None) -> Iterator[str]:
    """The given admin DSN, or a private PostgreSQL for the run."""
    if dsn:
        yield dsn
        return
    from rva.stores.servers import start_postgres

    server = start_postgres(durable=False)
    try:
        yield server.url
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write {'scenarios': [...]} here")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {list(SCENARIOS)}")
    parser.add_argument("--down-s", type=float, default=60.0, help="how long the gateway stays down")
    parser.add_argument("--postgres-dsn", default=os.environ.get("RVA_FAULTS_POSTGRES_DSN"),
                        help="admin DSN of a PostgreSQL to create databases in (default: start a private one)")
    parser.add_argument("--work", type=Path, help="where logs and outboxes go (default: a temporary directory)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {list(SCENARIOS)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="rva-faults-"))
    results: list[Result] = []
    with postgres(args.postgres_dsn) as dsn:
        h = Harness(work, dsn, down_s=args.down_s)
        for name in names:
            print(f"== {name}", flush=True)
            result = SCENARIOS[name](h)
            print(json.dumps(asdict(result)), flush=True)
            results.append(result)
    _table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"scenarios": [asdict(r) for r in results]}, indent=2) + "\n")
        print(f"wrote {args.json}")
    print(f"logs: {work}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
