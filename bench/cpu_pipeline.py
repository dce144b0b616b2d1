"""CPU pipeline benchmark: RVA's full pipeline vs what a user would pick instead, on vtest.avi.

Prints, in one run on this machine:
  1. full-pipeline fps (decode -> detect -> track -> zones/lines/queue/heatmap) for RVA's default
     detector setting and for the plain fp32 640x640 model, next to Ultralytics `model.track`
     (ByteTrack) + supervision PolygonZone/LineZone on the same ONNX model and video;
  2. with the same detector outputs, RVA's tracker + zones + lines vs Roboflow's `trackers`
     ByteTrackTracker + supervision PolygonZone + LineZone (ms per frame and ratio).

Usage: python bench/cpu_pipeline.py [--frames N] [--json FILE] [--skip-ultralytics]
The baselines need `pip install ultralytics supervision trackers` (torch CPU); see bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rva.analytics import CameraAnalytics, LineCounter, ZoneMonitor  # noqa: E402
from rva.assets import sample_video  # noqa: E402
from rva.cli import demo_config  # noqa: E402
from rva.config import OnnxDetectorConfig  # noqa: E402
from rva.core import Detections  # noqa: E402
from rva.detect import create_detector  # noqa: E402
from rva.detect.models import resolve_model  # noqa: E402
from rva.pipeline.runner import StandaloneRunner  # noqa: E402
from rva.tracking import ByteTracker  # noqa: E402

console = Console()


def _video() -> Path:
    shared = REPO.parent / "shared" / "data" / "vtest.avi"
    if shared.is_file():
        os.environ.setdefault("RVA_SAMPLE_VIDEO", str(shared))
    return sample_video()


def rva_full(frames: int | None, detector: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """The standalone runner end to end (no annotated video/heatmap files: the baselines write none)."""
    cfg = demo_config()
    cfg = cfg.model_copy(update={
        "detector": OnnxDetectorConfig(**detector),
        "output": cfg.output.model_copy(update={"annotated_video": False, "heatmap_png": False}),
    })
    summary = StandaloneRunner(cfg, tmp, max_frames=frames).run()
    return {"frames": summary["frames"], "fps": summary["fps"], "tracks": summary["tracks"],
            "stage_ms": summary["stage_ms_per_frame"]}


def ultralytics_full(frames: int | None, video: Path) -> dict[str, Any]:
    """Ultralytics model.track (ByteTrack) + supervision zones/lines, the way its docs show."""
    import supervision as sv
    from ultralytics import YOLO

    cam = demo_config().cameras[0]
    fp32 = OnnxDetectorConfig(input_size=640, input_shape=None, quantized=False)
    model = YOLO(str(resolve_model(fp32)), task="detect")
    zones = [sv.PolygonZone(np.asarray(z.polygon, np.int32)) for z in cam.zones]
    lines = [sv.LineZone(sv.Point(*ln.start), sv.Point(*ln.end)) for ln in cam.lines]
    n, tracks = 0, set()
    t0 = time.perf_counter()
    for result in model.track(source=str(video), tracker="bytetrack.yaml", stream=True, imgsz=640,
                              conf=0.25, verbose=False, persist=True):
        det = sv.Detections.from_ultralytics(result)
        if det.tracker_id is not None:
            tracks.update(det.tracker_id.tolist())
        for z in zones:
            z.trigger(det)
        for ln in lines:
            ln.trigger(det)
        n += 1
        if frames is not None and n >= frames:
            break
    wall = time.perf_counter() - t0
    return {"frames": n, "fps": round(n / wall, 2), "tracks": len(tracks)}


def _detections_of(video: Path, frames: int | None) -> list[tuple[float, Detections]]:
    import av

    det = create_detector(OnnxDetectorConfig())
    out = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if frames is not None and i >= frames:
                break
            out.append((float(frame.time or i / 10), det.detect([frame.to_ndarray(format="bgr24")])[0]))
    det.close()
    return out


def _best_of(repeats: int, fn: Any) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def tracking_and_zones(dets: list[tuple[float, Detections]], repeats: int = 5) -> list[dict[str, Any]]:
    """Same detector outputs through RVA's cores and through trackers + supervision (best of ``repeats``)."""
    cam = demo_config().cameras[0]
    n = len(dets)

    def rva_tracker_only() -> None:
        tracker = ByteTracker()
        for ts, d in dets:
            tracker.update(d, ts)

    def rva_zones_lines() -> None:
        tracker = ByteTracker()
        zones = [ZoneMonitor(z, cam.id) for z in cam.zones]
        lines = [LineCounter(ln, cam.id) for ln in cam.lines]
        for ts, d in dets:
            out = tracker.update(d, ts)
            ended = [e.track_id for e in out.ended]
            for z in zones:
                z.update(out.tracked, ts, ended)
            for ln in lines:
                ln.update(out.tracked, ts, ended)

    def rva_all() -> None:
        tracker, analytics = ByteTracker(), CameraAnalytics(cam, (768, 576))
        for ts, d in dets:
            out = tracker.update(d, ts)
            analytics.update(out.tracked, ts, started=out.started, ended=out.ended)

    rows = [
        {"stack": "rva ByteTracker", "what": "tracker", "ms_per_frame": _best_of(repeats, rva_tracker_only)},
        {"stack": "rva ByteTracker + ZoneMonitor + LineCounter", "what": "tracker+zones+lines",
         "ms_per_frame": _best_of(repeats, rva_zones_lines)},
        {"stack": "rva ByteTracker + CameraAnalytics (zones, dwell, lines, queue, heatmap)", "what": "full analytics",
         "ms_per_frame": _best_of(repeats, rva_all)},
    ]
    try:
        import supervision as sv
        from trackers import ByteTrackTracker
    except ImportError as err:
        console.print(f"[yellow]skipping trackers/supervision comparison: {err}")
    else:
        svd = [sv.Detections(xyxy=d.xyxy.astype(np.float32), confidence=d.confidence,
                             class_id=np.zeros(len(d), int)) for _, d in dets]

        def theirs_tracker_only() -> None:
            tracker = ByteTrackTracker(frame_rate=10)
            for d in svd:
                tracker.update(d)

        def theirs_zones_lines() -> None:
            tracker = ByteTrackTracker(frame_rate=10)
            zones = [sv.PolygonZone(np.asarray(z.polygon, np.int32)) for z in cam.zones]
            lines = [sv.LineZone(sv.Point(*ln.start), sv.Point(*ln.end)) for ln in cam.lines]
            for d in svd:
                tracked = tracker.update(d)
                for z in zones:
                    z.trigger(tracked)
                for ln in lines:
                    ln.trigger(tracked)

        rows.append({"stack": "trackers ByteTrackTracker", "what": "tracker",
                     "ms_per_frame": _best_of(repeats, theirs_tracker_only)})
        rows.append({"stack": "trackers ByteTrackTracker + supervision PolygonZone + LineZone",
                     "what": "tracker+zones+lines", "ms_per_frame": _best_of(repeats, theirs_zones_lines)})
    for r in rows:
        r["ms_per_frame"] = round(r["ms_per_frame"] / n * 1000, 4)
    for r in rows:
        other = next((o for o in rows if o["what"] == r["what"] and o is not r and not o["stack"].startswith("rva")),
                     None)
        if r["stack"].startswith("rva") and other is not None:
            r["speedup"] = round(other["ms_per_frame"] / r["ms_per_frame"], 2)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=None, help="limit frames (default: all 795)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--skip-ultralytics", action="store_true")
    ap.add_argument("--skip-fp32", action="store_true", help="skip RVA on the fp32 640x640 model")
    args = ap.parse_args()
    video = _video()
    tmp = REPO / "out" / "bench-cpu"
    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "video": str(video), "pipelines": []}

    default = OnnxDetectorConfig()
    variants = [("rva default detector (int8, 640x480)", default.model_dump(exclude={"type"})),
                ("rva fp32 640x640 (same model as ultralytics)",
                 {**default.model_dump(exclude={"type"}), "input_size": 640, "quantized": False,
                  "input_shape": None})]
    for name, det in variants[: 1 if args.skip_fp32 else 2]:
        console.print(f"running {name} ...")
        results["pipelines"].append({"pipeline": name, **rva_full(args.frames, det, tmp)})
        console.print(results["pipelines"][-1])
    if not args.skip_ultralytics:
        console.print("running ultralytics model.track + supervision ...")
        results["pipelines"].append({"pipeline": "ultralytics model.track + supervision zones",
                                     **ultralytics_full(args.frames, video)})

    t = Table(title=f"Full pipeline on vtest.avi, {os.cpu_count()} CPU cores", title_justify="left")
    for col in ("pipeline", "frames", "fps", "confirmed tracks", "vs ultralytics"):
        t.add_column(col)
    base = next((p["fps"] for p in results["pipelines"] if p["pipeline"].startswith("ultra")), None)
    for p in results["pipelines"]:
        t.add_row(p["pipeline"], str(p["frames"]), f"{p['fps']:.2f}", str(p["tracks"]),
                  f"{p['fps'] / base:.2f}x" if base else "")
    console.print(t)

    console.print("detecting once for the tracker comparison ...")
    results["tracking"] = tracking_and_zones(_detections_of(video, args.frames))
    t = Table(title="Tracking + zones + lines on identical detections", title_justify="left")
    for col in ("stack", "ms/frame", "rva speed-up"):
        t.add_column(col)
    for r in results["tracking"]:
        t.add_row(r["stack"], f"{r['ms_per_frame']:.4f}", f"{r['speedup']:.2f}x" if "speedup" in r else "")
    console.print(t)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
