"""Helpers of the service tests: polling with a deadline, reading JetStream, the services' RPCs."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import nats

from rva.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from rva.config import TritonDetectorConfig
from rva.core import Event
from rva.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from services.common.metrics import parse_metrics

#: ``write_config(store, cameras=1, triton_url=None, services={...}, realtime=False) -> path`` (conftest's fixture).
ConfigWriter = Callable[..., Path]


def triton_config(url: str) -> TritonDetectorConfig:
    """The session Triton as a detector config."""
    return TritonDetectorConfig(url=url)


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


async def _read_events(url: str, store: str) -> list[tuple[Event, dict[str, str]]]:
    nc = await nats.connect(url, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=5)
        sub = await js.pull_subscribe(f"rva.{store}.>", stream="RVA_EVENTS")
        out: list[tuple[Event, dict[str, str]]] = []
        from rva.events.v1 import events_pb2

        while True:
            try:
                msgs = await sub.fetch(256, timeout=1.0)
            except TimeoutError:  # nats.errors.TimeoutError or asyncio.TimeoutError
                return out
            for msg in msgs:
                proto = events_pb2.Event.FromString(msg.data)
                out.append(
                    (
                        Event.from_proto(proto),
                        {**(msg.headers or {}), "subject": msg.subject, "event_id": proto.event_id},
                    )
                )
                await msg.ack()
    finally:
        await nc.close()


def read_events(url: str, store: str) -> list[tuple[Event, dict[str, str]]]:
    """Every event of ``store`` in RVA_EVENTS, with its headers, subject and event_id."""
    return asyncio.run(_read_events(url, store))


def summary(addr: str) -> dict[str, Any]:
    """Analytics' per-camera summary: frames, events_published, gaps, closed tracks, the totals."""
    with grpc.insecure_channel(addr) as channel:
        resp = analytics_pb2_grpc.AnalyticsServiceStub(channel).GetSummary(analytics_pb2.GetSummaryRequest(), timeout=5)
    return {
        c.camera_id: {
            "frames": c.frames,
            "events_published": c.events_published,
            "gaps": c.index_gaps,
            "last_index": c.last_index,
            "closed_by_restart": c.tracks_closed_by_restart,
            "summary": json.loads(c.summary_json),
        }
        for c in resp.cameras
    }


def tracking_stats(addr: str) -> dict[str, Any]:
    """Tracking's per-camera counters."""
    with grpc.insecure_channel(addr) as channel:
        resp = tracking_pb2_grpc.TrackingServiceStub(channel).GetTrackingStats(
            tracking_pb2.GetTrackingStatsRequest(), timeout=5
        )
    return {
        c.camera_id: {
            "frames": c.frames,
            "generation": c.generation,
            "duplicates": c.duplicates,
            "live_tracks": c.live_tracks,
            "last_index": c.last_index,
        }
        for c in resp.cameras
    }


def metric_sum(metrics_port: int, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over the series matching ``labels``."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    samples = parse_metrics(text).get(name, [])
    return sum(v for lab, v in samples if all(lab.get(k) == want for k, want in labels.items()))
