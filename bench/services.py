"""Distributed services vs the standalone runner on vtest.avi, side by side in one run.

Runs the same config (``--cameras`` copies of the vtest camera, ``--frames`` frames each) through
``StandaloneRunner`` (one process, onnxruntime in-process) and through the distributed stack (real
nats-server, real Triton with dynamic batching, the four services as processes), then prints and
optionally writes (``--json FILE``)::

    {"standalone_fps", "distributed_fps", "triton_batch_sizes": {size: executions},
     "stage_latency_ms": {stage: {"p50", "p99"}}, "equivalent": true|false, ...}

Stage latencies come from the services' Prometheus histograms (interpolated like
``histogram_quantile``); ``end_to_end`` is decode -> events published. ``--triton-sweep`` instead
measures Triton's dynamic-batching settings (queue delay, preferred sizes) with 8 concurrent
cameras: how the CPU model's ``config.pbtxt`` values were chosen.

Usage: python bench/services.py [--cameras 4] [--frames 100] [--json FILE] [--triton-sweep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import yaml
from google.protobuf import text_format
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tritonclient.grpc import model_config_pb2  # noqa: E402

from rva.assets import sample_video  # noqa: E402
from rva.config import OnnxDetectorConfig, TritonDetectorConfig, load_config  # noqa: E402
from rva.core import Event  # noqa: E402
from rva.detect.triton_detector import TritonDetector  # noqa: E402
from rva.pipeline.runner import StandaloneRunner  # noqa: E402
from services.common.equivalence import compare_events  # noqa: E402
from services.common.metrics import histogram_quantile, parse_metrics  # noqa: E402
from services.common.servers import NatsServer, TritonServer  # noqa: E402
from services.inference.triton_repo import prepare_model_repository  # noqa: E402
from services.stack import Stack  # noqa: E402

STAGES = {
    ("decode", "buffer"): "decode_buffer",
    ("inference", "detect"): "inference",
    ("tracking", "track"): "tracking",
    ("analytics", "analytics"): "analytics",
    ("analytics", "end_to_end"): "end_to_end",
}


def write_config(path: Path, cameras: int, frames: int, triton_url: str | None, live_fps: float | None) -> Path:
    raw = yaml.safe_load((REPO / "rva" / "configs" / "vtest.yaml").read_text())
    base = raw["cameras"][0]
    base["source"] = {"type": "file", "path": str(sample_video()), "realtime": live_fps is not None}
    if live_fps is not None:
        base["analysis_fps"] = live_fps
    raw["cameras"] = [{**base, "id": f"cam{i}"} for i in range(cameras)]
    raw["store"] = f"bench{int(time.time())}"
    raw["output"] = {"annotated_video": False, "heatmap_png": False}
    if triton_url:
        raw["detector"] = {"type": "triton", "url": triton_url}
    raw["services"] = {"decode": {"max_frames": frames}, "telemetry": {"log_format": "json"}}
    path.write_text(yaml.safe_dump(raw))
    return path


async def _events(url: str, store: str) -> list[Event]:
    import nats

    from rva.events.v1 import events_pb2

    nc = await nats.connect(url)
    sub = await nc.jetstream().pull_subscribe(f"rva.{store}.>", stream="RVA_EVENTS")
    out: list[Event] = []
    while True:
        try:
            msgs = await sub.fetch(512, timeout=1.0)
        except TimeoutError:  # nats.errors.TimeoutError or asyncio.TimeoutError
            break
        out += [Event.from_proto(events_pb2.Event.FromString(m.data)) for m in msgs]
    await nc.close()
    return out


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    import urllib.request

    return parse_metrics(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())


def latencies(stack: Stack) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for (service, stage), label in STAGES.items():
        samples = scrape(stack.services[service].metrics_port).get("rva_stage_latency_seconds_bucket", [])
        buckets = [(float(lab["le"]), v) for lab, v in samples if lab.get("stage") == stage]
        q = {k: histogram_quantile(p, buckets) for k, p in (("p50", 0.5), ("p99", 0.99))}
        out[label] = {k: None if v is None else round(v * 1000, 1) for k, v in q.items()}
    return out


def triton_batches(url: str) -> dict[int, int]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    stats = client.get_inference_statistics("rva_detector", client_timeout=10).model_stats[0]
    client.close()
    return {int(b.batch_size): int(b.compute_infer.count) for b in stats.batch_stats}


def run(cameras: int, frames: int, work: Path, console: Console, live_fps: float | None = None) -> dict[str, Any]:
    repo = prepare_model_repository(OnnxDetectorConfig(), work / "repo")
    nats_server, triton_server = NatsServer(log_dir=work / "nats"), TritonServer(repo, log_dir=work / "triton")
    with _Started(nats_server) as nats_srv, _Started(triton_server) as triton:
        cfg_path = write_config(work / "bench.yaml", cameras, frames, triton.url, live_fps)
        store = load_config(cfg_path).store
        console.print(f"distributed: {cameras} cameras x {frames} frames through Triton ...")
        stack = Stack(cfg_path, work / "stack", nats_url=nats_srv.url, triton_url=triton.url).start()
        try:
            from grpc import insecure_channel

            from rva.analytics.v1 import analytics_pb2, analytics_pb2_grpc

            t0 = time.perf_counter()
            with insecure_channel(stack.services["analytics"].addr) as ch:
                stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
                while True:
                    cams = stub.GetSummary(analytics_pb2.GetSummaryRequest(), timeout=5).cameras
                    if len(cams) == cameras and all(c.frames >= frames for c in cams):
                        break
                    time.sleep(0.1)
            distributed_wall = time.perf_counter() - t0
            time.sleep(1.0)  # end-of-stream events
            stages = latencies(stack)
        finally:
            stack.stop()
        batches = triton_batches(triton.url)
        distributed = asyncio.run(_events(nats_srv.url, store))
    console.print(f"standalone: the same {cameras} x {frames} frames in one process ...")
    # the same frames (sampled by PTS) read as fast as possible, onnxruntime in-process: the embedded default
    standalone_cfg = load_config(write_config(work / "standalone.yaml", cameras, frames, None, None))
    if live_fps is not None:
        cams = [c.model_copy(update={"analysis_fps": live_fps}) for c in standalone_cfg.cameras]
        standalone_cfg = standalone_cfg.model_copy(update={"cameras": cams})
    summary = StandaloneRunner(standalone_cfg, work / "standalone", max_frames=frames).run()
    lines = (work / "standalone" / "events.jsonl").read_text().splitlines()
    standalone = [Event.from_dict(json.loads(line)) for line in lines]
    comparison = compare_events(standalone, distributed, tolerance_s=0.1)
    total = cameras * frames
    return {
        "standalone_fps": round(total / summary["wall_s"], 2),
        "distributed_fps": round(total / distributed_wall, 2),
        "triton_batch_sizes": {str(k): v for k, v in sorted(batches.items())},
        "stage_latency_ms": stages,
        "equivalent": comparison.equivalent,
        "mode": f"live, {live_fps} analysed fps per camera" if live_fps else "files, as fast as possible",
        "cameras": cameras,
        "frames_per_camera": frames,
        "events": {"standalone": sum(comparison.reference.values()), "distributed": sum(comparison.candidate.values())},
        "mismatches": comparison.problems[:10],
    }


class _Started:
    """``with _Started(server) as s``: start on enter, stop on exit."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def __enter__(self) -> Any:
        return self.server.start()

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def sweep(work: Path, console: Console, cameras: int = 8, per_camera: int = 6) -> list[dict[str, Any]]:
    """Triton dynamic-batching settings under ``cameras`` concurrent single-frame clients."""
    repo = prepare_model_repository(OnnxDetectorConfig(), work / "repo")
    config = repo / "rva_detector" / "config.pbtxt"
    template = config.read_text()
    with av.open(str(sample_video())) as container:
        frames = [
            f.to_ndarray(format="bgr24") for _, f in zip(range(per_camera), container.decode(video=0), strict=False)
        ]
    rows = []
    for delay_us, preferred in ((0, ()), (2000, (4, 8)), (10000, (4, 8)), (50000, (8,))):
        cfg = text_format.Parse(template, model_config_pb2.ModelConfig())
        cfg.dynamic_batching.max_queue_delay_microseconds = delay_us
        del cfg.dynamic_batching.preferred_batch_size[:]
        cfg.dynamic_batching.preferred_batch_size.extend(preferred)
        config.write_text(text_format.MessageToString(cfg))
        with _Started(TritonServer(repo, log_dir=work / f"triton-{delay_us}")) as triton:
            det = TritonDetector(TritonDetectorConfig(url=triton.url))

            async def camera(det: TritonDetector = det) -> list[float]:
                waits = []
                for image in frames:
                    t = time.perf_counter()
                    await det.detect_async([image])
                    waits.append(time.perf_counter() - t)
                return waits

            async def all_cameras() -> list[float]:
                return [w for ws in await asyncio.gather(*(camera() for _ in range(cameras))) for w in ws]

            t0 = time.perf_counter()
            waits = asyncio.run(all_cameras())
            wall = time.perf_counter() - t0
            batches = triton_batches(triton.url)
        executions = sum(batches.values())
        rows.append(
            {
                "max_queue_delay_us": delay_us,
                "preferred": list(preferred),
                "fps": round(cameras * per_camera / wall, 2),
                "latency_p50_ms": round(float(np.percentile(waits, 50)) * 1000),
                "latency_p99_ms": round(float(np.percentile(waits, 99)) * 1000),
                "mean_batch": round(sum(k * v for k, v in batches.items()) / max(executions, 1), 2),
            }
        )
        console.print(rows[-1])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--frames", type=int, default=100, help="frames per camera")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--live-fps", type=float, help="cameras paced like live ones, analysed at this rate (latency, not throughput)"
    )
    parser.add_argument("--triton-sweep", action="store_true", help="measure Triton batching settings instead")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="rva-bench-services-") as tmp:
        if args.triton_sweep:
            rows = sweep(Path(tmp), console)
            table = Table(
                "max queue delay us",
                "preferred",
                "fps",
                "p50 ms",
                "p99 ms",
                "mean batch",
                title="Triton dynamic batching, 8 concurrent cameras (CPU python backend)",
            )
            for r in rows:
                table.add_row(
                    *(
                        str(r[k])
                        for k in (
                            "max_queue_delay_us",
                            "preferred",
                            "fps",
                            "latency_p50_ms",
                            "latency_p99_ms",
                            "mean_batch",
                        )
                    )
                )
            console.print(table)
            if args.json:
                args.json.write_text(json.dumps({"triton_sweep": rows}, indent=2))
            return 0
        result = run(args.cameras, args.frames, Path(tmp), console, args.live_fps)
    table = Table(
        "measure",
        "standalone",
        "distributed",
        title=f"RVA on vtest.avi: {args.cameras} cameras x {args.frames} frames (2-core CPU box, shared: noisy)",
    )
    table.add_row("frames/s", str(result["standalone_fps"]), str(result["distributed_fps"]))
    table.add_row("events", str(result["events"]["standalone"]), str(result["events"]["distributed"]))
    table.add_row("equivalent", "", str(result["equivalent"]))
    table.add_row("Triton batch sizes {size: runs}", "", str(result["triton_batch_sizes"]))
    for stage, q in result["stage_latency_ms"].items():
        table.add_row(f"{stage} p50 / p99 ms", "", f"{q['p50']} / {q['p99']}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["equivalent"] else 1


if __name__ == "__main__":
    sys.exit(main())
