"""`rva demo` end to end on all 795 frames of the real vtest.avi, and the consistency of what it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import av
import cv2
import pytest

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="session")
def demo_out(tmp_path_factory: pytest.TempPathFactory, vtest_path: Path) -> Path:
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [sys.executable, "-m", "rva.cli", "demo", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=880, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Zones" in proc.stdout and "Lines" in proc.stdout and "Queues" in proc.stdout
    return out


@pytest.fixture(scope="session")
def summary(demo_out: Path) -> dict[str, Any]:
    return json.loads((demo_out / "summary.json").read_text())


@pytest.fixture(scope="session")
def events(demo_out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (demo_out / "events.jsonl").read_text().splitlines()]


def test_demo_processes_every_frame(summary: dict[str, Any]) -> None:
    assert summary["complete"] is True
    assert summary["frames"] == 795
    assert summary["seconds"] == pytest.approx(79.4, abs=0.01)
    assert summary["fps"] > 0
    # vtest.avi shows dozens of different pedestrians; far fewer would mean lost detections,
    # far more would mean fragmented tracks.
    assert 15 <= summary["tracks"] <= 120
    for key in ("lines", "zones", "queues"):
        assert summary[key], key
    for zone in summary["zones"].values():
        assert set(zone) >= {"visits", "peak", "mean_occupancy", "mean_dwell_s"}
    assert summary["cameras"]["walkway"]["source"]["state"] == "ended"


def test_demo_writes_every_output(demo_out: Path) -> None:
    names = {p.name for p in demo_out.iterdir()}
    assert {"summary.json", "events.jsonl", "heatmap.png", "annotated.mp4"} <= names
    assert not [n for n in names if n.endswith(".part")]
    heat = cv2.imread(str(demo_out / "heatmap.png"))
    assert heat is not None and heat.shape == (576, 768, 3)
    with av.open(str(demo_out / "annotated.mp4")) as video:
        stream = video.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in video.decode(video=0)) == 795


def test_events_have_required_fields(events: list[dict[str, Any]]) -> None:
    assert events
    for e in events:
        assert {"type", "camera", "ts"} <= set(e)
        if e["type"] in {"zone_enter", "zone_exit"}:
            assert "zone" in e and "track_id" in e
        if e["type"] == "line_cross":
            assert "line" in e and e["direction"] in {"in", "out"}
        if e["type"].startswith("queue_"):
            assert "queue" in e and "track_id" in e


def test_every_exit_has_an_enter_and_dwell_is_exit_minus_enter(events: list[dict[str, Any]]) -> None:
    open_visits: dict[tuple[str, int], float] = {}
    exits = 0
    for e in events:
        key = (e.get("zone", ""), e.get("track_id", -1))
        if e["type"] == "zone_enter":
            assert key not in open_visits, f"second enter without exit: {e}"
            open_visits[key] = e["ts"]
        elif e["type"] == "zone_exit":
            assert key in open_visits, f"exit without enter: {e}"
            enter = open_visits.pop(key)
            assert e["enter_ts"] == pytest.approx(enter)
            assert e["dwell_s"] == pytest.approx(e["ts"] - enter, abs=1e-6)
            assert e["dwell_s"] >= 0
            exits += 1
    assert exits > 0


def test_counts_in_summary_equal_the_events(summary: dict[str, Any], events: list[dict[str, Any]]) -> None:
    crossings = Counter((e["line"], e["direction"]) for e in events if e["type"] == "line_cross")
    for name, counts in summary["lines"].items():
        assert counts["in"] == crossings[(name, "in")]
        assert counts["out"] == crossings[(name, "out")]
    assert sum(crossings.values()) > 0, "people walk past the lamp post in vtest.avi"
    visits = Counter(e["zone"] for e in events if e["type"] == "zone_enter")
    for name, zone in summary["zones"].items():
        assert zone["visits"] == visits[name]
    by_type: dict[str, Counter[str]] = defaultdict(Counter)
    for e in events:
        if e["type"].startswith("queue_"):
            by_type[e["type"]][e["queue"]] += 1
    for name, q in summary["queues"].items():
        assert q["joined"] == by_type["queue_join"][name]
        assert q["served"] == by_type["queue_served"][name]
        assert q["abandoned"] == by_type["queue_abandon"][name]
        assert q["served"] + q["abandoned"] + q["waiting"] == q["joined"]


def test_track_events_pair_up(summary: dict[str, Any], events: list[dict[str, Any]]) -> None:
    starts = [e["track_id"] for e in events if e["type"] == "track_start"]
    ends = [e["track_id"] for e in events if e["type"] == "track_end"]
    assert len(starts) == len(set(starts)) == summary["tracks"]
    assert sorted(ends) == sorted(starts), "every track ends by the end of the stream"
    assert -1 not in starts
