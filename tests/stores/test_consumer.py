"""JetStream -> stores on real servers: bad input dead-lettered, replays change nothing, latency bounded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats
import pytest
import stores_scenario as sc
from test_postgres import dump as pg_dump

from rva.core.events import Direction, Event, EventType
from rva.stores.clickhouse import ChdbDriver, ClickHouseWriter
from rva.stores.clickhouse_queries import ClickHouseQueries
from rva.stores.consumer import EventConsumer
from rva.stores.postgres import PostgresWriter
from rva.stores.publish import DEFAULT_STREAM, publish_events
from rva.stores.records import JSON_CONTENT_TYPE, encode
from rva.stores.redis_live import RedisLive, RedisLiveWriter
from rva.stores.results import Scope
from rva.stores.servers import start_redis

LINE = Event(EventType.LINE_CROSS, "cam1", sc.t0, 1, line="door", direction=Direction.IN)


def _bad_messages() -> list[tuple[str, bytes, dict[str, str], str]]:
    """(subject, payload, headers, expected reason)."""
    v2 = LINE.to_proto("s1")
    v2.schema_version = 2
    subject, json_payload, json_headers = encode("s1", LINE, JSON_CONTENT_TYPE)
    return [
        (subject, v2.SerializeToString(), {"Nats-Msg-Id": "bad-1"}, "schema_version"),
        (subject, b"\xff\x00 not protobuf", {"Nats-Msg-Id": "bad-2"}, "malformed"),
        (subject, json_payload[:-5], {**json_headers, "Nats-Msg-Id": "bad-3"}, "malformed"),
        ("rva.s9.cam1.line_cross", LINE.to_proto("s1").SerializeToString(), {"Nats-Msg-Id": "bad-4"}, "mismatch"),
    ]


async def _publish_scenario(url: str) -> tuple[int, list[str]]:
    nc = await nats.connect(url, connect_timeout=5)
    js = nc.jetstream(timeout=5)
    s1 = sc.ACME_S1
    stored = await publish_events(js, "s1", s1[: len(s1) // 2])
    for subject, payload, headers, _ in _bad_messages():  # in the middle of the stream
        await js.publish(subject, payload, headers=headers)
    stored += await publish_events(js, "s1", s1[len(s1) // 2 :], content_type=JSON_CONTENT_TYPE)
    stored += await publish_events(js, "s2", sc.ACME_S2)
    assert await publish_events(js, "s1", s1[:5]) == 0  # re-published inside the duplicate window: dropped
    await nc.close()
    return stored, [m[3] for m in _bad_messages()]


async def _consume(url: str, writers: list[Any], replay: bool = False) -> list[EventConsumer]:
    """Run one consumer per writer until caught up; a replay uses new durables from sequence 1."""
    nc = await nats.connect(url, connect_timeout=5)
    consumers = [
        EventConsumer(nc, w, tenant="acme", batch_size=50, durable=f"replay-{w.name}", start_seq=1) if replay
        else EventConsumer(nc, w, tenant="acme", batch_size=16)
        for w in writers
    ]
    await asyncio.wait_for(asyncio.gather(*(c.run(until_caught_up=True) for c in consumers)), 60)
    await nc.close()
    return consumers


async def _dead_letters(url: str, n: int) -> list[tuple[str, str, str]]:
    nc = await nats.connect(url, connect_timeout=5)
    sub = await nc.jetstream(timeout=5).pull_subscribe("rva.dlq.>", stream=DEFAULT_STREAM)
    msgs = await sub.fetch(n + 5, timeout=2)
    await nc.close()
    return sorted((m.subject, m.headers["Rva-Dlq-Reason"], m.headers["Rva-Original-Subject"]) for m in msgs)


def _state(pg_dsn: str, ch: ClickHouseQueries, redis_url: str) -> dict[str, Any]:
    scope = Scope("acme", sc.at(0), sc.at(86_400))
    return {
        "postgres": pg_dump(pg_dsn),
        "clickhouse": (ch.count_events("acme"), ch.top_journeys(scope), ch.hourly_counts(scope)),
        "redis": {k: RedisLive(redis_url).dump("acme", k) for k in ("s1", "s2")},
    }


def test_jetstream_to_every_store_with_dead_letters_and_replay(
    nats_url: str, pg_dsn: str, chdb_driver: ChdbDriver, ch_db: str, redis_url: str
) -> None:
    stored, reasons = asyncio.run(_publish_scenario(nats_url))
    assert stored == len(sc.ACME_S1) + len(sc.ACME_S2)
    writers = [PostgresWriter(pg_dsn), ClickHouseWriter(chdb_driver, ch_db), RedisLiveWriter(redis_url, window_s=1e6)]
    consumers = asyncio.run(_consume(nats_url, writers))
    for c in consumers:
        assert c.stats.written == stored, c.durable
        assert sorted(c.stats.dead_letters.elements()) == sorted(reasons)
        assert c.stats.batches >= stored // 16
        assert c.stats.max_batch_wait_s <= 1.5
    # One dead letter per bad message although three consumers saw each (Nats-Msg-Id = dlq:<stream>:<seq>).
    letters = asyncio.run(_dead_letters(nats_url, len(reasons)))
    assert [(r, s) for _, r, s in letters] == sorted(
        (m[3], m[0]) for m in _bad_messages()
    )
    assert all(subject == f"rva.dlq.{reason}" for subject, reason, _ in letters)

    ch = ClickHouseQueries(chdb_driver, ch_db)
    first = _state(pg_dsn, ch, redis_url)
    assert len(first["postgres"]["events"]) == stored and first["clickhouse"][0] == stored
    # Replay the whole range through new durables: every store stays exactly as it was.
    replay = asyncio.run(_consume(nats_url, writers, replay=True))
    assert all(c.stats.written == stored for c in replay)
    assert _state(pg_dsn, ch, redis_url) == first
    for w in writers:
        w.close()  # the ClickHouse writer leaves the session's chdb driver open: it did not open it


@pytest.mark.parametrize("max_wait_s", [0.2, 1.0])
def test_a_lone_event_is_committed_within_max_wait(nats_url: str, pg_dsn: str, max_wait_s: float) -> None:
    async def go() -> float:
        nc = await nats.connect(nats_url, connect_timeout=5)
        writer = PostgresWriter(pg_dsn)
        consumer = EventConsumer(nc, writer, tenant="acme", batch_size=10_000, max_wait_s=max_wait_s)
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        await asyncio.sleep(0.5)
        t = time.monotonic()
        await publish_events(nc.jetstream(), "s1", [LINE])
        while consumer.stats.batches == 0 and time.monotonic() - t < 10:
            await asyncio.sleep(0.01)
        took = time.monotonic() - t
        stop.set()
        await asyncio.wait_for(task, 10)
        await nc.close()
        writer.close()
        return took

    took = asyncio.run(go())
    assert took < max_wait_s + 0.5  # the batch closes max_wait_s after its first message, then commits


def test_consumer_keeps_going_while_redis_is_down(nats_url: str, tmp_path: Any) -> None:
    server = start_redis(tmp_path / "r1")
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    writer = RedisLiveWriter(server.url, window_s=1e6, timeout_s=1.0)

    async def go() -> EventConsumer:
        nc = await nats.connect(nats_url, connect_timeout=5)
        consumer = EventConsumer(nc, writer, tenant="acme", batch_size=8)
        server.stop()
        await publish_events(nc.jetstream(), "s1", sc.ACME_S1[:20])
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        while consumer.stats.retries < 2:
            await asyncio.sleep(0.05)
        assert consumer.stats.written == 0
        restarted = start_redis(tmp_path / "r2", port=port)
        try:
            await asyncio.wait_for(_until(consumer, 20), 30)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await nc.close()
            restarted.stop()
        return consumer

    consumer = asyncio.run(go())
    assert consumer.stats.written == 20 and consumer.stats.retries >= 2


async def _until(consumer: EventConsumer, written: int) -> None:
    while consumer.stats.written < written:
        await asyncio.sleep(0.05)


def test_fanout_consumer_writes_every_store_once(nats_url: str, pg_dsn: str, redis_url: str) -> None:
    from rva.stores.fanout import FanoutWriter

    async def go() -> EventConsumer:
        nc = await nats.connect(nats_url, connect_timeout=5)
        await publish_events(nc.jetstream(), "s1", sc.ACME_S1)
        fan = FanoutWriter([PostgresWriter(pg_dsn), RedisLiveWriter(redis_url, window_s=1e6)])
        consumer = EventConsumer(nc, fan, tenant="acme", batch_size=10)
        await asyncio.wait_for(consumer.run(until_caught_up=True), 60)
        assert consumer.durable == "rva-stores-all"
        await nc.close()
        fan.close()
        return consumer

    consumer = asyncio.run(go())
    assert consumer.stats.written == len(sc.ACME_S1)
    assert len(pg_dump(pg_dsn)["events"]) == len(sc.ACME_S1)
    assert RedisLive(redis_url).occupancy("acme", "s1") == {("cam1", "A"): 2, ("cam1", "B"): 2, ("cam1", "C"): 2}
