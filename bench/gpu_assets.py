"""Inputs of bench/gpu_streams.py, made on a CPU machine with PyAV and torch (the GPU machine has no PyAV, no network).

* ``clip``: a 1080p30 H.264 clip (IPPP, GOP 60, no B-frames, as IP cameras send) from vtest.avi: a
  16:9 band of the frame (rows 72..503) scaled 2.5x, 300 frames played at 30 fps.
* ``reference``: what the CPU computes on that clip (PyAV decode, float32 torch model), for the GPU
  run's self-checks: checksums of the decoded luma planes, and each model's boxes on three frames.
* :func:`bench_cameras`: the vtest.yaml demo camera (zones, lines, queue) mapped onto the clip.

    python bench/gpu_assets.py clip OUT.mp4
    python bench/gpu_assets.py reference CLIP.mp4 OUT.npz --pose-n POSE.pt --fall-s FALL.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rva.config import CameraConfig  # noqa: E402

CROP_TOP, CROP_ROWS, SCALE = 72, 432, 2.5
SIZE = (1920, 1080)
REFERENCE_FRAMES = (0, 45, 150)
CLASS_MAPS = {"pose-n": ({"person": "person"}, ()), "fall-s": ({"Normal": "person", "Fall": "person"}, ("Fall",))}


def make_clip(out: Path, vtest: Path, frames: int = 300, crf: int = 26) -> dict[str, Any]:
    import av
    import cv2

    src = av.open(str(vtest))
    dst = av.open(str(out), "w")
    stream = dst.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
    stream.options = {"preset": "veryfast", "crf": str(crf), "g": "60", "bf": "0", "tune": "zerolatency"}
    n = 0
    for frame in src.decode(video=0):
        if n == frames:
            break
        bgr = frame.to_ndarray(format="bgr24")[CROP_TOP : CROP_TOP + CROP_ROWS]
        big = cv2.resize(bgr, SIZE, interpolation=cv2.INTER_LINEAR)
        for packet in stream.encode(av.VideoFrame.from_ndarray(big, format="bgr24")):
            dst.mux(packet)
        n += 1
    for packet in stream.encode():
        dst.mux(packet)
    dst.close()
    src.close()
    return {"frames": n, "bytes": out.stat().st_size, "mbit_s": out.stat().st_size * 8 / (n / 30) / 1e6}


def decoded_nv12(clip: Path, indices: tuple[int, ...]) -> dict[int, np.ndarray]:
    import av

    out: dict[int, np.ndarray] = {}
    with av.open(str(clip)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in indices:
                out[i] = frame.to_ndarray(format="nv12")
            if i >= max(indices):
                break
    return out


def make_reference(clip: Path, out: Path, weights: dict[str, Path], input_hw: tuple[int, int]) -> None:
    import torch

    from rva.gpu.nms import BatchDecoder, letterbox_rows
    from rva.gpu.preprocess import nv12_to_input
    from rva.gpu.yolo_torch import load_checkpoint

    frames = decoded_nv12(clip, REFERENCE_FRAMES)
    data: dict[str, np.ndarray] = {"frames": np.array(REFERENCE_FRAMES)}
    for i, nv12 in frames.items():
        data[f"y_sum_{i}"] = np.array(int(nv12[:SIZE[1]].astype(np.int64).sum()))
        data[f"uv_sum_{i}"] = np.array(int(nv12[SIZE[1]:].astype(np.int64).sum()))
    batch = torch.from_numpy(np.stack([frames[i] for i in REFERENCE_FRAMES]))
    x = torch.zeros(len(REFERENCE_FRAMES), 3, *input_hw)
    lb = nv12_to_input(batch, x, frame_size=SIZE)
    data["input_mean"] = np.array(float(x.mean()))
    for name, path in weights.items():
        model, info = load_checkpoint(path)
        class_map, fallen = CLASS_MAPS[name]
        decoder = BatchDecoder(info, class_map, fallen)
        with torch.no_grad():
            decoded = decoder(model(x), letterbox_rows([lb] * len(REFERENCE_FRAMES)))
        decoded.settle()
        for j, dets in zip(REFERENCE_FRAMES, decoder.unpack(decoded.packed.numpy(), decoded.counts.numpy()),
                           strict=True):
            data[f"{name}_xyxy_{j}"] = dets.xyxy
            data[f"{name}_conf_{j}"] = dets.confidence
            print(name, j, len(dets), np.round(dets.confidence, 2))
    np.savez(out, **data)


def _map_point(p: list[float]) -> list[float]:
    x = min(max(p[0] * SCALE, 0.0), SIZE[0])
    y = min(max((p[1] - CROP_TOP) * SCALE, 0.0), SIZE[1])
    return [round(x, 1), round(y, 1)]


def bench_cameras(n: int, clip: str) -> list[CameraConfig]:
    """``n`` copies of the vtest demo camera, geometry mapped onto the 1080p clip."""
    raw = yaml.safe_load((REPO / "rva" / "configs" / "vtest.yaml").read_text())["cameras"][0]
    for zone in raw["zones"]:
        zone["polygon"] = [_map_point(p) for p in zone["polygon"]]
    for line in raw["lines"]:
        line["start"], line["end"] = _map_point(line["start"]), _map_point(line["end"])
    for queue in raw["queues"]:
        queue["queue_polygon"] = [_map_point(p) for p in queue["queue_polygon"]]
        queue["service_polygon"] = [_map_point(p) for p in queue["service_polygon"]]
    raw["frame_size"] = list(SIZE)
    raw["source"] = {"type": "file", "path": clip, "loop": True, "realtime": True}
    return [CameraConfig.model_validate({**raw, "id": f"cam{i:03d}"}) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("clip")
    c.add_argument("out", type=Path)
    c.add_argument("--vtest", type=Path, default=REPO.parent / "shared" / "data" / "vtest.avi")
    c.add_argument("--crf", type=int, default=26)
    r = sub.add_parser("reference")
    r.add_argument("clip", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--pose-n", type=Path, required=True)
    r.add_argument("--fall-s", type=Path, required=True)
    r.add_argument("--input-hw", type=int, nargs=2, default=(384, 640))
    args = ap.parse_args()
    if args.cmd == "clip":
        print(make_clip(args.out, args.vtest, crf=args.crf))
    else:
        make_reference(args.clip, args.out, {"pose-n": args.pose_n, "fall-s": args.fall_s}, tuple(args.input_hw))


if __name__ == "__main__":
    main()
