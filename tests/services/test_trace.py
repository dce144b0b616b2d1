"""One trace follows a frame through decode -> inference -> tracking -> analytics (and onto NATS).

The four services run in this process (so a test's in-memory exporter sees every span) but talk
exactly as in production: gRPC between decode and inference, JetStream between the others; the
context crosses in the frame message and in NATS headers.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from service_helpers import ConfigWriter, read_events

from rva.config import RVAConfig
from rva.service_config import TelemetryConfig
from services.analytics.service import AnalyticsService
from services.common.config import load_service_config
from services.common.runtime import ServiceRuntime
from services.common.servers import NatsServer, TritonServer
from services.common.telemetry import setup_tracing
from services.decode.service import DecodeService
from services.inference.service import InferenceService
from services.tracking.service import TrackingService

FRAMES = 10
CHAIN = ["decode.frame", "inference.detect", "tracking.update", "analytics.update"]


async def _run(cfg: RVAConfig, env: dict[str, str], path: Any) -> None:
    decode = ServiceRuntime(DecodeService(cfg, cfg.cameras), "127.0.0.1", 0, None)
    await decode.start()
    cfg = load_service_config(path, {**env, "RVA_INFERENCE_DECODE_ADDRS": f"127.0.0.1:{decode.port}"})
    others = [
        ServiceRuntime(cls(cfg, cfg.cameras), "127.0.0.1", 0, None)
        for cls in (InferenceService, TrackingService, AnalyticsService)
    ]
    for runtime in others:
        await runtime.start()
    analytics = others[-1].service
    assert isinstance(analytics, AnalyticsService)
    deadline = time.monotonic() + 120
    try:
        while analytics.states["walkway"].frames < FRAMES:
            assert time.monotonic() < deadline, "frames did not reach analytics within 120 s"
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # the last frame's events
    finally:
        for runtime in [decode, *others]:
            await runtime.stop(2)


def test_one_trace_spans_every_service(
    write_config: ConfigWriter, nats_server: NatsServer, triton_server: TritonServer
) -> None:
    exporter = InMemorySpanExporter()
    setup_tracing("test", TelemetryConfig(trace_sample_ratio=1.0), exporter)
    path = write_config("traced", triton_url=triton_server.url, services={"decode": {"max_frames": FRAMES}})
    env = {"RVA_NATS_URL": nats_server.url}
    asyncio.run(_run(load_service_config(path, env), env, path))

    spans = exporter.get_finished_spans()
    traces: dict[int, dict[str, Any]] = defaultdict(dict)
    for span in spans:
        traces[span.context.trace_id].setdefault(span.name, span)
    frame_traces = [t for t in traces.values() if all(name in t for name in CHAIN)]
    assert len(frame_traces) >= FRAMES - 1, {hex(k): sorted(v) for k, v in traces.items()}
    for t in frame_traces:
        for parent, child in itertools.pairwise(CHAIN):
            assert t[child].parent is not None and t[child].parent.span_id == t[parent].context.span_id, (parent, child)
        assert t["decode.frame"].parent is None, "each frame starts its own trace"
        assert t["detector.triton"].parent.span_id == t["inference.detect"].context.span_id
        scopes = {t[name].instrumentation_scope.name for name in CHAIN}
        assert scopes == {f"rva.services.{s}" for s in ("decode", "inference", "tracking", "analytics")}
    # and the events a frame caused carry that frame's trace on NATS
    frame_trace_ids = {f"{t['decode.frame'].context.trace_id:032x}" for t in frame_traces}
    events = read_events(nats_server.url, "traced")
    traced = [
        h for e, h in events if str(e.type) != "source_state" and h["traceparent"].split("-")[1] in frame_trace_ids
    ]
    assert traced, "analytics events carry the trace of the frame that caused them"
