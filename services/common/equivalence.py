"""Are two runs' events the same? Counts per kind must match, and times pair up within a tolerance.

Used to hold the distributed stack to the standalone runner (tests, ``bench/services.py``).
``source_state`` events are left out: they describe each process's own sources (wall-clock
times, and a distributed run's decoder reports the end of its frame budget as ``ended``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from rva.core import Event, EventType

Key = tuple[str, str | None, str | None]


def event_key(event: Event) -> Key:
    """What an event is about, without its time or track id: type, place, direction."""
    place = event.zone or event.line or event.queue
    return str(event.type), place, None if event.direction is None else str(event.direction)


@dataclass
class Comparison:
    """The outcome of :func:`compare_events`.

    Attributes:
        equivalent: Same counts for every key and every paired time within the tolerance.
        reference: Events per key in the reference run.
        candidate: Events per key in the candidate run.
        max_dt: Largest time difference between paired events, seconds.
        problems: One line per mismatch.

    """

    equivalent: bool
    reference: dict[str, int]
    candidate: dict[str, int]
    max_dt: float
    problems: list[str] = field(default_factory=list)


def compare_events(reference: Iterable[Event], candidate: Iterable[Event], tolerance_s: float) -> Comparison:
    """Compare two runs' events key by key (times sorted and paired in order)."""
    ref: dict[Key, list[float]] = defaultdict(list)
    cand: dict[Key, list[float]] = defaultdict(list)
    for events, into in ((reference, ref), (candidate, cand)):
        for e in events:
            if e.type != EventType.SOURCE_STATE:
                into[event_key(e)].append(float(e.ts))
    problems: list[str] = []
    max_dt = 0.0
    for key in sorted(set(ref) | set(cand), key=str):
        a, b = sorted(ref.get(key, [])), sorted(cand.get(key, []))
        if len(a) != len(b):
            problems.append(f"{'/'.join(k for k in key if k)}: {len(a)} in the reference, {len(b)} in the candidate")
            continue
        for ta, tb in zip(a, b, strict=True):
            max_dt = max(max_dt, abs(ta - tb))
            if abs(ta - tb) > tolerance_s + 1e-9:
                problems.append(f"{'/'.join(k for k in key if k)}: t={ta:.3f} vs {tb:.3f}")

    def fmt(d: dict[Key, list[float]]) -> dict[str, int]:
        return {"/".join(k for k in key if k): len(v) for key, v in sorted(d.items(), key=str)}

    return Comparison(not problems, fmt(ref), fmt(cand), max_dt, problems)
