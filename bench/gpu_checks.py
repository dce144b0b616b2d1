"""Self-checks and ceilings of bench/gpu_streams.py (GPU machine only: they need CUDA and NVDEC).

The checks compare the GPU path with the CPU references made by bench/gpu_assets.py: NVDEC frames
with PyAV's decode (checksums), GPU pre-processing with the same function on the CPU, GPU NMS with
``rva.detect.yolo.nms_numpy`` and torchvision, each fp16 model with its float32 CPU boxes, graph
replays with eager runs. The ceilings time NVDEC alone and inference alone.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
import types
from typing import Any

import numpy as np
from gpu_assets import REFERENCE_FRAMES, SIZE

# --- self-checks ----------------------------------------------------------------------------------


def decode_frames(clip: str, indices: tuple[int, ...], gpu: int = 0) -> tuple[dict[int, Any], dict[str, Any]]:
    import torch

    from rva.gpu.nvdec_source import NvdecDecoder

    stream = torch.cuda.Stream(gpu)
    dec = NvdecDecoder(clip, gpu, stream)
    out: dict[int, Any] = {}
    n, t = 0, time.monotonic()
    with torch.cuda.stream(stream):
        while (frames := dec.decode()) is not None:
            for f in frames:
                if n in indices:
                    out[n] = f.clone()
                n += 1
            stream.synchronize()
    info = {"frames": n, "single_stream_fps": round(n / (time.monotonic() - t), 1), "access": dec.access,
            "low_latency": dec.low_latency, "size": [dec.width, dec.height], "fps": dec.fps}
    dec.close()
    return out, info


def check_decode(clip: str, ref: Any) -> dict[str, Any]:
    frames, info = decode_frames(clip, REFERENCE_FRAMES)
    h = SIZE[1]
    for i in REFERENCE_FRAMES:
        y, uv = int(frames[i][:h].long().sum()), int(frames[i][h:].long().sum())
        info[f"frame{i}"] = {"y_sum_ok": y == int(ref[f"y_sum_{i}"]), "uv_sum_ok": uv == int(ref[f"uv_sum_{i}"])}
    info["ok"] = all(v["y_sum_ok"] and v["uv_sum_ok"] for v in info.values() if isinstance(v, dict))
    info["loop"] = check_loop(clip)
    return info


def check_loop(clip: str) -> dict[str, Any]:
    """Three rounds of a looping decoder: each must give every frame (the sweep's streams loop the clip)."""
    import torch

    from rva.gpu.nvdec_source import NvdecDecoder

    stream = torch.cuda.Stream(0)
    dec = NvdecDecoder(clip, 0, stream, flush_at_end=False)
    rounds = []
    with torch.cuda.stream(stream):
        for _ in range(3):
            n = 0
            while (frames := dec.decode()) is not None:
                n += len(frames)
            rounds.append(n)
            dec.rewind()
    out = {"frames_per_round": rounds, "decoder_recreated": dec.recreated}
    dec.close()
    return out


def check_source(clip: str) -> dict[str, Any]:
    """NvdecSource end to end: every frame of the clip as a GpuFrame, then ENDED."""
    if importlib.util.find_spec("av") is None:
        # rva.sources' package __init__ imports PyAV (absent on the GPU machine); NvdecSource never calls it.
        stub = types.ModuleType("av")
        stub.container = types.ModuleType("av.container")  # type: ignore[attr-defined]
        sys.modules.update({"av": stub, "av.container": stub.container})  # type: ignore[attr-defined]
    from rva.gpu.gpu_source import GpuFrame, NvdecSource

    t = time.monotonic()
    with NvdecSource("check", clip) as src:
        items = list(src.items(timeout=20))
    frames = [i for i in items if isinstance(i, GpuFrame)]
    states = [str(i.state) for i in items if not isinstance(i, GpuFrame)]
    bgr = frames[0].to_frame().image if frames else None
    return {"frames": len(frames), "states": states, "fps": round(len(frames) / (time.monotonic() - t), 1),
            "size": frames[0].size if frames else None, "bgr_shape": None if bgr is None else list(bgr.shape),
            "indices_ok": [f.index for f in frames] == list(range(len(frames))),
            "ok": len(frames) == 300 and states[-1:] == ["ended"]}


def check_preprocess(clip: str, ref: Any) -> dict[str, Any]:
    import torch

    from rva.gpu.preprocess import nv12_to_input

    frames, _ = decode_frames(clip, REFERENCE_FRAMES)
    batch = torch.stack([frames[i] for i in REFERENCE_FRAMES])
    gpu = torch.zeros(len(REFERENCE_FRAMES), 3, 384, 640, device="cuda", dtype=torch.float16)
    nv12_to_input(batch, gpu, frame_size=SIZE)
    cpu = torch.zeros(len(REFERENCE_FRAMES), 3, 384, 640)
    nv12_to_input(batch.cpu(), cpu, frame_size=SIZE)
    diff = (gpu.float().cpu() - cpu).abs() * 255
    return {"max_levels": round(float(diff.max()), 3), "mean_levels": round(float(diff.mean()), 4),
            "input_mean_gpu": round(float(gpu.float().mean()), 5), "input_mean_ref": float(ref["input_mean"]),
            "ok": float(diff.max()) < 1.0}


def check_nms() -> dict[str, Any]:
    import torch

    from rva.detect.yolo import nms_numpy
    from rva.gpu.nms import exact_keep, greedy_keep, suppression_matrix

    rng = np.random.default_rng(0)
    b, k = 64, 512
    xy = rng.uniform(0, 600, (b, k, 2))
    wh = rng.uniform(10, 120, (b, k, 2))
    boxes = np.concatenate([xy, xy + wh], 2).astype(np.float32)
    scores = rng.uniform(0.25, 1, (b, k)).astype(np.float32)
    order = np.argsort(-scores, 1, kind="stable")
    boxes = np.take_along_axis(boxes, order[..., None], 1)
    scores = np.take_along_axis(scores, order, 1)
    groups = rng.integers(0, 2, (b, k))
    tb, tg = torch.from_numpy(boxes).cuda(), torch.from_numpy(groups).cuda()
    valid = torch.ones(b, k, dtype=torch.bool, device="cuda")
    sup = suppression_matrix(tb, tg, valid, 0.5)
    _, conv8 = greedy_keep(sup, valid, 8)
    keep = exact_keep(sup, valid).cpu().numpy()
    mismatch = sum(set(np.flatnonzero(keep[i])) != set(nms_numpy(boxes[i], scores[i], 0.5, groups[i]).tolist())
                   for i in range(b))
    out: dict[str, Any] = {"frames": b, "candidates": k, "mismatch_vs_nms_numpy": mismatch,
                           "converged_in_8_passes": int(conv8.sum())}
    try:
        from torchvision.ops import batched_nms

        tv_mismatch = 0
        for i in range(b):
            kept = batched_nms(tb[i], torch.from_numpy(scores[i]).cuda(), tg[i], 0.5).cpu().numpy()
            tv_mismatch += set(kept.tolist()) != set(np.flatnonzero(keep[i]).tolist())
        out["mismatch_vs_torchvision"] = tv_mismatch
    except ImportError:
        out["mismatch_vs_torchvision"] = "torchvision absent"
    out["ok"] = mismatch == 0
    return out


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(2)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def check_model(name: str, engine: Any, decoder: Any, clip: str, ref: Any) -> dict[str, Any]:
    import torch

    from rva.gpu.nms import letterbox_rows
    from rva.gpu.preprocess import nv12_to_input

    frames, _ = decode_frames(clip, REFERENCE_FRAMES)
    batch = torch.stack([frames[i] for i in REFERENCE_FRAMES])
    n = len(REFERENCE_FRAMES)
    with torch.inference_mode(), engine.stream_context():
        lb = nv12_to_input(batch, engine.input_buffer(n), frame_size=SIZE)
        decoded = decoder(engine.run(n), letterbox_rows([lb] * n).cuda())
        decoded.settle()
        dets = decoder.unpack(decoded.packed.cpu().numpy(), decoded.counts.cpu().numpy())
    out: dict[str, Any] = {}
    ok = True
    for i, d in zip(REFERENCE_FRAMES, dets, strict=True):
        rx, rc = ref[f"{name}_xyxy_{i}"], ref[f"{name}_conf_{i}"]
        confident = rc >= 0.3  # boxes near the threshold may flip either way between fp16 and fp32
        m = iou(rx, d.xyxy) if len(d) and len(rx) else np.zeros((len(rx), len(d)))
        found = (m.max(1) >= 0.9) if len(d) else np.zeros(len(rx), bool)
        out[f"frame{i}"] = {"gpu": len(d), "cpu_ref": len(rx), "matched_confident": int(found[confident].sum()),
                            "confident": int(confident.sum())}
        ok &= bool(found[confident].all()) and abs(len(d) - len(rx)) <= 2
    out["ok"] = ok
    return out


def check_graph(engine: Any) -> dict[str, Any]:
    """A replayed CUDA graph computes what the eager network computes, on fresh random input, per bucket size."""
    import torch

    out: dict[str, Any] = {}
    with torch.inference_mode(), engine.stream_context():
        for b in (1, 8, 37, 128):
            x = engine.input_buffer(b)
            x.copy_(torch.rand(x.shape, device=x.device, dtype=x.dtype))
            eager = engine.model(x).float()
            graph = engine.run(b).float()
            out[str(b)] = round(float((graph - eager).norm() / eager.norm()), 6)
    out["ok"] = all(v < 1e-2 for v in out.values())  # fp16: cuDNN may pick other kernels per batch size
    return out


# --- ceilings -------------------------------------------------------------------------------------


def decode_ceiling(clip: str, streams: int, threads: int, seconds: float, copy: bool = True,
                   sampler: Any = None) -> dict[str, Any]:
    """NVDEC-only: ``streams`` decoders on ``threads`` threads (0: one each), unpaced; each frame copied to a slot."""
    import torch

    from rva.gpu.nvdec_source import NvdecDecoder

    threads = threads or streams
    counts = [0] * threads
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def loop(t: int) -> None:
        cs = torch.cuda.Stream(0)
        decs = [NvdecDecoder(clip, 0, cs) for _ in range(t, streams, threads)]
        slot = torch.empty((SIZE[1] * 3 // 2, SIZE[0]), dtype=torch.uint8, device="cuda")
        barrier.wait()
        with torch.cuda.stream(cs):
            while not stop.is_set():
                for d in decs:
                    frames = d.decode()
                    if frames is None:
                        d.rewind()
                        continue
                    for f in frames:
                        if copy:
                            slot.copy_(f, non_blocking=True)
                            cs.synchronize()
                        counts[t] += 1
        for d in decs:
            d.close()

    workers = [threading.Thread(target=loop, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    time.sleep(1.0)  # warm-up
    c0, t0 = sum(counts), time.monotonic()
    time.sleep(seconds)
    t1 = time.monotonic()
    fps = (sum(counts) - c0) / (t1 - t0)
    stop.set()
    for w in workers:
        w.join(10)
    out = {"streams": streams, "threads": threads, "copy": copy, "fps": round(fps, 1),
           "streams_at_30fps": round(fps / 30, 1), **(sampler.window(t0, t1) if sampler is not None else {})}
    print(f"   nvdec {out}", flush=True)
    return out


def timed(fn: Any, iters: int) -> float:
    """Seconds per call, with CUDA events, after a warm-up."""
    import torch

    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000 / iters


def inference_ceiling(engine: Any, decoder: Any, clip: str, batches: tuple[int, ...]) -> dict[str, Any]:
    import torch

    from rva.gpu.nms import letterbox_rows
    from rva.gpu.preprocess import nv12_to_input

    frames, _ = decode_frames(clip, REFERENCE_FRAMES)
    real = torch.stack([frames[i] for i in REFERENCE_FRAMES])
    out: dict[str, Any] = {}
    with torch.inference_mode(), engine.stream_context():
        for b in batches:
            nv12 = real[torch.arange(b) % len(REFERENCE_FRAMES)]
            lb = nv12_to_input(nv12, engine.input_buffer(b), frame_size=SIZE)
            boxes = letterbox_rows([lb] * b).cuda()
            net = timed(lambda b=b: engine.run(b), 30)
            full = timed(lambda b=b, boxes=boxes: decoder(engine.run(b), boxes), 30)
            pre = timed(lambda b=b, nv12=nv12: nv12_to_input(nv12, engine.input_buffer(b), frame_size=SIZE), 30)
            out[str(b)] = {"network_ms": round(net * 1e3, 3), "network_fps": round(b / net),
                           "network_nms_ms": round(full * 1e3, 3), "network_nms_fps": round(b / full),
                           "preprocess_ms": round(pre * 1e3, 3), "preprocess_fps": round(b / pre)}
        # The worker's whole per-batch graph: ring slots -> input -> network -> NMS -> packed rows.
        from rva.gpu.batch_graph import BatchGraphs

        ring = real[torch.arange(128) % len(REFERENCE_FRAMES)].contiguous()
        graphs = BatchGraphs(engine, decoder, ring, SIZE)
        for b in batches:
            graphs.prepare([b])
            one = timed(lambda b=b: graphs.run(list(range(b))), 30)
            out[str(b)].update({"batch_graph_ms": round(one * 1e3, 3), "batch_graph_fps": round(b / one)})
            print(f"   batch {b}: {out[str(b)]}", flush=True)
    return out


# --- the end-to-end sweep -------------------------------------------------------------------------
