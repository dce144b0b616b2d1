"""The ingest endpoint's contract: gzip batches, idempotent by batch id and event id, all-or-nothing."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from typing import Any

import nats
import psycopg
import pytest
from gateway_env import Env

from rva.core.events import Direction, Event, EventType
from rva.stores.publish import DEFAULT_STREAM
from rva.sync.v1 import sync_pb2

T = time.time() - 600


def events(n: int, camera: str = "cam1", start: float = T) -> list[Event]:
    out = []
    for i in range(n):
        out.append(Event(EventType.ZONE_ENTER, camera, start + i, i + 1, zone="entrance"))
        out.append(Event(EventType.LINE_CROSS, camera, start + i + 0.5, i + 1, line="door", direction=Direction.IN))
    return out


def json_batch(batch_id: str, store: str, evs: list[Event], **extra: Any) -> bytes:
    body = {"batch_id": batch_id, "store": store, **extra,
            "events": [{**e.to_dict(), "event_id": e.event_id(store)} for e in evs]}
    return gzip.compress(json.dumps(body).encode())


def post(env: Env, store: str, data: bytes, *, content_type: str = "application/json", encoding: str = "gzip",
         key: str | None = None, **headers: str) -> Any:
    return env.client.post("/v1/ingest/events", content=data, headers={
        "Authorization": f"Bearer {key or env.keys[store]}", "Content-Type": content_type,
        "Content-Encoding": encoding, **headers})


def pg_count(env: Env, store: str) -> int:
    with psycopg.connect(env.dsn) as conn:
        row = conn.execute("SELECT count(*) FROM rva.events WHERE tenant = 'acme' AND store = %s", (store,)).fetchone()
    return int(row[0]) if row else 0


def stream_count(env: Env, store: str) -> int:
    async def count() -> int:
        nc = await nats.connect(env.nats_url)
        info = await nc.jetstream().stream_info(DEFAULT_STREAM, subjects_filter=f"rva.{store}.>")
        await nc.close()
        return sum((info.state.subjects or {}).values())

    return asyncio.run(count())


def test_batches_are_idempotent_by_batch_and_event_id(env: Env) -> None:
    env.store("ing1")
    evs = events(10)
    r = post(env, "ing1", json_batch("b-1", "ing1", evs), **{"Idempotency-Key": "b-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["events"] == 20 and body["new_events"] == 20 and not body["duplicate_batch"]
    assert body["sinks"] == {"postgres": 20, "redis": 20, "clickhouse": 20, "jetstream": 20}
    # the same batch again (a retry after a lost response): answered from the batch record, nothing written
    again = post(env, "ing1", json_batch("b-1", "ing1", evs)).json()
    assert again["duplicate_batch"] and again["new_events"] == 0
    # the same events re-cut into another batch (an outbox restored after a crash): no event is stored twice
    recut = post(env, "ing1", json_batch("b-2", "ing1", evs[5:] + events(1, start=T + 100))).json()
    assert not recut["duplicate_batch"] and recut["new_events"] == 2
    assert recut["sinks"]["jetstream"] == 2 and recut["sinks"]["redis"] == 2
    assert pg_count(env, "ing1") == 22
    assert stream_count(env, "ing1") == 22


def test_protobuf_batches(env: Env) -> None:
    env.store("ing2")
    evs = events(3)
    batch = sync_pb2.EventBatch(batch_id="pb-1", store="ing2", first_sequence=1, last_sequence=6,
                                events=[e.to_proto("ing2") for e in evs])
    r = post(env, "ing2", gzip.compress(batch.SerializeToString()), content_type="application/x-protobuf")
    assert r.status_code == 200, r.text
    assert r.json()["new_events"] == 6
    # identity encoding works too, and the body's ids are checked against the computed ones
    batch.batch_id = "pb-2"
    batch.events[0].event_id = "0" * 32
    r = post(env, "ing2", batch.SerializeToString(), content_type="application/x-protobuf", encoding="identity")
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "events.0"
    assert "event_id" in r.json()["fields"][0]["message"]


@pytest.mark.parametrize(("case", "status", "needle"), [
    ("not gzip", 400, "gzip"),
    ("brotli", 415, "Content-Encoding"),
    ("text/plain", 415, "Content-Type"),
    ("key mismatch", 409, "Idempotency-Key"),
    ("other store", 403, "not 'ing2'"),
    ("bad event", 422, "events.1"),
    ("no batch id", 422, "batch_id"),
    ("not json", 400, "JSON"),
    ("gzip bomb", 413, "inflates"),
    ("too many events", 413, "at most"),
])
def test_refusals(env: Env, case: str, status: int, needle: str) -> None:
    if "ing3" not in env.keys:
        env.store("ing3")
    good = json_batch("x-1", "ing3", events(1))
    before = pg_count(env, "ing3")
    r = {
        "not gzip": lambda: post(env, "ing3", b"definitely not gzip"),
        "brotli": lambda: post(env, "ing3", good, encoding="br"),
        "text/plain": lambda: post(env, "ing3", good, content_type="text/plain"),
        "key mismatch": lambda: post(env, "ing3", good, **{"Idempotency-Key": "x-2"}),
        "other store": lambda: post(env, "ing3", json_batch("x-3", "ing2", events(1))),
        "bad event": lambda: post(env, "ing3", gzip.compress(json.dumps({"batch_id": "x-4", "store": "ing3", "events": [
            events(1)[0].to_dict(), {"type": "zone_enter", "camera": "cam1", "ts": T, "track_id": 1}]}).encode())),
        "no batch id": lambda: post(env, "ing3", json_batch("", "ing3", events(1))),
        "not json": lambda: post(env, "ing3", gzip.compress(b"{nope")),
        "gzip bomb": lambda: post(env, "ing3", gzip.compress(b"\0" * (65 << 20))),
        "too many events": lambda: post(env, "ing3", json_batch("x-5", "ing3", events(5001))),
    }[case]()
    assert r.status_code == status, r.text
    assert needle in r.text
    assert pg_count(env, "ing3") == before  # all or nothing


def test_a_user_token_cannot_ingest(env: Env) -> None:
    if "ing3" not in env.keys:
        env.store("ing3")
    r = env.client.post("/v1/ingest/events", content=json_batch("u-1", "ing3", events(1)), headers={
        **env.auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 403
