"""All the analytics of one camera behind one call per frame."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from rva.analytics.geometry import confirmed_foot_points
from rva.analytics.heatmap import Heatmap
from rva.analytics.lines import LineCounter
from rva.analytics.presence import StreamClock
from rva.analytics.queues import QueueMonitor
from rva.analytics.zones import ZoneMonitor
from rva.config import CameraConfig, check_geometry
from rva.core.detections import Detections
from rva.core.events import Event, EventType
from rva.errors import ConfigError


class TrackRecord(Protocol):
    """What the tracker reports about a started or ended track (any object with these attributes)."""

    @property
    def track_id(self) -> int:
        """The confirmed track id."""

    @property
    def first_ts(self) -> float:
        """Stream time of the track's first observation."""

    @property
    def last_ts(self) -> float:
        """Stream time of the track's last observation."""


# Order of events that share a timestamp: a track starts before anything happens to it, ends after.
_ORDER = {EventType.TRACK_START: 0, EventType.TRACK_END: 2}


class CameraAnalytics:
    """Zones, lines, queues and the heatmap of one camera, fed with one frame's tracks at a time.

    End of stream (:meth:`finish`): stream time advances to the end and every timer whose inertia ran
    out fires (people who left before the end get their exits). Visits and queue waits of people
    still present stay **open** and are reported as current ``occupancy`` and ``waiting``, so the
    counts stay honest: every ``zone_exit`` has its ``zone_enter``, ``visits == exits + occupancy``,
    and ``served + abandoned + waiting == joined``. A runner that also wants those visits closed
    passes the tracker's final ended tracks to :meth:`update` first; they then close at each
    person's last inside time, as for any ended track.

    Args:
        camera: The camera's configuration.
        frame_size: Real ``(width, height)`` of the decoded frames.

    Raises:
        ConfigError: A zone, line or queue point lies outside the frame (the message names it).

    """

    def __init__(self, camera: CameraConfig, frame_size: tuple[int, int]) -> None:
        if len(frame_size) != 2 or min(frame_size) <= 0:
            raise ConfigError(f"camera {camera.id!r}: frame size must be positive (w, h), got {frame_size}")
        try:
            check_geometry(camera, frame_size)
        except ValueError as err:
            raise ConfigError(f"camera {camera.id!r}: {err}") from None
        self.camera = camera
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self._zones = {z.name: ZoneMonitor(z, camera.id) for z in camera.zones}
        self._lines = {ln.name: LineCounter(ln, camera.id) for ln in camera.lines}
        self._queues = {q.name: QueueMonitor(q, camera.id) for q in camera.queues}
        self.heatmap = Heatmap(camera.heatmap, self.frame_size)
        self._clock = StreamClock(f"camera {camera.id!r}")
        # Undecayed person-seconds per heatmap cell since the last snapshot (see heatmap_snapshot).
        self._heat_window = np.zeros(self.heatmap.shape, np.float64)
        self._heat_from_ts: float | None = None

    @property
    def zones(self) -> Mapping[str, ZoneMonitor]:
        """Zone monitors by name."""
        return MappingProxyType(self._zones)

    @property
    def lines(self) -> Mapping[str, LineCounter]:
        """Line counters by name."""
        return MappingProxyType(self._lines)

    @property
    def queues(self) -> Mapping[str, QueueMonitor]:
        """Queue monitors by name."""
        return MappingProxyType(self._queues)

    @property
    def ts(self) -> float | None:
        """Stream time of the last update."""
        return self._clock.last_ts

    def update(
        self,
        tracked: Detections,
        ts: float,
        started: Iterable[int | TrackRecord] = (),
        ended: Iterable[TrackRecord] = (),
    ) -> list[Event]:
        """Feed one frame to every analytic.

        Args:
            tracked: Confirmed tracks seen this frame (rows without a track id are ignored).
            ts: Stream time of the frame, in seconds; must not go backwards.
            started: Tracks confirmed at this frame: ids (dated ``ts``) or records with ``track_id``
                and ``first_ts``.
            ended: Tracks the tracker ended at this frame: records with ``track_id``, ``first_ts``
                and ``last_ts``.

        Returns:
            ``track_start``, zone, line, queue and ``track_end`` events, in time order.

        Raises:
            ValueError: ``ts`` is earlier than the previous frame's.

        """
        previous = self._clock.advance(ts)
        ended = list(ended)
        ended_ids = [int(r.track_id) for r in ended]
        events = [self._started(s, ts) for s in started]
        for zone in self._zones.values():
            events += zone.update(tracked, ts, ended_ids)
        for line in self._lines.values():
            events += line.update(tracked, ts, ended_ids)
        for queue in self._queues.values():
            events += queue.update(tracked, ts, ended_ids)
        self.heatmap.update(tracked, ts)
        self._add_window_heat(tracked, 0.0 if previous is None else min(ts - previous, self.heatmap.max_gap_s))
        events += [
            Event(
                EventType.TRACK_END, self.camera.id, float(r.last_ts), int(r.track_id),
                attrs={"first_ts": float(r.first_ts), "duration_s": float(r.last_ts) - float(r.first_ts)},
            )
            for r in ended
        ]
        return sorted(events, key=lambda e: (e.ts, _ORDER.get(e.type, 1)))

    def reconfigure(self, camera: CameraConfig) -> list[Event]:
        """Swap in a new definition of this camera's zones, lines, queues and heatmap, keeping the tracks.

        What did not change keeps its state. A zone that changed or went away closes its open visits
        now (``zone_exit`` at each visitor's last inside time, ``attrs.reason = "config_change"``); the
        new definition starts counting from the next frame (people already inside enter after its
        enter inertia). A changed or new line or queue starts fresh: a crossing needs both sides seen
        under one definition, and waits open under the old queue are not reported. A changed heatmap
        restarts its grid.

        Raises:
            ConfigError: A point lies outside the frame, or the camera id differs (nothing changes).

        """
        if camera.id != self.camera.id:
            raise ConfigError(f"reconfigure: camera {camera.id!r} is not {self.camera.id!r}")
        try:
            check_geometry(camera, self.frame_size)
        except ValueError as err:
            raise ConfigError(f"camera {camera.id!r}: {err}") from None
        events: list[Event] = []
        ts = self._clock.last_ts
        zones: dict[str, ZoneMonitor] = {}
        new_zones = {z.name: z for z in camera.zones}
        for name, monitor in self._zones.items():
            if new_zones.get(name) == monitor.cfg:
                zones[name] = monitor
            elif ts is not None:
                closed = monitor.update(Detections.empty(), ts, ended_ids=monitor.inside_ids)
                events += [
                    Event(e.type, e.camera, e.ts, e.track_id, zone=e.zone, dwell_s=e.dwell_s, enter_ts=e.enter_ts,
                          attrs={**e.attrs, "reason": "config_change"})
                    if e.type is EventType.ZONE_EXIT else e
                    for e in closed
                ]
        for name, cfg in new_zones.items():
            zones.setdefault(name, ZoneMonitor(cfg, camera.id))
        keep_lines = {ln.name: ln for ln in camera.lines}
        lines = {n: m for n, m in self._lines.items() if keep_lines.get(n) == m.cfg}
        for name, cfg in keep_lines.items():
            lines.setdefault(name, LineCounter(cfg, camera.id))
        keep_queues = {q.name: q for q in camera.queues}
        queues = {n: m for n, m in self._queues.items() if keep_queues.get(n) == m.cfg}
        for name, cfg in keep_queues.items():
            queues.setdefault(name, QueueMonitor(cfg, camera.id))
        # Keep the configured order (events and summaries list them as the config does).
        self._zones = {z.name: zones[z.name] for z in camera.zones}
        self._lines = {ln.name: lines[ln.name] for ln in camera.lines}
        self._queues = {q.name: queues[q.name] for q in camera.queues}
        if camera.heatmap != self.camera.heatmap:
            self.heatmap = Heatmap(camera.heatmap, self.frame_size)
            self._heat_window = np.zeros(self.heatmap.shape, np.float64)
            self._heat_from_ts = ts
        self.camera = camera
        return sorted(events, key=lambda e: e.ts)

    def _started(self, item: int | TrackRecord, ts: float) -> Event:
        if isinstance(item, int | np.integer):
            return Event(EventType.TRACK_START, self.camera.id, ts, int(item))
        return Event(EventType.TRACK_START, self.camera.id, float(item.first_ts), int(item.track_id))

    def _add_window_heat(self, tracked: Detections, dt: float) -> None:
        # Same cells and the same capped frame gap as the Heatmap, without its decay: windows then add up.
        _, points = confirmed_foot_points(tracked)
        if dt <= 0 or points.shape[0] == 0:
            return
        cell, (rows, cols) = self.heatmap.cfg.cell_px, self.heatmap.shape
        r = np.clip((points[:, 1] // cell).astype(np.int64), 0, rows - 1)
        c = np.clip((points[:, 0] // cell).astype(np.int64), 0, cols - 1)
        np.add.at(self._heat_window, (r, c), dt)

    def heatmap_snapshot(self, ts: float | None = None) -> Event | None:
        """Person-seconds per heatmap cell since the previous snapshot, as a ``heatmap_snapshot`` event.

        Unlike :attr:`heatmap` (which fades), these are plain person-seconds over
        ``(from_ts, ts]``, so the snapshots of any window add up to that window's heat. A service
        calls this periodically (e.g. every 60 s) and publishes what it returns.

        Args:
            ts: Stream time of the snapshot (default: the last update); not before the last update.

        Returns:
            The event, with ``attrs`` ``{"cell_px", "shape": [rows, cols], "frame_size": [w, h],
            "from_ts", "cells": [row * cols + col, ...], "seconds": [...]}`` listing the non-zero
            cells; None when nothing was seen since the previous snapshot (the window restarts anyway).

        Raises:
            ValueError: ``ts`` is earlier than the last update.

        """
        last = self._clock.last_ts
        at = last if ts is None else float(ts)
        if at is None:
            return None
        if last is not None and at < last:
            raise ValueError(f"heatmap_snapshot ts: expected >= last update {last}, got {at}")
        flat = self._heat_window.ravel()
        cells = np.flatnonzero(flat)
        from_ts, self._heat_from_ts = self._heat_from_ts, at
        if cells.size == 0:
            return None
        attrs = {
            "cell_px": self.heatmap.cfg.cell_px,
            "shape": list(self.heatmap.shape),
            "frame_size": list(self.frame_size),
            "from_ts": from_ts if from_ts is not None else self._clock.first_ts,
            "cells": cells.tolist(),
            "seconds": [round(float(v), 6) for v in flat[cells]],
        }
        self._heat_window[:] = 0.0
        return Event(EventType.HEATMAP_SNAPSHOT, self.camera.id, at, attrs=attrs)

    def finish(self, ts: float) -> list[Event]:
        """End of stream: advance to ``ts`` with nobody seen, and return what that settles.

        Exits and abandons whose inertia has run out by ``ts`` fire; visits and waits of people seen
        within their inertia stay open (see the class docs). Calling :meth:`update` afterwards is allowed.
        """
        return self.update(Detections.empty(), ts)

    def summary(self) -> dict[str, Any]:
        """Return the totals so far, JSON-ready.

        Returns:
            ``{"zones": {name: {visits, peak, mean_occupancy, mean_dwell_s, occupancy}},
            "lines": {name: {in, out}}, "queues": {name: {joined, served, abandoned, waiting,
            mean_wait_s, service_rate_per_min, wait_estimate_s}}}``; undefined means are None.

        """
        return {
            "zones": {
                name: {
                    "visits": z.visits,
                    "peak": z.peak,
                    "mean_occupancy": z.mean_occupancy(),
                    "mean_dwell_s": z.mean_dwell_s,
                    "occupancy": z.occupancy,
                }
                for name, z in self._zones.items()
            },
            "lines": {name: {"in": ln.in_count, "out": ln.out_count} for name, ln in self._lines.items()},
            "queues": {
                name: {
                    "joined": q.joined,
                    "served": q.served,
                    "abandoned": q.abandoned,
                    "waiting": q.waiting,
                    "mean_wait_s": q.mean_wait_s,
                    "service_rate_per_min": q.service_rate(),
                    "wait_estimate_s": q.wait_time_estimate(),
                }
                for name, q in self._queues.items()
            },
        }

    def live(self) -> dict[str, Any]:
        """Return current values for a dashboard, JSON-ready: the summary plus what is drawn live.

        Returns:
            :meth:`summary`'s mapping with ``camera`` and ``ts`` added, each zone also carrying
            ``capacity``, ``over_capacity`` and ``track_ids`` (inside now), each queue ``length``,
            ``max_length``, ``over_length`` and ``track_ids`` (waiting now).

        """
        out: dict[str, Any] = {"camera": self.camera.id, "ts": self.ts, **self.summary()}
        for name, z in self._zones.items():
            out["zones"][name].update(
                capacity=z.cfg.capacity, over_capacity=z.over_capacity(), track_ids=z.inside_ids
            )
        for name, q in self._queues.items():
            out["queues"][name].update(
                length=q.length, max_length=q.cfg.max_length, over_length=q.over_length(),
                track_ids=q.waiting_ids,
            )
        return out
