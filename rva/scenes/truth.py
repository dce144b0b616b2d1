"""Ground truth of a rendered scene, derived from what was drawn, with the analytics' own conventions.

Conventions (identical to :mod:`rva.analytics`):

- A person's **box** is their on-screen silhouette's ``x1, y1, x2, y2`` (pixel edges); the **foot point**
  is its bottom-centre ``((x1 + x2) / 2, y2)``. Frame ``i`` is at ``i / fps`` seconds.
- **Zones**: inside when the foot point is in the polygon (:func:`~rva.analytics.geometry.points_in_polygon`).
  A visit starts at the first inside frame once the person has been inside ``enter_inertia_s`` and ends at
  the last inside frame once they have been outside or off screen ``exit_inertia_s`` (the zone's config);
  ``dwell_s = exit_ts - enter_ts``. Visits still open when the scene ends have ``exit_ts: null``.
- **Lines**: a crossing is a move between two consecutive on-screen frames that crosses the segment
  (:func:`~rva.analytics.geometry.segment_crossings`), dated at the interpolated instant; ``in`` is from
  the right of start->end to its left on screen (image y down). It counts once the person has stayed
  on the new side ``min_side_s``.
- **Queue**: joined after ``join_after_s`` in the queue area (absences under ``exit_inertia_s`` bridged),
  or on reaching the till from it; ``join_ts`` is the first time in the area. Served at the first frame
  in the service area (``wait_s = served_ts - join_ts``); abandoned when out of the area (or off
  screen) ``exit_inertia_s`` without being served (dated at the last time in it,
  ``wait_s = abandon_ts - join_ts``); otherwise still waiting when the scene ends.

Occluded people are still on screen: ground truth knows where they are. The derivation is written
independently of the analytics cores (sharing only the geometry primitives) so it can judge them.

``truth.json`` (keys sorted): ``version``, ``seed``, ``fps``, ``frame_count``, ``frame_size``, ``camera``;
``geometry`` (the config's zones, lines, queues); ``people`` (id, role, plan, spawn, source cut-out, first
and last frame on screen, ``lying`` intervals, the simulation's queue ``log``); ``frames`` (per frame
``frame``, ``ts`` and ``people``: ``id``, ``box``, ``foot``, ``visible_box``, ``occlusion`` (hidden fraction of
the on-screen silhouette), ``truncation`` (fraction off screen), ``pose``); ``zone_visits`` (``zone``, ``id``,
``enter_ts``, ``exit_ts``, ``last_inside_ts``, ``dwell_s``); ``line_crossings`` (``line``, ``id``,
``direction``, ``ts``, ``frame`` of the first observation on the new side); ``queue`` (``queue``, ``id``,
``join_ts``, ``outcome`` served/abandoned/waiting, ``served_ts``, ``abandon_ts``, ``wait_s``); ``summary``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from rva.analytics.geometry import points_in_polygon, segment_crossings, side_of_line
from rva.config import CameraConfig
from rva.scenes.render import Seen
from rva.scenes.script import Script
from rva.scenes.simulate import Pose

TRUTH_VERSION = 1
_EPS = 1e-9
_TOL = 1e-6


def _r(v: float) -> float:
    return round(float(v), 6)


def _tracks(frames: Sequence[Sequence[Seen]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per person: frame indices seen and foot points ``(n, 2)``."""
    acc: dict[int, tuple[list[int], list[tuple[float, float]]]] = {}
    for i, seen in enumerate(frames):
        for s in seen:
            idx, feet = acc.setdefault(s.person, ([], []))
            idx.append(i)
            feet.append(((s.box[0] + s.box[2]) / 2.0, s.box[3]))
    return {p: (np.array(i, np.int64), np.array(f, np.float64).reshape(-1, 2)) for p, (i, f) in sorted(acc.items())}


def _status(n: int, idx: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per frame: 1 inside, 0 on screen outside, -1 off screen."""
    st = np.full(n, -1, np.int8)
    st[idx] = inside.astype(np.int8)
    return st


def _stays(st: np.ndarray, fps: float, enter_s: float, exit_s: float) -> list[tuple[float, float, bool]]:
    """Confirmed stays ``(first_ts, last_ts, open)`` from per-frame status, with enter and exit inertia."""
    out: list[tuple[float, float, bool]] = []
    stay: list[Any] | None = None  # [first, last, confirmed]
    for i, s in enumerate(st.tolist()):
        ts = i / fps
        if s == 1:
            if stay is None:
                stay = [ts, ts, False]
            stay[1] = ts
            stay[2] = stay[2] or ts - stay[0] >= enter_s - _EPS
        elif s == 0 and stay is not None and not stay[2]:
            stay = None
        if stay is not None and s != 1 and ts - stay[1] >= exit_s - _EPS:
            if stay[2]:
                out.append((stay[0], stay[1], False))
            stay = None
    if stay is not None and stay[2]:
        out.append((stay[0], stay[1], True))
    return out


def zone_visits(
    tracks: dict[int, tuple[np.ndarray, np.ndarray]], n: int, fps: float, camera: CameraConfig
) -> list[dict[str, Any]]:
    """Zone visits of every person, by zone, then person, then time."""
    visits = []
    for zone in camera.zones:
        for pid, (idx, feet) in tracks.items():
            st = _status(n, idx, points_in_polygon(feet, zone.polygon))
            for first, last, is_open in _stays(st, fps, zone.enter_inertia_s, zone.exit_inertia_s):
                visits.append(
                    {
                        "zone": zone.name,
                        "id": pid,
                        "enter_ts": _r(first),
                        "exit_ts": None if is_open else _r(last),
                        "last_inside_ts": _r(last),
                        "dwell_s": _r(last - first),
                    }
                )
    return visits


def line_crossings(
    tracks: dict[int, tuple[np.ndarray, np.ndarray]], fps: float, camera: CameraConfig
) -> list[dict[str, Any]]:
    """Counted line crossings of every person, in time order."""
    out = []
    for line in camera.lines:
        start, end = (float(line.start[0]), float(line.start[1])), (float(line.end[0]), float(line.end[1]))
        for pid, (idx, feet) in tracks.items():
            sides = np.sign(side_of_line(feet, start, end)).astype(int).tolist()
            keep = [k for k, s in enumerate(sides) if s != 0]  # a point on the line is ignored
            if len(keep) < 2:
                continue
            crossed, frac = segment_crossings(feet[keep[:-1]], feet[keep[1:]], start, end)
            committed, pending = sides[keep[0]], None
            for j in range(1, len(keep)):
                k, kp = keep[j], keep[j - 1]
                side, ts, ts_prev = sides[k], idx[k] / fps, idx[kp] / fps
                if crossed[j - 1]:
                    pending = (
                        None
                        if side == committed
                        else (side, ts_prev + float(frac[j - 1]) * (ts - ts_prev), int(idx[k]))
                    )
                elif side != sides[kp]:  # around an end of the segment
                    pending, committed = (None, committed) if side == committed else (pending, side)
                if pending and pending[0] == side and ts - pending[1] >= line.min_side_s - _EPS:
                    out.append(
                        {
                            "line": line.name,
                            "id": pid,
                            "direction": "in" if side < 0 else "out",
                            "ts": _r(pending[1]),
                            "frame": pending[2],
                        }
                    )
                    committed, pending = side, None
    return sorted(out, key=lambda c: (c["ts"], c["id"]))


def queue_records(
    tracks: dict[int, tuple[np.ndarray, np.ndarray]], n: int, fps: float, camera: CameraConfig
) -> list[dict[str, Any]]:
    """Queue joins with their outcome (served, abandoned, waiting), by queue, person, time."""
    out: list[dict[str, Any]] = []
    for q in camera.queues:
        for pid, (idx, feet) in tracks.items():
            service = points_in_polygon(feet, q.service_polygon)
            st = _status(n, idx, points_in_polygon(feet, q.queue_polygon) & ~service)
            st[idx[service]] = 2
            stay: list[Any] | None = None  # [first, last, confirmed]
            for i, s in enumerate(st.tolist()):
                ts = i / fps
                if s == 2:
                    if stay is not None:
                        out.append(_queue_rec(q.name, pid, stay[0], "served", ts))
                        stay = None
                        break  # a served person never rejoins
                    continue
                if s == 1:
                    stay = stay or [ts, ts, False]
                    stay[1] = ts
                    stay[2] = stay[2] or ts - stay[0] >= q.join_after_s - _EPS
                elif s == 0 and stay is not None and not stay[2]:
                    stay = None
                if stay is not None and s != 1 and ts - stay[1] >= q.exit_inertia_s - _EPS:
                    if stay[2]:
                        out.append(_queue_rec(q.name, pid, stay[0], "abandoned", stay[1]))
                    stay = None
            if stay is not None and stay[2]:
                out.append(_queue_rec(q.name, pid, stay[0], "waiting", stay[1]))
    return out


def _queue_rec(queue: str, pid: int, join: float, outcome: str, ts: float) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "queue": queue,
        "id": pid,
        "join_ts": _r(join),
        "outcome": outcome,
        "served_ts": None,
        "abandon_ts": None,
        "wait_s": _r(ts - join),
    }
    if outcome == "served":
        rec["served_ts"] = _r(ts)
    elif outcome == "abandoned":
        rec["abandon_ts"] = _r(ts)
    else:
        rec["last_in_queue_ts"] = _r(ts)
    return rec


def derive_truth(script: Script, frames: Sequence[Sequence[Seen]], camera: CameraConfig) -> dict[str, Any]:
    """Build the ground-truth document of a rendered scene (see the module docs for its conventions)."""
    n, fps = len(frames), script.fps
    tracks = _tracks(frames)
    people = []
    for m in script.cast:
        idx = tracks.get(m.id, (np.zeros(0, np.int64), None))[0]
        lying = [i for i, seen in enumerate(frames) for s in seen if s.person == m.id and s.pose is Pose.LYING]
        people.append(
            {
                "id": m.id,
                "role": str(m.role),
                "plan": list(m.plan),
                "spawn_s": _r(m.spawn_s),
                "source_person": m.source_person,
                "sprite_sequence": m.sequence,
                "height_factor": _r(m.height_factor),
                "speed_mps": _r(m.speed_mps),
                "first_frame": int(idx[0]) if idx.size else None,
                "last_frame": int(idx[-1]) if idx.size else None,
                "frames_seen": int(idx.size),
                "lying": [[_r(lying[0] / fps), _r(lying[-1] / fps)]] if lying else [],
                "log": [[t, what] for t, pid, what in script.log if pid == m.id],
            }
        )
    truth: dict[str, Any] = {
        "version": TRUTH_VERSION,
        "seed": script.seed,
        "fps": fps,
        "frame_count": n,
        "frame_size": list(script.layout.frame_size),
        "camera": camera.id,
        "geometry": {
            "zones": {z.name: [list(p) for p in z.polygon] for z in camera.zones},
            "lines": {
                ln.name: {"start": list(ln.start), "end": list(ln.end), "min_side_s": ln.min_side_s}
                for ln in camera.lines
            },
            "queues": {
                q.name: {
                    "queue_polygon": [list(p) for p in q.queue_polygon],
                    "service_polygon": [list(p) for p in q.service_polygon],
                }
                for q in camera.queues
            },
        },
        "people": people,
        "frames": [
            {
                "frame": i,
                "ts": _r(i / fps),
                "people": [
                    {
                        "id": s.person,
                        "box": list(s.box),
                        "foot": [(s.box[0] + s.box[2]) / 2.0, s.box[3]],
                        "visible_box": list(s.visible_box) if s.visible_box else None,
                        "occlusion": round(s.occlusion, 4),
                        "truncation": round(s.truncation, 4),
                        "pose": str(s.pose),
                    }
                    for s in seen
                ],
            }
            for i, seen in enumerate(frames)
        ],
        "zone_visits": zone_visits(tracks, n, fps, camera),
        "line_crossings": line_crossings(tracks, fps, camera),
        "queue": queue_records(tracks, n, fps, camera),
    }
    truth["summary"] = summarize(truth)
    return truth


def summarize(truth: dict[str, Any]) -> dict[str, Any]:
    """Scene statistics: people, crossings, visits, queue outcomes, occlusion."""
    crossings = truth["line_crossings"]
    outcomes = [r["outcome"] for r in truth["queue"]]
    served_waits = [r["wait_s"] for r in truth["queue"] if r["outcome"] == "served"]
    occl = [p["occlusion"] for f in truth["frames"] for p in f["people"]]
    return {
        "people": len(truth["people"]),
        "people_seen": sum(1 for p in truth["people"] if p["frames_seen"]),
        "duration_s": truth["frame_count"] / truth["fps"],
        "person_frames": len(occl),
        "occluded_person_frames": sum(1 for o in occl if o >= 0.25),
        "crossings_in": sum(1 for c in crossings if c["direction"] == "in"),
        "crossings_out": sum(1 for c in crossings if c["direction"] == "out"),
        "zone_visits": {z: sum(1 for v in truth["zone_visits"] if v["zone"] == z) for z in truth["geometry"]["zones"]},
        "queue_joined": len(outcomes),
        "queue_served": outcomes.count("served"),
        "queue_abandoned": outcomes.count("abandoned"),
        "queue_waiting": outcomes.count("waiting"),
        "mean_wait_served_s": round(float(np.mean(served_waits)), 3) if served_waits else None,
        "people_lying": sum(1 for p in truth["people"] if p["lying"]),
    }


def write_truth(truth: dict[str, Any], path: Path) -> None:
    """Write ``truth.json`` (sorted keys, so equal truths give identical files)."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(truth, sort_keys=True, separators=(",", ":")), encoding="utf-8")
    partial.replace(path)


def read_truth(path: Path) -> dict[str, Any]:
    """Read a ``truth.json``."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != TRUTH_VERSION:
        raise ValueError(f"{path}: truth version {data.get('version')!r}, expected {TRUTH_VERSION}")
    return data


def validate(truth: dict[str, Any]) -> list[str]:
    """Check a truth document for internal consistency; return one line per problem (empty: consistent).

    Checks: ids unique (cast and per frame), frame times ``i / fps``, boxes inside the frame with the foot
    at their bottom-centre; every visit's exit at or after its enter with ``dwell = exit - enter`` and its
    end frames inside the zone; every crossing a real segment crossing of the per-frame foot points in
    the stated direction, and every uncounted one cancelled within ``min_side_s``; queue outcomes
    consistent (``served + abandoned + waiting = joined``, waits, positions); the summary up to date.
    """
    problems: list[str] = []
    fps, n = float(truth["fps"]), int(truth["frame_count"])
    width, height = truth["frame_size"]
    ids = [p["id"] for p in truth["people"]]
    if len(set(ids)) != len(ids):
        problems.append(f"people: ids not unique: {sorted(ids)}")
    if len(truth["frames"]) != n:
        problems.append(f"frames: expected {n}, got {len(truth['frames'])}")
    feet: dict[int, dict[int, tuple[float, float]]] = {}
    for i, f in enumerate(truth["frames"]):
        if f["frame"] != i or abs(f["ts"] - i / fps) > _TOL:
            problems.append(f"frame {i}: numbered {f['frame']} at ts {f['ts']}, expected ts {i / fps:g}")
        fids = [p["id"] for p in f["people"]]
        if len(set(fids)) != len(fids) or not set(fids) <= set(ids):
            problems.append(f"frame {i}: ids {fids} repeated or not in the cast")
        for p in f["people"]:
            x1, y1, x2, y2 = p["box"]
            if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
                problems.append(f"frame {i} id {p['id']}: box {p['box']} empty or outside the frame")
            if abs(p["foot"][0] - (x1 + x2) / 2) > _TOL or abs(p["foot"][1] - y2) > _TOL:
                problems.append(f"frame {i} id {p['id']}: foot {p['foot']} is not the box's bottom-centre")
            if not 0 <= p["occlusion"] <= 1:
                problems.append(f"frame {i} id {p['id']}: occlusion {p['occlusion']} outside [0, 1]")
            feet.setdefault(p["id"], {})[i] = (float(p["foot"][0]), float(p["foot"][1]))
    geo = truth["geometry"]

    def inside(pid: int, ts: float, polygon: list[list[float]]) -> bool:
        point = feet.get(pid, {}).get(round(ts * fps))
        return point is not None and bool(points_in_polygon([point], polygon)[0])

    spans: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for v in truth["zone_visits"]:
        end = v["exit_ts"] if v["exit_ts"] is not None else v["last_inside_ts"]
        where = f"visit {v['zone']} id {v['id']} at {v['enter_ts']}"
        if end < v["enter_ts"]:
            problems.append(f"{where}: exit {end} before enter")
        if abs(v["dwell_s"] - (end - v["enter_ts"])) > _TOL:
            problems.append(f"{where}: dwell {v['dwell_s']} != exit - enter = {end - v['enter_ts']:g}")
        if not (
            inside(v["id"], v["enter_ts"], geo["zones"][v["zone"]]) and inside(v["id"], end, geo["zones"][v["zone"]])
        ):
            problems.append(f"{where}: foot not inside the zone at enter or exit")
        spans.setdefault((v["zone"], v["id"]), []).append((v["enter_ts"], end))
    for key, ss in spans.items():
        ss.sort()
        if any(b[0] <= a[1] for a, b in pairwise(ss)):
            problems.append(f"visits {key}: overlapping visits {ss}")
    problems += _check_crossings(truth, feet, fps)
    problems += _check_queue(truth, inside)
    if truth.get("summary") != summarize(truth):
        problems.append("summary: out of date with the events")
    return problems


def _check_crossings(truth: dict[str, Any], feet: dict[int, dict[int, tuple[float, float]]], fps: float) -> list[str]:
    problems: list[str] = []
    for name, ln in truth["geometry"]["lines"].items():
        start, end = (float(ln["start"][0]), float(ln["start"][1])), (float(ln["end"][0]), float(ln["end"][1]))
        listed = {(c["id"], c["frame"]): c for c in truth["line_crossings"] if c["line"] == name}
        for pid, track in feet.items():
            frames = sorted(k for k, p in track.items() if side_of_line([p], start, end)[0] != 0)
            if len(frames) < 2:
                continue
            pts = np.array([track[k] for k in frames])
            crossed, _ = segment_crossings(pts[:-1], pts[1:], start, end)
            sides = np.sign(side_of_line(pts, start, end))
            raw = np.flatnonzero(crossed).tolist()  # move j: frames[j] -> frames[j + 1]
            for r, j in enumerate(raw):
                k, direction = frames[j + 1], "in" if sides[j + 1] < 0 else "out"
                c = listed.pop((pid, k), None)
                if c is not None:
                    if c["direction"] != direction:
                        problems.append(f"crossing {name} id {pid} frame {k}: {c['direction']}, feet say {direction}")
                    continue
                # Uncounted is right only if the person did not stay min_side_s on the new side.
                last_there = frames[raw[r + 1]] if r + 1 < len(raw) else frames[-1]
                if (last_there - k) / fps >= ln["min_side_s"] - _EPS:
                    problems.append(f"crossing {name} id {pid} frame {k} ({direction}): missing from line_crossings")
        problems += [f"crossing {name} id {pid} frame {k}: feet do not cross the segment there" for pid, k in listed]
    return problems


def _check_queue(truth: dict[str, Any], inside: Any) -> list[str]:
    problems: list[str] = []
    for r in truth["queue"]:
        where = f"queue {r['queue']} id {r['id']} joined {r['join_ts']}"
        geo = truth["geometry"]["queues"][r["queue"]]
        end = {"served": r["served_ts"], "abandoned": r["abandon_ts"]}.get(r["outcome"], r.get("last_in_queue_ts"))
        if r["outcome"] not in ("served", "abandoned", "waiting") or end is None:
            problems.append(f"{where}: outcome {r['outcome']!r} without its time")
            continue
        if end < r["join_ts"] or abs(r["wait_s"] - (end - r["join_ts"])) > _TOL:
            problems.append(f"{where}: wait {r['wait_s']} != {r['outcome']} time {end} - join")
        if not inside(r["id"], r["join_ts"], geo["queue_polygon"]):
            problems.append(f"{where}: foot not in the queue area at the join")
        if r["outcome"] == "served" and not inside(r["id"], end, geo["service_polygon"]):
            problems.append(f"{where}: foot not at the till when served")
    by_person: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in truth["queue"]:
        by_person.setdefault((r["queue"], r["id"]), []).append(r)
    for (queue, pid), recs in by_person.items():
        recs.sort(key=lambda r: r["join_ts"])
        if any(r["outcome"] != "abandoned" for r in recs[:-1]):
            problems.append(f"queue {queue} id {pid}: joined again after being served or while waiting")
    s = summarize(truth)
    if s["queue_served"] + s["queue_abandoned"] + s["queue_waiting"] != s["queue_joined"]:
        problems.append(f"queue: served + abandoned + waiting != joined ({s})")
    return problems
