"""The sync service's Prometheus metrics follow what it did (the Grafana sync panels read them)."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.fault_harness import Harness, Producer, settle, wait
from rva.stores.servers import free_port


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_uploads_batches_and_outbox_age(pg_server: Any, tmp_path: Path) -> None:
    h = Harness(tmp_path, pg_server.url)
    with h.stack("metrics") as (cloud, edge):
        port = free_port()
        edge.start_sync({"RVA_SYNC_METRICS_PORT": str(port)})  # the cloud is away at first
        sent = Producer(edge.nats.url, edge.store, 300, 1000).join()
        time.sleep(1.5)
        waiting = wait(lambda: (m := _scrape(port)).get(("rva_sync_outbox_events", ())) == len(sent) and m, 30,
                       "the events in the outbox")
        assert waiting[("rva_sync_oldest_event_age_seconds", ())] > 0
        assert waiting.get(("rva_sync_batches_total", (("result", "error"),)), 0) >= 1  # no answer: counted
        cloud.start()
        settle(cloud, edge, sent, 120)
        done = wait(lambda: (m := _scrape(port)).get(("rva_sync_uploaded_events_total", ())) == len(sent) and m, 30,
                    "the upload counters")
    assert done[("rva_sync_outbox_events", ())] == 0
    assert done[("rva_sync_oldest_event_age_seconds", ())] == 0
    assert done[("rva_sync_batches_total", (("result", "200"),))] >= 3
    assert done[("rva_sync_uplink_state", ())] == 1


def test_flush_uploads_a_partial_batch_now(pg_server: Any, tmp_path: Path) -> None:
    """A partial batch waits ``batch_linger_s`` (here 5 min) unless Flush is called."""
    import grpc

    from rva.sync.v1 import sync_pb2, sync_pb2_grpc

    h = Harness(tmp_path, pg_server.url)
    with h.stack("flush", batch_linger_s=300) as (cloud, edge):
        cloud.start()
        edge.start_sync()
        sent = Producer(edge.nats.url, edge.store, 40, 1000).join()
        wait(lambda: (s := edge.status()) is not None and s.outbox_events == len(sent), 30, "the events in the outbox")
        time.sleep(1.0)
        assert edge.status().outbox_events == len(sent)  # still lingering
        with grpc.insecure_channel(f"127.0.0.1:{edge.port}") as ch:
            reply = sync_pb2_grpc.SyncServiceStub(ch).Flush(sync_pb2.FlushRequest(), timeout=30)
        assert (reply.events_uploaded, reply.outbox_events) == (len(sent), 0)
        assert len(cloud.events()[1] & set(sent)) == len(sent)
