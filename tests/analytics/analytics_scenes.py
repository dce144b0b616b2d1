"""Scripted foot-point trajectories for the analytics tests: key frames in, Detections per frame out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rva.core.detections import Detections
from rva.core.events import Event

Pos = tuple[float, float] | None
Keys = Sequence[tuple[float, Pos]]

#: Frame rates every frame-rate-independence test runs at. Their frames all land on multiples of 0.2 s.
FPS = (5.0, 10.0, 25.0)


def after(t: float) -> float:
    """A moment just after ``t``, before the next frame at any rate in :data:`FPS`."""
    return t + 0.01


def walk(keys: Keys) -> Callable[[float], Pos]:
    """Linear motion between key frames; ``None`` = unseen until the next key; the last key holds."""
    times = [t for t, _ in keys]

    def at(t: float) -> Pos:
        i = int(np.searchsorted(times, t, side="right")) - 1
        if i < 0 or keys[i][1] is None:
            return None
        p = keys[i][1]
        if i + 1 == len(keys) or keys[i + 1][1] is None:
            return p
        (t0, p0), (t1, p1) = keys[i], keys[i + 1]
        assert p0 is not None and p1 is not None
        f = (t - t0) / (t1 - t0)
        return (p0[0] + f * (p1[0] - p0[0]), p0[1] + f * (p1[1] - p0[1]))

    return at


def steps(keys: Keys) -> Callable[[float], Pos]:
    """Each key's position holds from its time until the next key (jumps, no motion)."""
    times = [t for t, _ in keys]

    def at(t: float) -> Pos:
        i = int(np.searchsorted(times, t, side="right")) - 1
        return None if i < 0 else keys[i][1]

    return at


def dets(points: dict[int, tuple[float, float]]) -> Detections:
    """Detections whose boxes stand on the given foot points (bottom-centre), one per track id."""
    ids = list(points)
    xy = np.array([points[i] for i in ids], np.float64).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    return Detections(
        xyxy=np.stack([x - 15, y - 80, x + 15, y], axis=1),
        confidence=np.full(len(ids), 0.9),
        class_id=np.zeros(len(ids), np.int64),
        tracker_id=np.array(ids, np.int64),
    )


@dataclass(frozen=True)
class Ended:
    """What a tracker reports about an ended track."""

    track_id: int
    first_ts: float
    last_ts: float


@dataclass
class Frame:
    """One scripted frame."""

    ts: float
    tracked: Detections
    started: list[int]
    ended: list[Ended]

    @property
    def ended_ids(self) -> list[int]:
        return [e.track_id for e in self.ended]


@dataclass
class Scene:
    """Tracks moving on scripts, sampled at a frame rate.

    Attributes:
        tracks: Track id -> position at a stream time (None: not emitted this frame).
        duration: Last frame time.
        ends: Track id -> time the tracker ends it; from then on it is never emitted again.
    """

    tracks: dict[int, Callable[[float], Pos]]
    duration: float
    ends: dict[int, float] = field(default_factory=dict)

    def frames(self, fps: float) -> Iterator[Frame]:
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        done: set[int] = set()
        for k in range(round(self.duration * fps) + 1):
            ts = k / fps
            points: dict[int, tuple[float, float]] = {}
            ended = []
            for tid, path in self.tracks.items():
                if tid in done:
                    continue
                if tid in self.ends and ts >= self.ends[tid]:
                    done.add(tid)
                    if tid in first:
                        ended.append(Ended(tid, first[tid], last[tid]))
                    continue
                p = path(ts)
                if p is not None:
                    points[tid] = p
                    last[tid] = ts
            started = [t for t in points if t not in first and t >= 0]
            first.update({t: ts for t in started})
            yield Frame(ts, dets(points), started, ended)


Update = Callable[[Detections, float, list[int]], list[Event]]


def run(update: Update, scene: Scene, fps: float) -> list[Event]:
    """Feed every frame of a scene to ``update(tracked, ts, ended_ids)`` and collect the events."""
    events: list[Event] = []
    for f in scene.frames(fps):
        events += update(f.tracked, f.ts, f.ended_ids)
    return events


def brief(events: Sequence[Event]) -> list[tuple[str, int | None, float]]:
    """Events as ``(type, track, ts)`` with ts rounded to the microsecond, for comparing tables."""
    return [(str(e.type), e.track_id, round(e.ts, 6)) for e in events]
