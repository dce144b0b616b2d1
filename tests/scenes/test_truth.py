"""Ground-truth derivation on hand-made foot tracks, and ``validate`` catching broken truths."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from rva.config import CameraConfig, FileSource, LineConfig, QueueConfig, ZoneConfig
from rva.scenes import read_truth, validate
from rva.scenes.truth import line_crossings, queue_records, zone_visits

FPS, N = 10.0, 60
SQUARE = [(100.0, 100.0), (200.0, 100.0), (200.0, 200.0), (100.0, 200.0)]
IN, OUT = (150.0, 150.0), (300.0, 150.0)
# Vertical line drawn upwards: its left (the "in" side) is to the west on screen.
LINE = LineConfig(name="door", start=(400.0, 300.0), end=(400.0, 100.0), min_side_s=0.3)
WEST, EAST, BEYOND_WEST, BEYOND_EAST = (350.0, 200.0), (450.0, 200.0), (350.0, 50.0), (450.0, 50.0)
SERVICE = [(100.0, 200.0), (200.0, 200.0), (200.0, 260.0), (100.0, 260.0)]
TILL, AWAY = (150.0, 230.0), (400.0, 230.0)
CAMERA = CameraConfig(
    id="t",
    source=FileSource(path="x.mp4"),
    zones=[ZoneConfig(name="z", polygon=SQUARE, enter_inertia_s=0.3, exit_inertia_s=1.0)],
    lines=[LINE],
    queues=[QueueConfig(name="q", queue_polygon=SQUARE, service_polygon=SERVICE, join_after_s=2.0, exit_inertia_s=1.5)],
)


def track(*spans: tuple[int, int, tuple[float, float]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Person 1 standing at a point over frame spans ``[start, end)``; frames not covered are off screen."""
    idx = [i for a, b, _ in spans for i in range(a, b)]
    feet = [p for a, b, p in spans for _ in range(a, b)]
    return {1: (np.array(idx, np.int64), np.array(feet, np.float64))}


ZONE_CASES = [
    ("stays 2 s", track((0, 10, OUT), (10, 31, IN), (31, 50, OUT)), [(1.0, 3.0)]),
    ("brushes the edge 0.1 s (< enter inertia)", track((0, 10, OUT), (10, 12, IN), (12, 50, OUT)), []),
    (
        "steps out 0.5 s (< exit inertia): one visit",
        track((10, 21, IN), (21, 26, OUT), (26, 41, IN), (41, 50, OUT)),
        [(1.0, 4.0)],
    ),
    ("out 2 s: two visits", track((10, 21, IN), (21, 41, OUT), (41, 46, IN), (46, 60, OUT)), [(1.0, 2.0), (4.1, 4.5)]),
    ("left 0.9 s before the end (< exit inertia): still open", track((10, 51, IN), (51, 60, OUT)), [(1.0, None)]),
    ("leaves the screen from inside: ends at the last frame seen", track((10, 21, IN)), [(1.0, 2.0)]),
    ("still inside at the end: open", track((10, 60, IN)), [(1.0, None)]),
]


@pytest.mark.parametrize(("name", "tracks", "expected"), ZONE_CASES, ids=[c[0] for c in ZONE_CASES])
def test_zone_visits(name, tracks, expected):
    got = [(v["enter_ts"], v["exit_ts"]) for v in zone_visits(tracks, N, FPS, CAMERA)]
    assert got == expected
    for v in zone_visits(tracks, N, FPS, CAMERA):
        assert v["dwell_s"] == pytest.approx(v["last_inside_ts"] - v["enter_ts"])


LINE_CASES = [
    ("east to west: in, at the interpolated instant", track((0, 10, EAST), (10, 30, WEST)), [("in", 0.95, 10)]),
    ("west to east: out", track((0, 10, WEST), (10, 30, EAST)), [("out", 0.95, 10)]),
    ("past the segment's end: nothing", track((0, 10, BEYOND_EAST), (10, 30, BEYOND_WEST)), []),
    ("back after 0.1 s (flicker): nothing", track((0, 10, EAST), (10, 11, WEST), (11, 30, EAST)), []),
    ("off screen 0.2 s after crossing: nothing", track((0, 10, EAST), (10, 12, WEST)), []),
    (
        "in, then out 2 s later",
        track((0, 10, EAST), (10, 30, WEST), (30, 50, EAST)),
        [("in", 0.95, 10), ("out", 2.95, 30)],
    ),
]


@pytest.mark.parametrize(("name", "tracks", "expected"), LINE_CASES, ids=[c[0] for c in LINE_CASES])
def test_line_crossings(name, tracks, expected):
    got = [(c["direction"], c["ts"], c["frame"]) for c in line_crossings(tracks, FPS, CAMERA)]
    assert got == [(d, pytest.approx(ts), f) for d, ts, f in expected]


QUEUE_CASES = [
    (
        "waits 3 s, served",
        track((0, 10, AWAY), (10, 40, IN), (40, 50, TILL), (50, 60, AWAY)),
        [("served", 1.0, 4.0, 3.0)],
    ),
    (
        "waits 3 s, walks off: abandoned at the last time in line",
        track((0, 10, AWAY), (10, 40, IN), (40, 60, AWAY)),
        [("abandoned", 1.0, 3.9, 2.9)],
    ),
    (
        "1 s in line then straight to the till: joined and served",
        track((10, 20, IN), (20, 40, TILL)),
        [("served", 1.0, 2.0, 1.0)],
    ),
    ("1 s in line then away: never joined", track((10, 20, IN), (20, 60, AWAY)), []),
    ("still in line at the end: waiting", track((10, 60, IN)), [("waiting", 1.0, 5.9, 4.9)]),
    ("at the till without queueing: not a customer", track((0, 10, AWAY), (10, 60, TILL)), []),
    (
        "served, then back into the line: never rejoins",
        track((10, 40, IN), (40, 45, TILL), (45, 60, IN)),
        [("served", 1.0, 4.0, 3.0)],
    ),
]


@pytest.mark.parametrize(("name", "tracks", "expected"), QUEUE_CASES, ids=[c[0] for c in QUEUE_CASES])
def test_queue_records(name, tracks, expected):
    got = [
        (r["outcome"], r["join_ts"], r["served_ts"] or r["abandon_ts"] or r["last_in_queue_ts"], r["wait_s"])
        for r in queue_records(tracks, N, FPS, CAMERA)
    ]
    assert got == [(o, j, pytest.approx(e), pytest.approx(w)) for o, j, e, w in expected]


@pytest.fixture(scope="module")
def seed0_truth(seed0) -> dict[str, Any]:
    truth = read_truth(seed0 / "truth.json")
    assert validate(truth) == []
    return truth


def _first_frame_with(truth: dict[str, Any], n: int) -> dict[str, Any]:
    return next(f for f in truth["frames"] if len(f["people"]) >= n)


def _dup_id(t: dict[str, Any]) -> None:
    f = _first_frame_with(t, 2)
    f["people"][1]["id"] = f["people"][0]["id"]


def _shift_foot(t: dict[str, Any]) -> None:
    _first_frame_with(t, 1)["people"][0]["foot"][1] += 3.0


def _dwell(t: dict[str, Any]) -> None:
    t["zone_visits"][0]["dwell_s"] += 1.0


def _exit_first(t: dict[str, Any]) -> None:
    v = t["zone_visits"][0]
    v["exit_ts"] = v["last_inside_ts"] = v["enter_ts"] - 1.0


def _flip(t: dict[str, Any]) -> None:
    c = t["line_crossings"][0]
    c["direction"] = "out" if c["direction"] == "in" else "in"


def _drop_crossing(t: dict[str, Any]) -> None:
    del t["line_crossings"][0]


def _wait(t: dict[str, Any]) -> None:
    t["queue"][0]["wait_s"] += 2.0


def _stale_summary(t: dict[str, Any]) -> None:
    t["summary"]["crossings_in"] += 1


CORRUPTIONS = [
    ("id twice in a frame", _dup_id, "repeated"),
    ("foot not at the box's bottom-centre", _shift_foot, "bottom-centre"),
    ("dwell != exit - enter", _dwell, "dwell"),
    ("exit before enter", _exit_first, "before enter"),
    ("crossing direction flipped", _flip, "feet say"),
    ("crossing left out", _drop_crossing, "missing from line_crossings"),
    ("queue wait wrong", _wait, "wait"),
    ("summary stale", _stale_summary, "summary"),
]


@pytest.mark.parametrize(("name", "corrupt", "expected"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_validate_catches(seed0_truth, name, corrupt, expected):
    broken = copy.deepcopy(seed0_truth)
    corrupt(broken)
    problems = validate(broken)
    assert any(expected in p for p in problems), problems
