"""The distributed stack as real processes: equivalence with the standalone runner, Triton batching."""

from __future__ import annotations

from pathlib import Path

import tritonclient.grpc as grpcclient
from service_helpers import ConfigWriter, read_events, summary, wait_for

from rva.config import load_config
from rva.core import Event, EventType
from rva.pipeline.runner import StandaloneRunner
from services.common.equivalence import compare_events
from services.common.servers import NatsServer, TritonServer
from services.stack import Stack

#: vtest.avi's first 15 s: 7 tracks, 4 line crossings, 5 zone visits (~45 s of detector on 2 cores).
FRAMES = 150


def test_distributed_equals_standalone(
    write_config: ConfigWriter, nats_server: NatsServer, triton_server: TritonServer, tmp_path: Path
) -> None:
    # Stream time on the events, to compare with the standalone runner's (wall time is tested apart).
    config = write_config("equiv", triton_url=triton_server.url,
                          services={"decode": {"max_frames": FRAMES}, "analytics": {"event_time": "stream"}})
    with Stack(config, tmp_path / "stack", nats_url=nats_server.url, triton_url=triton_server.url) as stack:
        analytics = stack.services["analytics"].addr
        wait_for(lambda: summary(analytics)["walkway"]["frames"] >= FRAMES, 240, f"{FRAMES} analysed frames")
        # the end of stream (tracker.finish + analytics.finish) is published after the last frame
        wait_for(
            lambda: any(
                e.type == EventType.SOURCE_STATE and e.attrs.get("state") == "ended"
                for e, _ in read_events(nats_server.url, "equiv")
            ),
            30,
            "the end of stream",
        )
        codes = stack.stop()
    assert codes == {"decode": 0, "inference": 0, "tracking": 0, "analytics": 0}, "every service drains and exits 0"
    published = read_events(nats_server.url, "equiv")
    distributed = [e for e, _ in published]
    for event, headers in published:  # the convention issue 5's consumers rely on
        assert headers["subject"] == f"rva.equiv.{event.camera}.{event.type}"
        assert headers["Nats-Msg-Id"] == headers["event_id"] == event.event_id("equiv")
        assert "traceparent" in headers

    cfg = load_config(config)
    StandaloneRunner(cfg, tmp_path / "standalone", max_frames=FRAMES).run()
    lines = (tmp_path / "standalone" / "events.jsonl").read_text().splitlines()
    standalone = [Event.from_dict(__import__("json").loads(line)) for line in lines]

    result = compare_events(standalone, distributed, tolerance_s=0.1)  # one analysed frame at 10 fps
    assert result.equivalent, result.problems
    assert result.reference["line_cross/lamp_post/in"] >= 1 and sum(result.reference.values()) >= 20


def test_triton_batches_across_eight_cameras(
    write_config: ConfigWriter, nats_server: NatsServer, triton_server: TritonServer, tmp_path: Path
) -> None:
    config = write_config("batch8", cameras=8, triton_url=triton_server.url, services={"decode": {"max_frames": 4}})
    client = grpcclient.InferenceServerClient(triton_server.url)

    def batches() -> dict[int, int]:
        stats = client.get_inference_statistics("rva_detector", client_timeout=5).model_stats[0]
        return {int(b.batch_size): int(b.compute_infer.count) for b in stats.batch_stats}

    before = batches()
    with Stack(config, tmp_path / "stack", nats_url=nats_server.url, triton_url=triton_server.url) as stack:
        analytics = stack.services["analytics"].addr
        wait_for(
            lambda: all(c["frames"] >= 4 for c in summary(analytics).values()) and len(summary(analytics)) == 8,
            180,
            "4 frames analysed on each of 8 cameras",
        )
    after = batches()
    new = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    frames = sum(size * count for size, count in new.items())
    assert frames >= 32
    assert any(size > 1 and count > 0 for size, count in new.items()), f"no batch > 1 in {new}"
    client.close()
