"""A small known store day and the answers worked out by hand (see the comments next to each).

Tenant ``acme``, store ``s1``, from T0 = Saturday 2026-03-07 10:00:00 UTC. Camera ``cam1`` has zones
A, B, C and lines ``door`` and ``staff``; camera ``cam2`` has the queue ``till``. Tenant ``other``
holds copies of some events under the same store id (same event ids!) and ``acme`` has a second
store ``s2``: neither may leak into ``acme``/``s1`` answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rva.core.events import Direction, Event, EventType
from rva.stores.records import StoredEvent

T0 = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
t0 = T0.timestamp()
ZE, ZX, LC = EventType.ZONE_ENTER, EventType.ZONE_EXIT, EventType.LINE_CROSS
IN, OUT = Direction.IN, Direction.OUT


def _visit(track: int, zone: str, enter: float, exit_: float | None = None) -> list[Event]:
    out = [Event(ZE, "cam1", t0 + enter, track, zone=zone)]
    if exit_ is not None:
        out.append(Event(ZX, "cam1", t0 + exit_, track, zone=zone, dwell_s=exit_ - enter, enter_ts=t0 + enter))
    return out


def _cross(track: int, line: str, at: float, d: Direction, camera: str = "cam1") -> Event:
    return Event(LC, camera, t0 + at, track, line=line, direction=d)


def _queue(track: int, join: float, end: float, served: bool) -> list[Event]:
    kind = EventType.QUEUE_SERVED if served else EventType.QUEUE_ABANDON
    return [Event(EventType.QUEUE_JOIN, "cam2", t0 + join, track, queue="till", enter_ts=t0 + join),
            Event(kind, "cam2", t0 + end, track, queue="till", wait_s=end - join, enter_ts=t0 + join)]


def _heat(at: float, shape: list[int], cells: list[int], seconds: list[float]) -> Event:
    attrs = {"cell_px": 16, "shape": shape, "frame_size": [shape[1] * 16, shape[0] * 16], "from_ts": t0 + at - 60,
             "cells": cells, "seconds": seconds}
    return Event(EventType.HEATMAP_SNAPSHOT, "cam1", t0 + at, attrs=attrs)


ACME_S1: list[Event] = sorted(
    _visit(1, "A", 10, 40) + _visit(1, "B", 45, 100) + _visit(1, "C", 110)
    + _visit(2, "A", 20, 95) + _visit(2, "C", 130, 140)
    + _visit(3, "B", 30, 32.5) + _visit(3, "A", 60, 360)
    + _visit(4, "A", 40, 50)
    + _visit(6, "A", 200) + _visit(6, "B", 210) + _visit(6, "C", 220)
    + _visit(11, "A", 300) + _visit(11, "A", 400) + _visit(11, "B", 500)
    + [_cross(1, "door", 5, IN), _cross(2, "door", 15, IN), _cross(3, "door", 25, IN), _cross(4, "door", 35, IN),
       _cross(2, "door", 3590, OUT), _cross(5, "door", 3605, IN), _cross(1, "door", 3700, OUT),
       _cross(9, "door", 7300, IN), _cross(20, "staff", 50, IN)]
    + _queue(7, 10, 70, True) + _queue(8, 60, 80, True) + _queue(9, 40, 90, False) + _queue(10, 100, 400, True)
    + [_heat(30, [1, 1], [0], [5.0]), _heat(60, [2, 3], [0, 4], [1.5, 2.0]), _heat(120, [2, 3], [4, 5], [1.0, 0.5]),
       _heat(7300, [2, 3], [0], [9.0])]
    + [Event(EventType.TRACK_START, "cam1", t0 + 1, 1),
       Event(EventType.SOURCE_STATE, "cam1", t0, attrs={"state": "ok"})],
    key=lambda e: e.ts,
)
ACME_S2: list[Event] = [_cross(1, "door", 100, IN)]
OTHER_S1: list[Event] = [e for e in ACME_S1 if e.type in (LC, ZE)]


def records() -> list[StoredEvent]:
    """Every event of the scenario, as the stores receive them."""
    return (
        [StoredEvent.of("acme", "s1", e) for e in ACME_S1]
        + [StoredEvent.of("acme", "s2", e) for e in ACME_S2]
        + [StoredEvent.of("other", "s1", e) for e in OTHER_S1]
    )


def at(seconds: float) -> datetime:
    """T0 plus seconds."""
    return T0 + timedelta(seconds=seconds)


# Occupancy of cam1 sampled every 30 s over [T0, T0+180): (offset, occupancy, peak in [t, t+30)).
# A: visits t1 [10,40] t2 [20,95] t3 [60,360] t4 [40,50]. At 40 the enter of t4 and the exit of t1
# coincide: enters <= 40 minus exits < 40 = 3, hence the peak of 3 in [30, 60).
OCCUPANCY = {
    "A": [(0, 0, 2), (30, 2, 3), (60, 2, 2), (90, 2, 2), (120, 1, 1), (150, 1, 1)],
    "B": [(0, 0, 0), (30, 1, 1), (60, 1, 1), (90, 1, 1), (120, 0, 0), (150, 0, 0)],
    "C": [(0, 0, 0), (30, 0, 0), (60, 0, 0), (90, 0, 1), (120, 1, 2), (150, 1, 1)],
}
