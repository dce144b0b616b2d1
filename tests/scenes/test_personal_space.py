"""People who stop to browse keep their personal space: two bodies never stand on one spot."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from rva.analytics.geometry import points_in_polygon
from rva.scenes.cutouts import CutoutLibrary
from rva.scenes.layout import VTEST_LAYOUT, Ground
from rva.scenes.simulate import PERSONAL_SPACE_M, free_spot

GROUND = Ground(a=0.35, b=-10.0, cx=384.0)  # a plain floor: 1.7 m tall people are 0.35 y - 10 px
ZONE = ((100.0, 300.0), (400.0, 300.0), (400.0, 400.0), (100.0, 400.0))


def _floor(x: float, y: float) -> np.ndarray:
    return np.array(GROUND.to_floor(x, y))


@pytest.mark.parametrize(
    ("taken", "moves"),
    [
        ([], False),  # nobody there
        ([(330.0, 350.0)], False),  # someone well away
        ([(250.0, 350.0)], True),  # someone on the very spot
        ([(252.0, 351.0), (240.0, 352.0)], True),  # two people near it
    ],
)
def test_free_spot_keeps_personal_space_inside_the_zone(taken: list[tuple[float, float]], moves: bool) -> None:
    wish = _floor(250.0, 350.0)
    others = [_floor(*p) for p in taken]
    spot = free_spot(wish, others, ZONE, GROUND)
    assert (not np.allclose(spot, wish)) == moves
    assert all(np.hypot(*(spot - q)) >= PERSONAL_SPACE_M - 1e-9 for q in others)
    assert points_in_polygon([GROUND.to_image(*spot)], ZONE)[0]
    if moves:  # the nearest free spot: not farther than one ring step beyond the space needed
        assert np.hypot(*(spot - wish)) <= 2 * PERSONAL_SPACE_M + 0.2


def test_free_spot_in_a_full_zone_takes_the_roomiest_place() -> None:
    tiny = ((240.0, 345.0), (260.0, 345.0), (260.0, 355.0), (240.0, 355.0))  # ~1 m across
    wish = _floor(250.0, 350.0)
    others = [_floor(245.0, 350.0), _floor(255.0, 350.0)]
    spot = free_spot(wish, others, tiny, GROUND)
    gap = min(np.hypot(*(spot - q)) for q in others)
    assert gap >= min(np.hypot(*(wish - q)) for q in others)


def test_no_two_browsers_stand_on_one_spot(seed0: Path, scene_library: CutoutLibrary) -> None:
    truth = json.loads((seed0 / "truth.json").read_text())
    ground = Ground(*scene_library.height_fit, cx=VTEST_LAYOUT.frame_size[0] / 2.0)
    zones = [p for _, p in VTEST_LAYOUT.zones]
    closest = np.inf
    for f in truth["frames"]:
        still = [
            np.array(ground.to_floor(*p["foot"]))
            for p in f["people"]
            if p["pose"] == "standing" and any(points_in_polygon([p["foot"]], z)[0] for z in zones)
        ]
        for a, b in combinations(still, 2):
            closest = min(closest, float(np.hypot(*(a - b))))
    assert closest >= PERSONAL_SPACE_M - 0.05
