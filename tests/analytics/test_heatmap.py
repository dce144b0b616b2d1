import numpy as np
import pytest
from analytics_scenes import Scene, dets, steps, walk

from rva.analytics import Heatmap
from rva.config import HeatmapConfig
from rva.core.detections import Detections

SIZE = (320, 240)  # width, height: a 20 x 15 grid of 16 px cells


def _feed(heat: Heatmap, scene: Scene, fps: float) -> None:
    for f in scene.frames(fps):
        heat.update(f.tracked, f.ts)


def test_grid_shape_and_person_seconds():
    heat = Heatmap(HeatmapConfig(cell_px=16, half_life_s=7 * 86400), SIZE)
    assert heat.grid().shape == (15, 20) and heat.grid().dtype == np.float32
    _feed(heat, Scene({1: steps([(0, (40, 40))]), 2: steps([(0, (300, 230)), (5.01, None)])}, 10.0), 10.0)
    g = heat.grid()
    assert g[2, 2] == pytest.approx(10.0, rel=1e-4)  # 10 s standing at (40, 40)
    assert g[14, 18] == pytest.approx(5.0, rel=1e-4)  # 5 s at (300, 230)
    assert heat.total() == pytest.approx(15.0, rel=1e-4)


@pytest.mark.parametrize("half_life", [5.0, 60.0, 300.0])
def test_heat_halves_after_one_half_life_with_nobody_there(half_life):
    heat = Heatmap(HeatmapConfig(half_life_s=half_life), SIZE)
    _feed(heat, Scene({1: walk([(0, (20, 20)), (4, (300, 200))])}, 4.0), 10.0)
    before = heat.grid(4.0).astype(np.float64)
    lazy = heat.grid(4.0 + half_life)  # read ahead without updates
    for k in range(1, 11):  # or advance with empty frames
        heat.update(Detections.empty(), 4.0 + k * half_life / 10)
    fed = heat.grid()
    np.testing.assert_allclose(lazy, before / 2, rtol=1e-5)
    np.testing.assert_allclose(fed, before / 2, rtol=1e-5)
    assert heat.total(4.0 + 3 * half_life) == pytest.approx(before.sum() / 8, rel=1e-5)


def test_decay_is_continuous_while_people_stand():
    # Standing still from 0 to T: heat = integral of 2^-(T - t)/h dt = h / ln 2 * (1 - 2^-T/h).
    h, duration = 10.0, 30.0
    heat = Heatmap(HeatmapConfig(half_life_s=h), SIZE)
    _feed(heat, Scene({1: steps([(0, (100, 100))])}, duration), 7.0)
    expected = h / np.log(2) * (1 - 2 ** (-duration / h))
    assert heat.total() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("half_life", [30.0, 300.0])
def test_frame_rate_does_not_matter(half_life):
    scene = Scene({
        1: walk([(0, (10, 10)), (20, (310, 230))]),
        2: steps([(0, (80, 200)), (12.01, None)]),
        3: walk([(5, (300, 20)), (15, (20, 220)), (15.01, None)]),
    }, 20.0)
    grids = {}
    for fps in (5.0, 10.0, 30.0):
        heat = Heatmap(HeatmapConfig(half_life_s=half_life), SIZE)
        _feed(heat, scene, fps)
        grids[fps] = heat.grid()
    for fps in (5.0, 10.0):
        assert grids[fps].sum() == pytest.approx(grids[30.0].sum(), rel=1e-2)
        assert grids[fps][12, 5] == pytest.approx(grids[30.0][12, 5], rel=1e-3)  # where 2 stood


def test_long_gap_is_capped():
    heat = Heatmap(HeatmapConfig(half_life_s=7 * 86400), SIZE, max_gap_s=2.0)
    heat.update(dets({1: (100, 100)}), 0.0)
    heat.update(dets({1: (100, 100)}), 60.0)  # stream stalled for a minute
    assert heat.total() == pytest.approx(2.0, rel=1e-4)


def test_rebasing_keeps_values():
    heat = Heatmap(HeatmapConfig(half_life_s=1.0), SIZE)
    for k in range(400):  # 200 half-lives: rebased several times
        heat.update(dets({1: (100, 100)}), k * 0.5)
    # Standing forever: heat tends to the integral of 2^-t/h over t >= 0, h / ln 2.
    assert heat.total() == pytest.approx(1.0 / np.log(2), rel=1e-5)
    assert np.isfinite(heat.grid()).all()


def test_hotspots():
    heat = Heatmap(HeatmapConfig(cell_px=16, half_life_s=7 * 86400, hotspots=5), SIZE)
    scene = Scene({
        1: steps([(0, (56, 56))]),  # 9 s at cell (3, 3)
        2: steps([(0, (250, 150)), (3.01, None)]),  # 3 s at cell (9, 15)
        3: steps([(0, (100, 220)), (1.01, None)]),  # 1 s at cell (13, 6)
    }, 9.0)
    _feed(heat, scene, 10.0)
    spots = heat.hotspots()
    assert [(s.row, s.col) for s in spots] == [(3, 3), (9, 15), (13, 6)]
    assert [round(s.share, 3) for s in spots] == [round(9 / 13, 3), round(3 / 13, 3), round(1 / 13, 3)]
    assert (spots[0].x, spots[0].y) == (56.0, 56.0)
    assert spots[0].heat == pytest.approx(9.0, rel=1e-4)
    assert len(heat.hotspots(count=1)) == 1


def test_one_person_straddling_two_cells_is_one_hotspot():
    heat = Heatmap(HeatmapConfig(cell_px=16, half_life_s=300), SIZE)
    scene = Scene({1: steps([(0, (31, 40)), (1, (33, 40)), (2, (31, 40)), (3, (33, 40))])}, 4.0)
    _feed(heat, scene, 10.0)
    spots = heat.hotspots()
    assert len(spots) == 1
    assert spots[0].share == pytest.approx(1.0)


def test_cold_grid_has_no_hotspots():
    heat = Heatmap(HeatmapConfig(), SIZE)
    assert heat.hotspots() == []
    heat.update(Detections.empty(), 0.0)
    assert heat.hotspots(5.0) == []
