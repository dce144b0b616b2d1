"""Presence in an area with enter and exit inertia, per track: the state machine zones and queues share.

A track becomes *present* once its foot point has been inside for ``enter_after_s`` (the presence
is dated back to the first inside observation), and stops being present once it has been seen
outside for ``exit_after_s``, or unseen for ``unseen_after_s`` (both dated back to the last inside
observation), or its track ended. *Unseen* means the tracker has lost the person for now (hidden
behind someone, missed by the detector) while it still hopes to find them: an occlusion shorter than
``unseen_after_s`` leaves one unbroken stay whose length spans the gap, and a longer one ends the
stay at the last time the person was seen inside. Giving ``unseen_after_s`` at least the tracker's
lost buffer leaves that decision to the tracker, which ends the track when it gives up.

Time only advances through :meth:`Presence.update`: absence is judged at each update from the
stream time, never by counting frames, so the same trajectory gives the same result at any frame rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rva.analytics.geometry import TIME_EPS


class StreamClock:
    """First and latest stream time a core has seen; refuses time going backwards.

    Args:
        owner: Named in the error, e.g. ``"zone 'entrance'"``.

    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.first_ts: float | None = None
        self.last_ts: float | None = None

    def advance(self, ts: float) -> float | None:
        """Move to ``ts`` and return the previous time (None on the first call).

        Raises:
            ValueError: ``ts`` is earlier than the last one (stream time must not go backwards).

        """
        previous = self.last_ts
        if previous is not None and ts < previous:
            raise ValueError(f"{self.owner}: ts went backwards: expected >= {previous}, got {ts}")
        if self.first_ts is None:
            self.first_ts = ts
        self.last_ts = ts
        return previous

    @property
    def elapsed_s(self) -> float:
        """Seconds from the first to the latest time seen (0 before two updates)."""
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return self.last_ts - self.first_ts


@dataclass(slots=True)
class Stay:
    """One track's current streak inside the area.

    Attributes:
        track_id: The confirmed track.
        first_inside_ts: First inside observation of the streak (the presence start once confirmed).
        last_inside_ts: Latest inside observation.
        confirmed: Whether ``enter_after_s`` has passed, i.e. the stay counts.

    """

    track_id: int
    first_inside_ts: float
    last_inside_ts: float
    confirmed: bool = False

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last inside observation."""
        return self.last_inside_ts - self.first_inside_ts


class Presence:
    """Per-track presence in one area, with enter and exit inertia in seconds of stream time.

    Args:
        enter_after_s: Inside this long before a stay is confirmed.
        exit_after_s: Seen outside this long before a confirmed stay ends.
        unseen_after_s: Unseen this long before a confirmed stay ends (default: ``exit_after_s``).

    """

    def __init__(self, enter_after_s: float, exit_after_s: float, unseen_after_s: float | None = None) -> None:
        unseen = exit_after_s if unseen_after_s is None else unseen_after_s
        if min(enter_after_s, exit_after_s, unseen) < 0:
            raise ValueError(
                f"inertia must be >= 0 s, got enter {enter_after_s}, exit {exit_after_s}, unseen {unseen}"
            )
        self.enter_after_s = enter_after_s
        self.exit_after_s = exit_after_s
        self.unseen_after_s = unseen
        self._stays: dict[int, Stay] = {}

    def update(
        self, ids: npt.NDArray[np.int64], inside: npt.NDArray[np.bool_], ts: float
    ) -> tuple[list[Stay], list[Stay]]:
        """Feed one frame's observations.

        Args:
            ids: Track ids observed this frame.
            inside: Whether each observed foot point is inside the area.
            ts: Stream time of the frame.

        Returns:
            ``(confirmed, ended)``: stays confirmed by this frame (start = ``first_inside_ts``) and
            confirmed stays that ended (end = ``last_inside_ts``), each a snapshot removed from the state.

        """
        confirmed: list[Stay] = []
        seen_inside: set[int] = set()
        for tid, ins in zip(ids.tolist(), inside.tolist(), strict=True):
            stay = self._stays.get(tid)
            if ins:
                if stay is None:
                    stay = self._stays[tid] = Stay(tid, ts, ts)
                stay.last_inside_ts = ts
                seen_inside.add(tid)
                if not stay.confirmed and ts - stay.first_inside_ts >= self.enter_after_s - TIME_EPS:
                    stay.confirmed = True
                    confirmed.append(Stay(tid, stay.first_inside_ts, stay.last_inside_ts, True))
            elif stay is not None and not stay.confirmed:
                del self._stays[tid]  # stepped out before the enter inertia: brushed the edge
        ended: list[Stay] = []
        observed = set(ids.tolist())
        for tid, stay in list(self._stays.items()):
            if tid in seen_inside:
                continue
            limit = self.exit_after_s if tid in observed else self.unseen_after_s  # seen outside, or unseen
            if ts - stay.last_inside_ts >= limit - TIME_EPS:
                del self._stays[tid]
                if stay.confirmed:
                    ended.append(stay)
        return confirmed, ended

    def end(self, track_ids: Iterable[int]) -> list[Stay]:
        """Tracks the tracker ended: confirmed stays end at their last inside time, candidates vanish."""
        ended = []
        for tid in track_ids:
            stay = self._stays.pop(int(tid), None)
            if stay is not None and stay.confirmed:
                ended.append(stay)
        return ended

    def pop(self, track_id: int) -> Stay | None:
        """Remove and return a track's stay (confirmed or not) without ending it."""
        return self._stays.pop(track_id, None)

    def get(self, track_id: int) -> Stay | None:
        """Return the track's current stay, if any."""
        return self._stays.get(track_id)

    def __iter__(self) -> Iterator[Stay]:
        return iter(self._stays.values())

    @property
    def confirmed_ids(self) -> list[int]:
        """Sorted ids of the confirmed stays open now."""
        return sorted(s.track_id for s in self._stays.values() if s.confirmed)

    @property
    def count(self) -> int:
        """Confirmed stays open now, including tracks unseen for less than the exit inertia."""
        return sum(1 for s in self._stays.values() if s.confirmed)

    def settled_before(self, ts: float) -> float:
        """Return a time no future start or end can precede: everything earlier is settled."""
        times = [s.first_inside_ts if not s.confirmed else s.last_inside_ts for s in self._stays.values()]
        return min([ts, *times])
