"""Accuracy of RVA end to end: tracking on TUD ground truth, and count, occupancy, dwell and queue errors.

1. **Tracking** (:func:`tracking_accuracy.evaluate_tracking`): RVA's tracker and Roboflow's ``trackers``
   ByteTrack / OC-SORT / SORT on the same seeded detector-like input made from the real TUD-Campus and
   TUD-Stadtmitte ground truth, scored by TrackEval, each with its tuned settings.
2. **Scenes**: for seeds ``0 .. N-1`` a ground-truth scene is generated (:func:`rva.scenes.generate_scene`,
   2 minutes, 12 people; ``--quick``: 2 scenes of 40 s, 6 people), the standalone runner runs the real
   pipeline on its H.264 video (YOLO ONNX detector with its default settings -> tracker -> analytics, the
   shipped :class:`~rva.config.TrackerConfig`) and :func:`rva.evaluation.scenes.score_scene` scores its
   ``events.jsonl`` against ``truth.json`` (definitions and matching rules in that module).

``--replay`` runs the detector once per scene (``detections.npz`` in the scene folder, reused) and
replays tracker + analytics on the stored detections: the same objects as the runner, for iterating on
tracker or analytics changes in seconds.

Usage::

    python bench/accuracy.py --json out.json [--scenes 5] [--quick] [--work DIR] [--replay] [--no-tracking]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tracking_accuracy  # noqa: E402

from rva.config import OnnxDetectorConfig, TrackerConfig  # noqa: E402
from rva.detect import Detector, create_detector  # noqa: E402
from rva.evaluation.scenes import (  # noqa: E402
    detect_video,
    load_detections,
    replay_scene,
    run_scene,
    save_detections,
    scene_config,
    score_scene,
)
from rva.scenes import generate_scene, read_truth  # noqa: E402

#: Names in the JSON for the trackers of :mod:`tracking_accuracy`.
TRACKER_NAMES = {
    "rva ByteTrack": "rva",
    "rva ByteTrack (defaults)": "rva-defaults",
    "trackers ByteTrack": "trackers-bytetrack",
    "trackers OC-SORT": "trackers-ocsort",
    "trackers SORT": "trackers-sort",
}
SCENE_COLUMNS = (
    "seed", "people", "line_count_error", "occupancy_mae", "dwell_mae_s", "queue_wait_mae_rel",
    "abandon_precision", "abandon_recall",
)
TARGETS = {
    "line_count_error": ("<=", 0.02), "occupancy_mae": ("<=", 0.3), "dwell_mae_s": ("<=", 1.0),
    "queue_wait_mae_rel": ("<=", 0.10), "abandon_precision": (">=", 0.9), "abandon_recall": (">=", 0.9),
}


def tracking_rows(quick: bool) -> list[dict[str, Any]]:
    """The TUD comparison, tracker names as in the JSON; ``rva-defaults`` only if it differs from ``rva``."""
    names = ["rva ByteTrack", "trackers ByteTrack", "trackers OC-SORT", "trackers SORT"]
    if TrackerConfig(**tracking_accuracy.SETTINGS["rva ByteTrack"]) != TrackerConfig():
        names.insert(1, "rva ByteTrack (defaults)")
    rows = tracking_accuracy.evaluate_tracking(repeats=2 if quick else 5, trackers=names)
    return [{**r, "tracker": TRACKER_NAMES[r["tracker"]]} for r in rows]


def scene_rows(
    seeds: Sequence[int], work: Path, quick: bool, replay: bool, console: Console
) -> list[dict[str, Any]]:
    """Generate (or reuse), run and score each scene."""
    duration, people = (40.0, 6) if quick else (120.0, 12)
    rows: list[dict[str, Any]] = []
    detector: Detector | None = None
    try:
        for seed in seeds:
            scene = work / f"scene-{seed}-{duration:g}s-{people}p"
            if not (scene / "truth.json").is_file():
                files = generate_scene(seed, scene, duration_s=duration, people=people)
                if files.problems:
                    raise RuntimeError(f"seed {seed}: inconsistent truth: {files.problems[:3]}")
            truth = read_truth(scene / "truth.json")
            detector = detector or create_detector(OnnxDetectorConfig())
            started = time.perf_counter()
            if replay:
                cache = scene / "detections.npz"
                if not cache.is_file():
                    save_detections(cache, detect_video(scene / "scene.mp4", detector))
                events = replay_scene(scene_config(scene), load_detections(cache), float(truth["fps"]))
            else:
                events = run_scene(scene, scene / "run", detector)
            row = score_scene(truth, events).row()
            console.print(f"seed {seed}: {time.perf_counter() - started:.0f} s  {row}")
            rows.append(row)
    finally:
        if detector is not None:
            detector.close()
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def scenes_table(rows: Sequence[dict[str, Any]]) -> Table:
    """Per-scene errors, a pooled row (ratios over all scenes, means of the MAEs), misses of a target in red."""
    table = Table(title="Pipeline errors on generated ground-truth scenes (real detector on H.264 video)")
    for col in SCENE_COLUMNS:
        table.add_column(col, justify="right")
    for r in [*rows, pooled(rows)] if rows else []:
        cells = []
        for col in SCENE_COLUMNS:
            cell = _fmt(r[col])
            if col in TARGETS and r[col] is not None:
                op, bound = TARGETS[col]
                if (r[col] > bound) if op == "<=" else (r[col] < bound):
                    cell = f"[red]{cell}[/red]"
            cells.append(cell)
        table.add_row(*cells)
    return table


def pooled(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """All scenes at once: line error and abandonment over all counts, MAEs as the mean over scenes."""

    def mean(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return sum(values) / len(values) if values else None

    true_x = sum(r["crossings_true"] for r in rows)
    line_abs = sum((r["line_count_error"] or 0.0) * r["crossings_true"] for r in rows)
    matched = sum(r["abandons_matched"] for r in rows)
    found, true_a = sum(r["abandons_found"] for r in rows), sum(r["abandons_true"] for r in rows)
    return {
        "seed": "all",
        "people": sum(r["people"] for r in rows),
        "line_count_error": line_abs / true_x if true_x else None,
        "occupancy_mae": mean("occupancy_mae"),
        "dwell_mae_s": mean("dwell_mae_s"),
        "queue_wait_mae_rel": mean("queue_wait_mae_rel"),
        "abandon_precision": matched / found if found else 1.0,
        "abandon_recall": matched / true_a if true_a else 1.0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write {tracking, scenes} here")
    parser.add_argument("--scenes", type=int, default=5, help="scenes, seeds 0..N-1 (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 short scenes, 2 noise seeds per tracking cell")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "accuracy", help="scenes and runs go here")
    parser.add_argument("--replay", action="store_true", help="cache detections, replay tracker + analytics")
    parser.add_argument("--no-tracking", action="store_true", help="skip the TUD tracking comparison")
    args = parser.parse_args(argv)
    shared = REPO.parent / "shared" / "data" / "vtest.avi"
    if shared.is_file():
        os.environ.setdefault("RVA_SAMPLE_VIDEO", str(shared))
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    console = Console(width=max(Console().width, 120))
    tracking = [] if args.no_tracking else tracking_rows(args.quick)
    if tracking:
        console.print(tracking_accuracy.render(tracking))
    seeds = range(2 if args.quick else args.scenes)
    scenes = scene_rows(list(seeds), args.work, args.quick, args.replay, console)
    console.print(scenes_table(scenes))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"tracking": tracking, "scenes": scenes}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
