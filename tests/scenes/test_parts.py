"""The pieces: background, cut-outs, layout and floor plane, sprite placement and occlusion."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from rva.analytics.geometry import points_in_polygon, segment_crossings, side_of_line
from rva.config import check_geometry
from rva.scenes.background import foreground_mask, median_background
from rva.scenes.cutouts import isolated
from rva.scenes.layout import VTEST_LAYOUT, Ground
from rva.scenes.library import read_library, save_library
from rva.scenes.render import compose, occluder_masks, place
from rva.scenes.simulate import PersonState, Pose


def test_median_background_removes_what_moves():
    rng = np.random.default_rng(0)
    empty = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frames = []
    for i in range(9):  # a bright block visits each place in fewer than half the frames
        f = empty.copy()
        f[10:30, 4 * i : 4 * i + 12] = 255
        frames.append(f)
    assert np.array_equal(median_background(frames), empty)


def test_foreground_mask_finds_a_person_sized_block():
    bg = np.full((100, 100, 3), 120, np.uint8)
    frame = bg.copy()
    frame[20:80, 40:60] = (30, 40, 50)
    frame[5, 5] = 255  # one-pixel speckle: opened away
    mask = foreground_mask(frame, bg)
    assert mask[21:79, 41:59].all() and not mask[5, 5]  # the opening only rounds the block's corners
    assert 60 * 20 - 8 <= np.count_nonzero(mask) <= 60 * 20


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ([[100, 100, 140, 200]], [0]),
        ([[100, 100, 140, 200], [300, 100, 340, 200]], [0, 1]),
        ([[100, 100, 140, 200], [150, 100, 190, 200]], []),  # side by side: neither is isolated
        ([[100, 100, 140, 150]], []),  # 50 px tall: too small
        ([[1, 100, 40, 200]], []),  # touches the frame edge
    ],
)
def test_isolated(boxes, expected):
    assert isolated(np.array(boxes, np.float32), (576, 768)) == expected


@pytest.mark.parametrize("point", [(100.0, 200.0), (384.0, 300.0), (700.0, 560.0), (-40.0, 520.0)])
def test_ground_round_trip(point):
    ground = Ground(0.23, 16.0)
    assert ground.to_image(*ground.to_floor(*point)) == pytest.approx(point)


def test_ground_near_people_move_more_pixels_per_metre():
    ground = Ground(0.23, 16.0)
    far, near = ground.to_floor(384.0, 200.0), ground.to_floor(384.0, 500.0)
    step_far = ground.to_image(far[0] + 1.0, far[1])[0] - 384.0
    step_near = ground.to_image(near[0] + 1.0, near[1])[0] - 384.0
    assert step_near > 2 * step_far


def test_layout_is_consistent():
    L = VTEST_LAYOUT
    check_geometry(L.camera_config("scene.mp4"), L.frame_size)
    assert points_in_polygon(L.queue_slots, L.queue_polygon).all()
    assert points_in_polygon([L.till], L.service_polygon).all()
    assert not points_in_polygon(L.queue_slots, L.service_polygon).any()
    step_up = np.linspace(L.queue_slots[0], L.till, 200)  # front of the line to the till: never in neither
    assert (points_in_polygon(step_up, L.queue_polygon) | points_in_polygon(step_up, L.service_polygon)).all()
    _, start, end = L.entrance
    for lane in L.lanes:  # walk-throughs never cross the entrance segment, though some cross its line
        a, b = np.array(lane[:-1]), np.array(lane[1:])
        assert not segment_crossings(a, b, start, end)[0].any()
    coming_in = np.array([(L.door_band[0], L.door_band[1]), L.inside_door])
    assert segment_crossings(coming_in[:1], coming_in[1:], start, end)[0].all()
    assert side_of_line([L.inside_door], start, end)[0] < 0  # inside is the line's left: "in"
    for route in (L.till_exit, L.abandon_exit):
        moves = list(pairwise(route))
        assert sum(segment_crossings([a], [b], start, end)[0][0] for a, b in moves) == 1


@pytest.mark.parametrize(
    ("x", "y", "pose", "flip"),
    [(200.0, 250.0, Pose.WALKING, False), (500.5, 420.0, Pose.STANDING, True), (300.0, 372.0, Pose.LYING, False)],
)
def test_place_puts_the_box_bottom_centre_on_the_foot(scene_library, x, y, pose, flip):
    ground = Ground(*scene_library.height_fit)
    state = PersonState(1, x, y, pose, sequence=0, sprite=0, flip=flip, scale=1.0)
    placed = place(state, scene_library, ground)
    bg = np.zeros((576, 768, 3), np.uint8)
    _, (seen,) = compose(bg, [placed], draw=False)
    x1, y1, x2, y2 = seen.box
    assert abs((x1 + x2) / 2 - x) <= 0.5 and abs(y2 - y) <= 0.5
    long_side = (x2 - x1) if pose is Pose.LYING else (y2 - y1)
    assert long_side == pytest.approx(ground.height(y), rel=0.2)
    assert seen.occlusion == 0.0 and seen.truncation == 0.0


def test_nearer_people_and_the_lamp_post_hide_farther_people(scene_library, scene_background):
    ground = Ground(*scene_library.height_fit)
    states = [
        PersonState(1, 250.0, 300.0, Pose.STANDING, 0, 0, False, 1.0),  # far
        PersonState(2, 255.0, 330.0, Pose.STANDING, 0, 0, False, 1.0),  # near, in front of 1
        PersonState(3, 433.0, 300.0, Pose.STANDING, 0, 0, False, 1.0),  # behind the lamp post
        PersonState(4, 760.0, 300.0, Pose.STANDING, 0, 0, False, 1.0),  # half off screen
    ]
    masks = occluder_masks(VTEST_LAYOUT.occluders, scene_background.shape[:2])
    image, seen = compose(scene_background, [place(s, scene_library, ground) for s in states], masks)
    by_id = {s.person: s for s in seen}
    assert by_id[1].occlusion > 0.3 and by_id[2].occlusion == 0.0
    assert 0.0 < by_id[3].occlusion < 0.9  # the post and its sign cross their body
    assert by_id[4].truncation > 0.1 and by_id[4].box[2] == 768.0  # cut by the frame edge (sprite size varies)
    assert image is not None and image.shape == scene_background.shape


def test_library_cache_round_trip(scene_library, tmp_path):
    path = tmp_path / "lib.npz"
    save_library(scene_library, path)
    back = read_library(path)
    assert back.height_fit == scene_library.height_fit and len(back.sequences) == len(scene_library.sequences)
    for a, b in zip(back.sequences, scene_library.sequences, strict=True):
        assert (a.person, a.loop, a.step) == (b.person, b.loop, b.step)
        assert all(
            np.array_equal(x.rgba, y.rgba) and x.foot == y.foot for x, y in zip(a.sprites, b.sprites, strict=True)
        )
