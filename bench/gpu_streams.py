"""Streams per GPU: NVDEC -> GPU pre-processing -> batched fp16 YOLO (CUDA graphs, GPU NMS) -> CPU tracking + analytics.

Runs on the GPU machine (see bench/gpu_notes.md for how the inputs get there), in one call:

1. self-checks: NVDEC output equals the CPU decode (luma/chroma checksums); GPU pre-processing
   equals the CPU reference; GPU NMS equals ``rva.detect.yolo.nms_numpy`` (and torchvision's when
   present); each fp16 model finds the boxes the float32 CPU run found on the same frames;
2. ceilings: NVDEC-only (decode + ring copy, unpaced), pre-processing-only, inference-only
   (network graph, and network + decode/NMS) per batch size;
3. for each model, a sweep of N paced 1080p30 streams: sustained end-to-end fps, streams held at
   30 fps, p50/p99 frame -> event latency (capture to analytics done) with its breakdown, GPU and
   NVDEC utilisation, CPU use; plus one unpaced run (as fast as it goes).

    python bench/gpu_streams.py --json OUT.json --clip CLIP.mp4 --pose-n POSE.pt --fall-s FALL.pt \
        --reference REF.npz [--streams 8,32,64,72,80,96] [--seconds 8] [--gpus 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from gpu_assets import CLASS_MAPS, SIZE, bench_cameras  # noqa: E402
from gpu_checks import (  # noqa: E402
    check_decode,
    check_graph,
    check_model,
    check_nms,
    check_preprocess,
    check_source,
    decode_ceiling,
    inference_ceiling,
)

from rva.config import TrackerConfig  # noqa: E402
from rva.gpu.analytics_pool import AnalyticsPool, PoolReport  # noqa: E402

RESULTS: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
HELD_FPS = 29.0  # a stream is "held at 30 fps" when at least this many of its frames a second get through


def save(path: Path) -> None:
    path.write_text(json.dumps(RESULTS, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def phase(name: str, path: Path, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one phase; record its result or its error, and keep going."""
    t = time.monotonic()
    print(f"== {name}", flush=True)
    try:
        out = fn(*args, **kwargs)
        RESULTS[name] = out
    except Exception as err:
        out = None
        RESULTS[name] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-3000:]}
        print(RESULTS[name]["trace"], flush=True)
    RESULTS.setdefault("phase_s", {})[name] = round(time.monotonic() - t, 1)
    save(path)
    return out


# --- environment and sampling ---------------------------------------------------------------------


def environment(gpus: int) -> dict[str, Any]:
    import PyNvVideoCodec as nvc
    import torch

    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                          "--format=csv,noheader"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        import torchvision

        tv = torchvision.__version__
    except ImportError:
        tv = None
    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "torchvision": tv, "pynvvideocodec": getattr(nvc, "__version__", "?"), "cpus": os.cpu_count(),
            "gpus_visible": torch.cuda.device_count(), "gpus_used": gpus, "nvidia_smi": smi,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}


class _NoSampler:
    stop = threading.Event()

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        return {}


class Sampler(threading.Thread):
    """GPU and NVDEC utilisation every 100 ms (NVML), and this process's CPU time."""

    def __init__(self, gpus: int) -> None:
        super().__init__(daemon=True)
        import pynvml

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(gpus)]
        self.samples: list[tuple[float, float, list[float], list[float], list[float]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        nv = self.nvml
        while not self.stop.wait(0.1):
            gpu = [float(nv.nvmlDeviceGetUtilizationRates(h).gpu) for h in self.handles]
            dec = [float(nv.nvmlDeviceGetDecoderUtilization(h)[0]) for h in self.handles]
            mem = [nv.nvmlDeviceGetMemoryInfo(h).used / 2**30 for h in self.handles]
            self.samples.append((time.monotonic(), time.process_time(), gpu, dec, mem))

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        rows = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(rows) < 2:
            return {}
        return {
            "gpu_util_pct": [round(float(np.mean([r[2][g] for r in rows])), 1) for g in range(len(self.handles))],
            "nvdec_util_pct": [round(float(np.mean([r[3][g] for r in rows])), 1) for g in range(len(self.handles))],
            "gpu_mem_gib": [round(max(r[4][g] for r in rows), 1) for g in range(len(self.handles))],
            "main_process_cores": round((rows[-1][1] - rows[0][1]) / (rows[-1][0] - rows[0][0]), 2),
        }


def pct(x: np.ndarray, q: float) -> float:
    return round(float(np.percentile(x, q)) * 1e3, 1) if len(x) else float("nan")


def run_point(model: str, engines: list[Any], decoders: list[Any], pool: AnalyticsPool, sampler: Any,
              clip: str, n: int, args: argparse.Namespace, paced: bool) -> dict[str, Any]:
    from rva.gpu.batcher import BatchPolicy
    from rva.gpu.decoding import StreamSpec, nvdec_factory, pyav_factory
    from rva.gpu.worker import WorkerSettings, start_workers

    cams = bench_cameras(n, clip)
    pool.start_run(cams, SIZE, decoders[0].kpt_shape, decoders[0].fallen_table)
    settings = WorkerSettings(
        decode_processes=args.decode_processes, streams_per_process=args.streams_per_process,
        decode_threads=args.decode_threads, policy=BatchPolicy(args.max_batch, args.max_wait_ms / 1e3),
        ring_slots=args.ring_slots, pace_fps=args.pace_fps if paced else None, drop_when_full=paced,
    )
    opener = pyav_factory if args.cpu else nvdec_factory
    batch_sizes: list[int] = []

    def sink(batch: Any) -> None:
        batch_sizes.append(len(batch.tickets))
        pool.submit(batch)

    workers = start_workers([StreamSpec(c.id, clip, size=SIZE) for c in cams], engines, decoders, sink, settings,
                            open_decoder=opener)
    t0 = workers[0].t0  # pacing starts once every input is open
    w0, w1 = t0 + args.warmup, t0 + args.warmup + args.seconds
    time.sleep(max(0.0, w1 - time.monotonic()))
    time.sleep(0.3)  # frames captured just before w1 finish their way
    for w in workers:
        w.stop()
    rep: PoolReport = pool.finish_run()
    win = (rep.captured >= w0) & (rep.captured < w1)
    per_stream = np.bincount(rep.stream[win], minlength=n) / args.seconds
    lat = (rep.done - rep.captured)[win]
    late = (rep.done - rep.captured)[win & (rep.captured >= (w0 + w1) / 2)]
    errors = [e for w in workers for e in [*w.stats.errors, *w.stats.decode.errors]]
    stats = [w.stats for w in workers]
    out = {
        "model": model, "streams": n, "paced_fps": args.pace_fps if paced else None,
        "e2e_fps": round(float(win.sum()) / args.seconds, 1),
        "streams_held_30fps": int((per_stream >= HELD_FPS * args.pace_fps / 30).sum()) if paced else None,
        "min_stream_fps": round(float(per_stream.min()), 1),
        "latency_ms": {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "max": pct(lat, 100)},
        "latency_ms_second_half": {"p50": pct(late, 50), "p99": pct(late, 99), "max": pct(late, 100)},
        "breakdown_p50_ms": {"capture_to_decoded": pct((rep.decoded - rep.captured)[win], 50),
                             "decoded_to_host": pct((rep.ready - rep.decoded)[win], 50),
                             "host_to_event": pct((rep.done - rep.ready)[win], 50)},
        "breakdown_p99_ms": {"capture_to_decoded": pct((rep.decoded - rep.captured)[win], 99),
                             "decoded_to_host": pct((rep.ready - rep.decoded)[win], 99),
                             "host_to_event": pct((rep.done - rep.ready)[win], 99)},
        "decoded": sum(s.decode.decoded for s in stats), "dropped_ring_full": sum(s.decode.dropped for s in stats),
        "batches": sum(s.batches for s in stats),
        "mean_batch": round(float(np.mean(batch_sizes)), 1) if batch_sizes else 0,
        "p99_batch": int(np.percentile(batch_sizes, 99)) if batch_sizes else 0,
        "nms_settled_frames": sum(s.nms_settled for s in stats), "nms_overflow": sum(s.overflow for s in stats),
        "decoders_recreated": sum(s.decode.recreated for s in stats),
        "decode_processes": [getattr(w._decode, "processes", 0) for w in workers],
        "blocking_sync": [getattr(w._decode, "blocking_sync", None) for w in workers],
        "analytics": {"processes": pool.processes,
                      "cpu_cores": round(rep.cpu_s / max(1e-9, rep.wall_s / pool.processes), 2),
                      "step_ms_per_frame": round(rep.step_s / max(1, len(rep.done)) * 1e3, 3),
                      "events": dict(rep.events),
                      "tracked_rows_per_frame": round(rep.tracked / max(1, len(rep.done)), 2)},
        **sampler.window(w0, w1),
        "errors": errors[:5],
    }
    print(f"   {model} N={n} {'paced' if paced else 'unpaced'}: {out['e2e_fps']} fps, "
          f"held {out['streams_held_30fps']}, "
          f"p50 {out['latency_ms']['p50']} p99 {out['latency_ms']['p99']} ms, batch {out['mean_batch']}, "
          f"gpu {out.get('gpu_util_pct')} nvdec {out.get('nvdec_util_pct')} main {out.get('main_process_cores')} "
          f"dropped {out['dropped_ring_full']} {errors[:1]}", flush=True)
    return out


def sweep(model: str, weights: str, pool: AnalyticsPool, sampler: Any, clip: str, ref: Any,
          args: argparse.Namespace) -> dict[str, Any]:
    from rva.gpu.nms import BatchDecoder
    from rva.gpu.torch_detector import TorchYoloEngine

    t = time.monotonic()
    devices = ["cpu"] if args.cpu else [f"cuda:{g}" for g in range(args.gpus)]
    buckets = (1, 2, 4) if args.cpu else (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128)
    engines = [TorchYoloEngine(weights, device=d, input_hw=(384, 640), buckets=buckets) for d in devices]
    class_map, fallen = CLASS_MAPS[model]
    decoders = [BatchDecoder(e.info, class_map, fallen) for e in engines]
    for e in engines:
        e.prepare()
    res: dict[str, Any] = {"graphs_s": round(time.monotonic() - t, 1)}
    if not args.cpu:
        res["graph_vs_eager"] = check_graph(engines[0])
        res["check"] = check_model(model, engines[0], decoders[0], clip, ref)
        print(f"   check {res['check']}", flush=True)
        res["inference_ceiling"] = inference_ceiling(engines[0], decoders[0], clip, (16, 32, 64, 128))
    if args.tune and not args.cpu:
        res["tuning"] = tune(model, engines, decoders, pool, sampler, clip, args)
    res["settings"] = {"decode_processes": args.decode_processes, "streams_per_process": args.streams_per_process,
                       "decode_threads": args.decode_threads, "switch_interval_ms": args.switch_ms,
                       "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms}
    res["points"] = []
    for n in [*args.streams, -args.unpaced_streams]:
        try:
            point = run_point(model, engines, decoders, pool, sampler, clip, abs(n), args, paced=n > 0)
        except Exception as err:
            point = {"streams": abs(n), "error": f"{type(err).__name__}: {err}",
                     "trace": traceback.format_exc()[-2000:]}
            print(point["trace"], flush=True)
        res["points" if n > 0 else "unpaced"] = [*res["points"], point] if n > 0 else point
        RESULTS[f"sweep_{model}"] = res
        save(args.json)
    return res


def tune(model: str, engines: list[Any], decoders: list[Any], pool: AnalyticsPool, sampler: Any, clip: str,
         args: argparse.Namespace) -> dict[str, Any]:
    """Decode processes (each one more CUDA context the GPU time-slices with inference) at one load; keep the best."""
    runs = []
    for processes in (1, 2):
        args.decode_processes = processes
        try:
            p = run_point(model, engines, decoders, pool, sampler, clip, args.tune, args, paced=True)
        except Exception as err:
            p = {"error": f"{type(err).__name__}: {err}"}
        runs.append({"decode_processes": processes, **{k: p.get(k) for k in (
            "e2e_fps", "streams_held_30fps", "latency_ms", "breakdown_p50_ms", "dropped_ring_full",
            "main_process_cores", "gpu_util_pct", "nvdec_util_pct", "error")}})
    ok = [r for r in runs if r.get("error") is None and r.get("e2e_fps") is not None]
    if not ok:
        return {"streams": args.tune, "runs": runs, "chosen": None}
    best = max(ok, key=lambda r: (r["streams_held_30fps"] or 0, r["e2e_fps"], -r["latency_ms"]["p99"]))
    args.decode_processes = best["decode_processes"]
    print(f"   tuning: chose {best['decode_processes']} decode processes", flush=True)
    return {"streams": args.tune, "runs": runs, "chosen": best["decode_processes"]}


def table() -> str:
    lines = ["| model | N streams | e2e fps | held 30 fps | p50 ms | p99 ms | p99 2nd half ms | mean batch | GPU % "
             "| NVDEC % | dropped |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in ("pose-n", "fall-s"):
        res = RESULTS.get(f"sweep_{model}") or {}
        for p in [*res.get("points", []), *([res["unpaced"]] if res.get("unpaced") else [])]:
            if "error" in p:
                lines.append(f"| {model} | {p['streams']} | error: {p['error'][:80]} |")
                continue
            lines.append(f"| {model} | {p['streams']}{'' if p['paced_fps'] else ' unpaced'} | {p['e2e_fps']} | "
                         f"{p['streams_held_30fps']} | {p['latency_ms']['p50']} | {p['latency_ms']['p99']} | "
                         f"{p['latency_ms_second_half']['p99']} | "
                         f"{p['mean_batch']} | {p.get('gpu_util_pct')} | {p.get('nvdec_util_pct')} | "
                         f"{p['dropped_ring_full']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--pose-n", required=True)
    ap.add_argument("--fall-s", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--streams", default="8,32,64,72,80,96")
    ap.add_argument("--unpaced-streams", type=int, default=112)
    ap.add_argument("--decode-processes", type=int, default=2, help="0: decode threads in this process")
    ap.add_argument("--tune", type=int, default=0, help="streams of the decode-process tuning (0: none)")
    ap.add_argument("--streams-per-process", type=int, default=16)
    ap.add_argument("--switch-ms", type=float, default=5.0, help="sys.setswitchinterval, ms")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--gpus", type=int, default=1)
    ap.add_argument("--decode-threads", type=int, default=0, help="0: one per stream")
    ap.add_argument("--max-batch", type=int, default=128)
    ap.add_argument("--max-wait-ms", type=float, default=8.0)
    ap.add_argument("--ring-slots", type=int, default=1024)
    ap.add_argument("--analytics-processes", type=int, default=8)
    ap.add_argument("--models", default="pose-n,fall-s")
    ap.add_argument("--skip-ceilings", action="store_true")
    ap.add_argument("--pace-fps", type=float, default=30.0)
    ap.add_argument("--cpu", action="store_true", help="dry run of the sweep on the CPU (PyAV decode, no checks)")
    args = ap.parse_args()
    args.streams = [int(s) for s in args.streams.split(",")]
    RESULTS["args"] = dict(vars(args))
    sys.setswitchinterval(args.switch_ms / 1e3)
    ref = np.load(args.reference)
    weights = {"pose-n": args.pose_n, "fall-s": args.fall_s}

    # Processes first: spawned before CUDA starts in this one.
    pool = AnalyticsPool(args.analytics_processes, TrackerConfig())
    import torch

    torch.backends.cudnn.benchmark = True
    sampler: Any = _NoSampler()
    if not args.cpu:
        phase("environment", args.json, environment, args.gpus)
        sampler = Sampler(args.gpus)
        sampler.start()
        phase("check_decode", args.json, check_decode, args.clip, ref)
        phase("check_source", args.json, check_source, args.clip)
        phase("check_preprocess", args.json, check_preprocess, args.clip, ref)
        phase("check_nms", args.json, check_nms)
        if not args.skip_ceilings:
            grid = ((96, 0, True),)
            phase("nvdec_ceiling", args.json,
                  lambda: [decode_ceiling(args.clip, s, t, 5.0, c, sampler) for s, t, c in grid])
    for i, model in enumerate(args.models.split(",")):
        if i:
            args.tune = 0  # the decode side is the same for the next model
        phase(f"sweep_{model}", args.json, sweep, model, weights[model], pool, sampler, args.clip, ref, args)
    pool.close()
    sampler.stop.set()
    RESULTS["table"] = table()
    save(args.json)
    print(RESULTS["table"])
    print(json.dumps({k: RESULTS.get(k) for k in ("check_decode", "check_source", "check_preprocess", "check_nms",
                                                  "nvdec_ceiling")},
                     default=str)[:3000])


if __name__ == "__main__":
    main()
