"""Tracker speed, side by side: RVA's ByteTracker vs Roboflow ``trackers``' ByteTrackTracker.

Both get the SAME detections, prepared before timing (``sv.Detections`` for ``trackers``):

* ``TUD-Campus`` / ``TUD-Stadtmitte``: the real MOT15 ground truth shipped in ``motmetrics==1.4.0``
  made detector-like by :func:`rva.evaluation.perturb` (seeded jitter, occlusion-driven misses and
  score dips, false positives), ~5-7 people per frame;
* ``dense synthetic``: :func:`rva.tracking.synthetic.walking_people` (100 people over 40 s: ~20 in
  view on average, ~30 mid-clip; crossings, stops) through the same noise model.

Settings are equivalent: ``trackers`` gets RVA's defaults translated (``lost_track_buffer`` counts
30-fps frames, so 3 s = 90; ``frame_rate`` 25). Only the ``update`` calls are timed, each tracker
``--repeats`` times interleaved, best run kept. Speed is reported per CPU second of this process
(``time.process_time``: robust on the shared 2-core box, where wall time depends on what else
runs) and per wall second. Ids are scored by TrackEval against the ground truth (ID switches,
IDF1, HOTA) through :func:`rva.evaluation.score_tracking`.

Usage::

    python bench/tracker_speed.py [--repeats 5] [--level medium] [--json out.json]

``run(rows)`` appends the rows to a list, for ``bench/cpu_pipeline.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv
from rich.console import Console
from rich.table import Table
from trackers import ByteTrackTracker

from rva.config import TrackerConfig
from rva.core.detections import NO_TRACK, Detections
from rva.evaluation.mot import (
    NOISE_LEVELS,
    TUD_SEQUENCES,
    MotSequence,
    perturb,
    score_tracking,
    tud_sequence,
)
from rva.tracking import ByteTracker
from rva.tracking.synthetic import walking_people

FPS = 25.0  # TUD's frame rate; the synthetic scene uses it too


def dense_scene(seed: int = 1) -> MotSequence:
    """100 people over 40 s at 25 fps, 1280x720: ~20 in view on average, ~30 mid-clip."""
    frames = walking_people(100, 40.0, FPS, (1280, 720), seed=seed)
    return MotSequence("dense synthetic", FPS, (1280, 720), tuple(f.xyxy for f in frames),
                       tuple(f.tracker_id for f in frames))


def roboflow_tracker(config: TrackerConfig) -> ByteTrackTracker:
    """``trackers``' ByteTrack with RVA's settings translated to its parameters."""
    return ByteTrackTracker(
        lost_track_buffer=round(config.lost_buffer_s * 30),  # counts 30-fps frames
        frame_rate=FPS,
        track_activation_threshold=config.new_track_threshold,
        minimum_consecutive_frames=config.min_hits,
        minimum_iou_threshold=config.match_iou,
        high_conf_det_threshold=config.high_threshold,
    )


@dataclass(frozen=True, slots=True)
class Timed:
    """One tracker's best run over an input."""

    cpu_s: float
    wall_s: float
    tracks: list[Detections]


def _time_rva(frames: Sequence[Detections], config: TrackerConfig) -> Timed:
    tracker = ByteTracker(config)
    outs = []
    c0, w0 = time.process_time(), time.perf_counter()
    for t, dets in enumerate(frames):
        outs.append(tracker.update(dets, t / FPS))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return Timed(cpu, wall, [o.tracked for o in outs])


def _time_roboflow(frames: Sequence[sv.Detections], config: TrackerConfig) -> Timed:
    tracker = roboflow_tracker(config)
    outs = []
    c0, w0 = time.process_time(), time.perf_counter()
    for dets in frames:
        outs.append(tracker.update(dets))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    tracked = []
    for o in outs:  # confirmed rows only, as RVA emits
        keep = o.tracker_id != NO_TRACK
        tracked.append(Detections.from_arrays(o.xyxy[keep], o.confidence[keep]).with_tracker_id(
            o.tracker_id[keep]))
    return Timed(cpu, wall, tracked)


def compare(gt: MotSequence, frames: list[Detections], repeats: int, config: TrackerConfig) -> dict[str, Any]:
    """Time both trackers on ``frames`` (best of ``repeats``, interleaved) and score their ids."""
    # The same arrays for both: boxes, scores, classes (perturb's diagnostic data columns dropped).
    frames = [Detections.from_arrays(f.xyxy, f.confidence, f.class_id) for f in frames]
    sv_frames = [sv.Detections(xyxy=f.xyxy.astype(np.float64), confidence=f.confidence, class_id=f.class_id)
                 for f in frames]
    best: dict[str, Timed] = {}
    for _ in range(repeats):
        for name, timed in (("rva", _time_rva(frames, config)), ("trackers", _time_roboflow(sv_frames, config))):
            if name not in best or timed.cpu_s < best[name].cpu_s:
                best[name] = timed
    n = len(frames)
    row: dict[str, Any] = {
        "input": gt.name,
        "frames": n,
        "dets/frame": round(float(np.mean([len(f) for f in frames])), 1),
    }
    for name, timed in best.items():
        scores = score_tracking(gt, timed.tracks)
        row[f"{name} fps"] = round(n / timed.cpu_s)
        row[f"{name} wall fps"] = round(n / timed.wall_s)
        row[f"{name} IDSW"] = scores.idsw
        row[f"{name} IDF1"] = round(scores.idf1, 3)
        row[f"{name} HOTA"] = round(scores.hota, 3)
    row["speedup"] = round(best["trackers"].cpu_s / best["rva"].cpu_s, 2)
    row["wall speedup"] = round(best["trackers"].wall_s / best["rva"].wall_s, 2)
    return row


def run(
    rows_out: list[dict[str, Any]],
    repeats: int = 5,
    level: str = "medium",
    seed: int = 0,
    config: TrackerConfig | None = None,
) -> None:
    """Append one row per input (TUD-Campus, TUD-Stadtmitte, dense synthetic) to ``rows_out``."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    config = config or TrackerConfig()
    for gt in [*(tud_sequence(name) for name in TUD_SEQUENCES), dense_scene()]:
        rows_out.append(compare(gt, perturb(gt, NOISE_LEVELS[level], seed), repeats, config))


def solver_rows(sizes: Sequence[int] = (5, 10, 20, 40), calls: int = 2000) -> list[dict[str, Any]]:
    """Microseconds per gated assignment: scipy ``linear_sum_assignment`` vs ``lap.lapjv``.

    The matrices look like tracking ones: each track overlaps its own detection and a neighbour's.
    """
    import lap
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        sim = np.zeros((n, n + 2))
        sim[np.arange(n), np.arange(n)] = rng.uniform(0.5, 0.95, n)
        sim[np.arange(n - 1), np.arange(1, n)] = rng.uniform(0.0, 0.4, n - 1)
        cost = np.where(sim >= 0.2, 1.0 - sim, 1.0)
        timings = {}
        for name, solve in (
            ("scipy", lambda c=cost: linear_sum_assignment(c)),
            ("lap", lambda c=cost: lap.lapjv(c, extend_cost=True, cost_limit=0.8, return_cost=False)),
        ):
            best = float("inf")
            for _ in range(5):
                t0 = time.process_time()
                for _ in range(calls):
                    solve()
                best = min(best, time.process_time() - t0)
            timings[name] = best / calls * 1e6
        rows.append({"tracks x dets": f"{n} x {n + 2}", "scipy us": round(timings["scipy"], 1),
                     "lap us": round(timings["lap"], 1)})
    return rows


COLUMNS = ("input", "frames", "dets/frame", "rva fps", "trackers fps", "speedup", "rva wall fps",
           "trackers wall fps", "wall speedup", "rva IDSW", "trackers IDSW", "rva IDF1", "trackers IDF1",
           "rva HOTA", "trackers HOTA")


def render(rows: Sequence[dict[str, Any]], title: str) -> Table:
    """A rich table of :func:`run`'s rows."""
    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col == "input" else "right")
    for r in rows:
        table.add_row(*(f"{r[c]}x" if "speedup" in c else str(r[c]) for c in COLUMNS))
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per tracker and input (best kept)")
    parser.add_argument("--level", default="medium", choices=list(NOISE_LEVELS), help="detector noise level")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--low-score-finds-lost", action="store_true",
                        help="RVA: let low-score detections re-find lost tracks (TrackerConfig option)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    run(rows, args.repeats, args.level, args.seed, TrackerConfig(low_score_finds_lost=args.low_score_finds_lost))
    console = Console()
    console.print(render(rows, f"ByteTrack speed, same input ({args.level} noise, seed {args.seed}); "
                               "fps = frames per CPU second of update() calls"))
    solvers = Table(title="Assignment solver, per call (CPU time)")
    for col in ("tracks x dets", "scipy us", "lap us"):
        solvers.add_column(col, justify="right")
    for r in solver_rows():
        solvers.add_row(*(str(v) for v in r.values()))
    console.print(solvers)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
