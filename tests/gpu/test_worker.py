"""The whole worker set on the CPU: PyAV NV12 decode -> ring -> batcher -> torch YOLO -> NMS -> analytics processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from rva.config import CameraConfig, TrackerConfig
from rva.gpu.analytics_pool import AnalyticsPool
from rva.gpu.batcher import BatchPolicy
from rva.gpu.decoding import StreamSpec, pyav_factory
from rva.gpu.nms import BatchDecoder
from rva.gpu.torch_detector import TorchYoloEngine
from rva.gpu.worker import DetectionBatch, WorkerSettings, start_workers


def _camera(i: int) -> CameraConfig:
    return CameraConfig.model_validate({
        "id": f"cam{i}", "source": {"type": "file", "path": "clip.mp4"}, "frame_size": [384, 288],
        "zones": [{"name": "left", "polygon": [[0, 0], [192, 0], [192, 288], [0, 288]]}],
        "lines": [{"name": "middle", "start": [192, 0], "end": [192, 288]}],
    })


@pytest.mark.parametrize(
    ("streams", "engines", "paced", "processes"),
    [(3, 1, True, 2), (2, 2, False, 0)],  # decode in 2 child processes (shared ring) / in threads
)
def test_worker_end_to_end_on_cpu(pose_weights: Path, small_clip: Callable[[int], Path], streams: int,
                                  engines: int, paced: bool, processes: int) -> None:
    torch.set_num_threads(2)
    clip = str(small_clip(12))
    engs = [TorchYoloEngine(pose_weights, device="cpu", input_hw=(288, 384), buckets=(1, 2, 4)) for _ in range(engines)]
    decs = [BatchDecoder(e.info, {"person": "person"}, confidence=0.1) for e in engs]
    pool = AnalyticsPool(2, TrackerConfig())
    batches: list[DetectionBatch] = []
    try:
        pool.start_run([_camera(i) for i in range(streams)], (384, 288), decs[0].kpt_shape, decs[0].fallen_table)

        def sink(batch: DetectionBatch) -> None:
            batches.append(batch)
            pool.submit(batch)

        # A ring as large as the whole input: a slow CPU delays frames but never drops one.
        settings = WorkerSettings(decode_processes=processes, policy=BatchPolicy(4, 0.05), ring_slots=12 * streams,
                                  pace_fps=5.0 if paced else None, drop_when_full=paced)
        specs = [StreamSpec(f"cam{i}", clip, loop=False) for i in range(streams)]
        workers = start_workers(specs, engs, decs, sink, settings,
                                open_decoder=pyav_factory)
        deadline = time.monotonic() + 60
        # The first frame of each input is its pre-roll (decoded at open, not delivered): 11 of 12 come.
        while sum(len(b.tickets) for b in batches) < 11 * streams and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        for w in workers:
            w.stop()
        report = pool.finish_run()
    finally:
        pool.close()
    assert [e for w in workers for e in [*w.stats.errors, *w.stats.decode.errors]] == []
    assert sum(w.stats.decode.dropped for w in workers) == 0
    assert sum(w.stats.decode.decoded for w in workers) == 11 * streams
    assert all(1 <= len(b.tickets) <= 4 for b in batches)
    # Every frame of every stream came through once, in order, and was tracked.
    tickets = [t for b in batches for t in b.tickets]
    for s in range(streams):
        assert [t.index for t in tickets if t.stream == s] == list(range(11))
        assert np.count_nonzero(report.stream == s) == 11
    assert (report.done >= report.ready).all() and (report.ready >= report.decoded).all()
    assert (report.decoded >= report.captured).all()
    assert sum(int(b.counts.sum()) for b in batches) > 0  # the real model finds people on vtest (few, at 384x288)
