"""Deterministic synthetic event streams for store tests and the ingest benchmark.

Each visitor of a camera crosses the door line in, walks through one to three zones (enter, exit
with dwell), sometimes queues at the till (join, then served or abandon), and crosses out; track
start/end bracket it. The mix resembles what the analytics emit for a busy store.
"""

from __future__ import annotations

import random

from rva.core.events import Direction, Event, EventType

ZONES = ("entrance", "grocery", "apparel", "electronics", "fitting_rooms")


def synthetic_events(n: int, *, start_ts: float = 1_772_870_400.0, cameras: int = 4, seed: int = 0) -> list[Event]:
    """About ``n`` events (exactly ``n``: the list is cut), sorted by time.

    Args:
        n: How many events.
        start_ts: Unix time of the first visitor.
        cameras: Cameras ``cam0..cam{cameras-1}``, visitors spread over them.
        seed: Random seed (the same seed gives the same events).

    """
    rng = random.Random(seed)
    out: list[Event] = []
    track = 0
    t = start_ts
    while len(out) < n:
        track += 1
        cam = f"cam{track % cameras}"
        t += rng.uniform(0.0, 0.2)
        now = t
        ev = [Event(EventType.TRACK_START, cam, now, track),
              Event(EventType.LINE_CROSS, cam, now + 0.5, track, line="door", direction=Direction.IN)]
        now += 1.0
        for zone in rng.sample(ZONES, rng.randint(1, 3)):
            dwell = round(rng.uniform(2.0, 180.0), 3)
            enter = round(now, 6)
            ev += [Event(EventType.ZONE_ENTER, cam, enter, track, zone=zone),
                   Event(EventType.ZONE_EXIT, cam, round(enter + dwell, 6), track, zone=zone, dwell_s=dwell,
                         enter_ts=enter)]
            now = enter + dwell + rng.uniform(1.0, 10.0)
        if rng.random() < 0.5:
            join = round(now, 6)
            wait = round(rng.uniform(5.0, 300.0), 3)
            kind = EventType.QUEUE_SERVED if rng.random() < 0.85 else EventType.QUEUE_ABANDON
            ev += [Event(EventType.QUEUE_JOIN, cam, join, track, queue="till", enter_ts=join),
                   Event(kind, cam, round(join + wait, 6), track, queue="till", wait_s=wait, enter_ts=join)]
            now = join + wait + 5.0
        ev += [Event(EventType.LINE_CROSS, cam, now + 1.0, track, line="door", direction=Direction.OUT),
               Event(EventType.TRACK_END, cam, now + 2.0, track, attrs={"first_ts": t, "duration_s": now + 2.0 - t})]
        out += ev
    out.sort(key=lambda e: e.ts)
    return out[:n]
