"""Tracking accuracy, side by side: RVA's ByteTrack against Roboflow ``trackers`` on TUD ground truth.

Every tracker gets the same detector-like input (:func:`rva.evaluation.perturb` of the real TUD-Campus
and TUD-Stadtmitte ground truth, at each noise level and seed) and is scored by TrackEval (HOTA, MOTA,
IDF1, ID switches). ``fps`` counts the update calls alone, on a shared 2-core box: noisy.

Fair settings: every tracker runs at the sequences' 25 fps (Roboflow's ``frame_rate=25``) and was
tuned the same way, by a small grid (:data:`GRIDS`) on TUD-Campus only, with seeds the evaluation
never uses (:data:`TUNE_SEEDS`), picking the best mean HOTA over the three noise levels. The winners
are frozen in :data:`SETTINGS`; ``--tune`` reruns the search and prints them. ``rva ByteTrack
(defaults)`` is RVA's tracker with the shipped :class:`~rva.config.TrackerConfig`, untuned.

Usage::

    python bench/tracking_accuracy.py [--levels low medium high] [--seed 0] [--repeats 5] [--json out.json]
    python bench/tracking_accuracy.py --tune
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import supervision as sv
from rich.console import Console
from rich.table import Table
from trackers import ByteTrackTracker, OCSORTTracker, SORTTracker

from rva.config import TrackerConfig
from rva.core.detections import Detections
from rva.evaluation import (
    NOISE_LEVELS,
    TUD_SEQUENCES,
    MotSequence,
    RvaByteTrackAdapter,
    TrackerAdapter,
    perturb,
    run_tracker,
    score_tracking,
    tud_sequence,
)

FPS = 25.0
TUNE_SEQUENCE = "TUD-Campus"
TUNE_SEEDS = (1000, 1001)


class RoboflowAdapter(TrackerAdapter):
    """A Roboflow ``trackers`` tracker fed ``sv.Detections``; rows with ``tracker_id == -1`` dropped.

    ``min_score`` pre-filters detections for trackers with no score threshold of their own (SORT
    associates every box it is given, as the original SORT did after the detector's own cut).
    """

    def __init__(self, name: str, cls: type[Any], min_score: float = 0.0, **kwargs: Any) -> None:
        self.name = name
        self._tracker = cls(frame_rate=FPS, **kwargs)
        self._min_score = min_score

    def prepare(self, detections: Detections) -> sv.Detections:
        d = detections[detections.confidence >= self._min_score]
        return sv.Detections(xyxy=d.xyxy.astype(np.float64), confidence=d.confidence, class_id=d.class_id)

    def update(self, prepared: sv.Detections, ts: float) -> sv.Detections:
        return self._tracker.update(prepared)

    def tracked(self, output: sv.Detections) -> Detections:
        keep = output.tracker_id != -1
        return Detections.from_arrays(output.xyxy[keep], output.confidence[keep]).with_tracker_id(
            output.tracker_id[keep]
        )


def rva_bytetrack(**kw: Any) -> TrackerAdapter:
    return RvaByteTrackAdapter(TrackerConfig(**kw))


def rf_bytetrack(**kw: Any) -> TrackerAdapter:
    return RoboflowAdapter("trackers ByteTrack", ByteTrackTracker, **kw)


def rf_ocsort(**kw: Any) -> TrackerAdapter:
    return RoboflowAdapter("trackers OC-SORT", OCSORTTracker, **kw)


def rf_sort(**kw: Any) -> TrackerAdapter:
    return RoboflowAdapter("trackers SORT", SORTTracker, **kw)


Factory = Callable[..., TrackerAdapter]
FACTORIES: dict[str, Factory] = {
    "rva ByteTrack": rva_bytetrack,
    "rva ByteTrack (defaults)": rva_bytetrack,
    "trackers ByteTrack": rf_bytetrack,
    "trackers OC-SORT": rf_ocsort,
    "trackers SORT": rf_sort,
}

#: Grid per tracker; Roboflow's ``lost_track_buffer`` counts 30-fps frames (30 = 1 s), RVA's is seconds.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "rva ByteTrack": {
        "high_threshold": [0.3, 0.4, 0.5],
        "new_track_threshold": [0.4, 0.5, 0.6],
        "match_iou": [0.1, 0.2, 0.3],
        "low_match_iou": [0.3, 0.5],
        "fuse_score": [True, False],
        "low_score_finds_lost": [False, True],
        "lost_buffer_s": [0.5, 1.0, 2.0],
        "min_hits": [1, 2],
    },
    "trackers ByteTrack": {
        "high_conf_det_threshold": [0.3, 0.4, 0.5],
        "track_activation_threshold": [0.4, 0.5, 0.6],
        "minimum_iou_threshold": [0.1, 0.2, 0.3],
        "lost_track_buffer": [8, 15, 30],
        "minimum_consecutive_frames": [1, 2],
    },
    "trackers OC-SORT": {
        "high_conf_det_threshold": [0.1, 0.2, 0.3, 0.4],
        "minimum_iou_threshold": [0.2, 0.3, 0.4],
        "direction_consistency_weight": [0.2, 0.5],
        "lost_track_buffer": [15, 30, 60],
        "minimum_consecutive_frames": [1, 2],
    },
    "trackers SORT": {
        "min_score": [0.3, 0.4, 0.5],
        "track_activation_threshold": [0.3, 0.4, 0.5],
        "minimum_iou_threshold": [0.05, 0.1, 0.2],
        "lost_track_buffer": [15, 30, 60],
        "minimum_consecutive_frames": [1, 2, 3],
    },
}

#: Frozen winners of ``--tune`` (rerun it after changing a tracker or the noise model).
SETTINGS: dict[str, dict[str, Any]] = {
    "rva ByteTrack": {"high_threshold": 0.4, "new_track_threshold": 0.5, "match_iou": 0.2,
                      "low_match_iou": 0.5, "fuse_score": False, "low_score_finds_lost": True,
                      "lost_buffer_s": 1.0, "min_hits": 1},
    "rva ByteTrack (defaults)": {},
    "trackers ByteTrack": {"high_conf_det_threshold": 0.4, "track_activation_threshold": 0.4,
                           "minimum_iou_threshold": 0.2, "lost_track_buffer": 15,
                           "minimum_consecutive_frames": 1},
    "trackers OC-SORT": {"high_conf_det_threshold": 0.2, "minimum_iou_threshold": 0.3,
                         "direction_consistency_weight": 0.2, "lost_track_buffer": 30,
                         "minimum_consecutive_frames": 1},
    "trackers SORT": {"min_score": 0.4, "track_activation_threshold": 0.3, "minimum_iou_threshold": 0.1,
                      "lost_track_buffer": 30, "minimum_consecutive_frames": 2},
}


def _inputs(names: Iterable[str], levels: Iterable[str], seeds: Iterable[int]) -> list[
    tuple[MotSequence, str, int, list[Detections]]
]:
    out = []
    for name in names:
        gt = tud_sequence(name)
        for level in levels:
            for seed in seeds:
                out.append((gt, level, seed, perturb(gt, NOISE_LEVELS[level], seed)))
    return out


def tune(names: Sequence[str] = tuple(GRIDS), console: Console | None = None) -> dict[str, dict[str, Any]]:
    """Grid-search each tracker on TUD-Campus (tuning seeds, all levels); return the best settings."""
    console = console or Console()
    inputs = _inputs([TUNE_SEQUENCE], NOISE_LEVELS, TUNE_SEEDS)
    best: dict[str, dict[str, Any]] = {}
    for name in names:
        grid = GRIDS[name]
        scored = []
        for values in itertools.product(*grid.values()):
            kw = dict(zip(grid, values, strict=True))
            hota = [score_tracking(gt, run_tracker(FACTORIES[name](**kw), frames, FPS).tracks).hota
                    for gt, _, _, frames in inputs]
            scored.append((float(np.mean(hota)), kw))
        scored.sort(key=lambda s: -s[0])
        best[name] = scored[0][1]
        console.print(f"{name}: {len(scored)} settings; best HOTA {scored[0][0]:.3f} with {scored[0][1]}"
                      f" (worst {scored[-1][0]:.3f})")
    return best


def evaluate_tracking(
    levels: Sequence[str] = tuple(NOISE_LEVELS),
    seed: int = 0,
    repeats: int = 5,
    sequences: Sequence[str] = TUD_SEQUENCES,
    trackers: Sequence[str] = tuple(FACTORIES),
) -> list[dict[str, Any]]:
    """Run every tracker on every sequence and noise level; average over ``repeats`` seeds from ``seed``.

    Returns:
        One row per (dataset, noise, tracker): ``dataset, noise, tracker, HOTA, MOTA, IDF1, IDSW, fps``
        (IDSW is the mean over seeds; fps covers the update calls only).
    """
    rows = []
    seeds = range(seed, seed + repeats)
    for gt_name in sequences:
        for level in levels:
            inputs = _inputs([gt_name], [level], seeds)
            for name in trackers:
                scores, frames_n, spent = [], 0, 0.0
                for gt, _, _, frames in inputs:
                    run = run_tracker(FACTORIES[name](**SETTINGS[name]), frames, FPS)
                    scores.append(score_tracking(gt, run.tracks))
                    frames_n += len(frames)
                    spent += run.update_s
                rows.append({
                    "dataset": gt_name,
                    "noise": level,
                    "tracker": name,
                    "HOTA": float(np.mean([s.hota for s in scores])),
                    "MOTA": float(np.mean([s.mota for s in scores])),
                    "IDF1": float(np.mean([s.idf1 for s in scores])),
                    "IDSW": float(np.mean([s.idsw for s in scores])),
                    "fps": frames_n / spent if spent > 0 else float("inf"),
                })
    return rows


def render(rows: Sequence[dict[str, Any]]) -> Table:
    """A rich table, best HOTA/IDF1/MOTA and fewest IDSW of each (dataset, noise) group in bold."""
    table = Table(title="Tracking accuracy on TUD ground truth + seeded detector noise (TrackEval)")
    for col in ("dataset", "noise", "tracker", "HOTA", "MOTA", "IDF1", "IDSW", "fps"):
        table.add_column(col, justify="left" if col in ("dataset", "noise", "tracker") else "right")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["noise"]), []).append(r)
    for group in groups.values():
        best = {k: max(r[k] for r in group) for k in ("HOTA", "MOTA", "IDF1")}
        best["IDSW"] = min(r["IDSW"] for r in group)
        for r in group:
            cells = [f"{r[k]:.3f}" if k != "IDSW" else f"{r[k]:.1f}" for k in ("HOTA", "MOTA", "IDF1", "IDSW")]
            cells = [f"[bold]{c}[/bold]" if r[k] == best[k] else c
                     for c, k in zip(cells, ("HOTA", "MOTA", "IDF1", "IDSW"), strict=True)]
            table.add_row(r["dataset"], r["noise"], r["tracker"], *cells, f"{r['fps']:.0f}")
        table.add_section()
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", nargs="+", default=list(NOISE_LEVELS), choices=list(NOISE_LEVELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="seeds per cell, from --seed")
    parser.add_argument("--trackers", nargs="+", default=list(FACTORIES), choices=list(FACTORIES))
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--tune", action="store_true", help="rerun the grid search and print the winners")
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 100))
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.tune:
        console.print(json.dumps(tune([t for t in args.trackers if t in GRIDS], console), indent=2))
        return 0
    rows = evaluate_tracking(args.levels, args.seed, args.repeats, trackers=args.trackers)
    console.print(render(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
