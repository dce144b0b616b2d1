"""Redis live view on a real server: state after the scenario, replays and reordering change nothing."""

from __future__ import annotations

import stores_scenario as sc

from rva.core.events import Event, EventType
from rva.stores.records import StoredEvent
from rva.stores.redis_live import QueueLive, RedisLive, RedisLiveWriter, store_keys


def test_live_state_of_the_scenario(redis_url: str) -> None:
    writer = RedisLiveWriter(redis_url, window_s=86_400)
    rows = sc.records()
    assert writer.write(rows) == len(rows)
    live = RedisLive(redis_url)
    # Still inside at the end: A: t6, t11 (entered twice, counted once); B: t6, t11; C: t1, t6.
    assert live.occupancy("acme", "s1") == {("cam1", "A"): 2, ("cam1", "B"): 2, ("cam1", "C"): 2}
    assert live.queues("acme", "s1") == {("cam2", "till"): QueueLive(0, 3, 1, 300.0)}
    recent = live.recent("acme", "s1", 3)
    assert [r["ts"] - sc.t0 for r in recent] == [7300, 7300, 3700]
    assert live.occupancy("acme", "s2") == {}
    assert live.occupancy("other", "s1") == {("cam1", "A"): 6, ("cam1", "B"): 4, ("cam1", "C"): 3}  # no exits
    ttl = writer.client.ttl(store_keys("acme", "s1")[5])
    assert 86_000 < ttl <= 86_400


def test_replay_and_reordering_change_nothing(redis_url: str) -> None:
    writer = RedisLiveWriter(redis_url, window_s=86_400)
    rows = sc.records()
    writer.write(rows)
    live = RedisLive(redis_url)
    before = {k: live.dump(*k) for k in (("acme", "s1"), ("acme", "s2"), ("other", "s1"))}
    assert writer.write(rows) == 0
    assert writer.write(rows[::-1]) == 0
    assert {k: live.dump(*k) for k in before} == before


def test_exit_before_enter_leaves_nobody_inside(redis_url: str) -> None:
    writer = RedisLiveWriter(redis_url)
    enter = Event(EventType.ZONE_ENTER, "cam1", sc.t0 + 10, 1, zone="A")
    exit_ = Event(EventType.ZONE_EXIT, "cam1", sc.t0 + 40, 1, zone="A", dwell_s=30.0, enter_ts=sc.t0 + 10)
    writer.write([StoredEvent.of("t", "s", exit_)])
    writer.write([StoredEvent.of("t", "s", enter)])
    assert RedisLive(redis_url).occupancy("t", "s") == {}


def test_events_older_than_the_window_are_not_live(redis_url: str) -> None:
    writer = RedisLiveWriter(redis_url, window_s=60)
    late = Event(EventType.ZONE_ENTER, "cam1", sc.t0 + 1000, 2, zone="A")
    old = Event(EventType.ZONE_ENTER, "cam1", sc.t0 + 10, 1, zone="A")
    assert writer.write([StoredEvent.of("t", "s", late)]) == 1
    assert writer.write([StoredEvent.of("t", "s", old)]) == 0
    assert RedisLive(redis_url).occupancy("t", "s") == {("cam1", "A"): 1}
