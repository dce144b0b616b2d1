"""Detector speed/recall options side by side, on frames spread over vtest.avi.

Every option runs the full ``OnnxDetector.detect`` (letterbox, onnxruntime, decode, NMS) on the same
frames. Recall is measured against the fp32 640x640 reference at IoU 0.5 (Hungarian matching);
"precision" is the share of an option's boxes that match a reference box. Passes are interleaved
over options so background load hits them alike; ms/frame is the median over passes.

    .venv/bin/python bench/detector_options.py [--passes 3] [--frames 40]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.optimize import linear_sum_assignment

from rva.assets import sample_video
from rva.config import OnnxDetectorConfig
from rva.core.detections import Detections
from rva.detect.models import Quantization, Variant, derive, source_model
from rva.detect.onnx_detector import OnnxDetector, session_options
from rva.detect.yolo import letterbox, nms, nms_numpy, to_nchw

BASELINE_FPS = 6.7  # Ultralytics model.track + supervision on the same ONNX, end to end (brief); target 1.5x


@dataclass(frozen=True)
class Option:
    name: str
    wh: tuple[int, int] = (640, 640)
    quantization: Quantization | None = None
    threads: int = 2
    spinning: bool = True
    parallel: bool = False


OPTIONS = [
    Option("fp32 640x640 (reference)"),
    Option("fp32 512x512", (512, 512)),
    Option("fp32 640x480 rect", (640, 480)),
    Option("fp32 512x384 rect", (512, 384)),
    Option("int8 dynamic 640x640", quantization="dynamic"),
    Option("int8 static 640x640", quantization="static"),
    Option("int8 static 512x512", (512, 512), "static"),
    Option("int8 static 640x480 rect", (640, 480), "static"),
    Option("int8 static 512x384 rect", (512, 384), "static"),
    Option("int8 static 640x480, 1 thread", (640, 480), "static", threads=1),
    Option("int8 static 640x480, no spinning", (640, 480), "static", spinning=False),
    Option("int8 static 640x480, ORT_PARALLEL", (640, 480), "static", parallel=True),
]


def read_frames(count: int) -> tuple[list[np.ndarray], float]:
    """``count`` frames at multiples of 20 (disjoint from the calibration frames), and decode ms/frame."""
    wanted = set(range(0, 20 * count, 20))
    frames, n = [], 0
    path = str(sample_video())
    start = time.perf_counter()
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            n += 1
            image = frame.to_ndarray(format="bgr24")
            if i in wanted:
                frames.append(image)
    return frames, (time.perf_counter() - start) * 1000 / n


def match(ref: Detections, det: Detections, iou_min: float = 0.5) -> int:
    """Boxes of ``det`` matched one-to-one to ``ref`` boxes at IoU >= ``iou_min``."""
    if not len(ref) or not len(det):
        return 0
    a, b = ref.xyxy[:, None], det.xyxy[None]
    inter = np.prod(np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None), -1)
    iou = inter / (ref.area[:, None] + det.area[None] - inter)
    rows, cols = linear_sum_assignment(-iou)
    return int((iou[rows, cols] >= iou_min).sum())


def build(opt: Option) -> OnnxDetector:
    cfg = OnnxDetectorConfig(input_shape=opt.wh, threads=opt.threads)
    path = derive(source_model(cfg), Variant((opt.wh[1], opt.wh[0]) if opt.wh != (640, 640) else None,
                                             opt.quantization))
    return OnnxDetector(cfg, model_path=path,
                        options=session_options(opt.threads, spinning=opt.spinning, parallel=opt.parallel))


def time_nms(detector: OnnxDetector, frames: Sequence[np.ndarray]) -> tuple[float, float, int]:
    """Mean µs per frame of cv2-backed :func:`nms` vs :func:`nms_numpy` on the model's real candidates."""
    cands = []
    for image in frames:
        out = detector._run(to_nchw([letterbox(image, detector.input_hw)[0]]))[0]
        conf = out[4:].max(0)
        idx = np.flatnonzero(conf >= 0.25)
        cx, cy, w, h = out[:4, idx]
        cands.append((np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1), conf[idx],
                      out[4:, idx].argmax(0).astype(np.int64) * 0))
    spent = []
    kept = []
    for impl in (nms, nms_numpy):
        start = time.perf_counter()
        for _ in range(20):
            kept.append([impl(b, s, 0.5, g) for b, s, g in cands])
        spent.append((time.perf_counter() - start) * 1e6 / (20 * len(cands)))
    agree = sum(a.tolist() == b.tolist() for a, b in zip(kept[0], kept[-1], strict=True))
    return spent[0], spent[1], agree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    console = Console(width=170)
    frames, decode_ms = read_frames(args.frames)
    console.print(f"{len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]}; "
                  f"PyAV decode {decode_ms:.1f} ms/frame")
    detectors = {}
    for opt in OPTIONS:
        start = time.perf_counter()
        detectors[opt] = build(opt)
        console.print(f"  ready {opt.name} ({time.perf_counter() - start:.1f} s incl. first-use derive)")
    times: dict[Option, list[float]] = {opt: [] for opt in OPTIONS}
    results: dict[Option, list[Detections]] = {}
    for p in range(args.passes):
        for opt in OPTIONS if p % 2 == 0 else reversed(OPTIONS):
            det = detectors[opt]
            det.detect(frames[:1])  # warm-up
            out = []
            for frame in frames:
                start = time.perf_counter()
                out.append(det.detect([frame])[0])
                times[opt].append((time.perf_counter() - start) * 1000)
            results[opt] = out
    reference = results[OPTIONS[0]]
    confident = [d[d.confidence >= 0.4] for d in reference]
    n_ref, n_conf = sum(len(d) for d in reference), sum(len(d) for d in confident)
    table = Table(title=f"Detector options: {len(frames)} vtest frames x {args.passes} passes, 2-core box")
    for col in ("option", "ms/frame median", "p10", "persons/frame", "recall", "recall conf>=0.4",
                "precision", "fps decode+detect", f"vs {BASELINE_FPS} fps"):
        table.add_column(col, justify="left" if col == "option" else "right")
    for opt in OPTIONS:
        dets = results[opt]
        matched = sum(match(r, d) for r, d in zip(reference, dets, strict=True))
        matched_conf = sum(match(r, d) for r, d in zip(confident, dets, strict=True))
        n_det = sum(len(d) for d in dets)
        ms = statistics.median(times[opt])
        fps = 1000 / (ms + decode_ms)
        table.add_row(opt.name, f"{ms:.1f}", f"{np.percentile(times[opt], 10):.1f}",
                      f"{n_det / len(frames):.2f}", f"{matched / n_ref:.3f}", f"{matched_conf / n_conf:.3f}",
                      f"{matched / max(n_det, 1):.3f}", f"{fps:.1f}", f"{fps / BASELINE_FPS:.2f}x")
    console.print(table)
    ours, theirs, agree = time_nms(detectors[OPTIONS[0]], frames)
    console.print(f"NMS per frame: cv2.dnn.NMSBoxesBatched {ours:.0f} µs, NumPy {theirs:.0f} µs; "
                  f"same boxes kept on {agree}/{len(frames)} frames")


if __name__ == "__main__":
    main()
