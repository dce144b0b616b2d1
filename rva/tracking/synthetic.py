"""Synthetic ground truth: people walking through a fixed camera's view, for tracker tests and benchmarks.

A person is a box standing on the floor: its bottom-centre point walks a straight line between two
edges of the image at 0.8-1.6 m/s, some stop for a while on the way (browsing a shelf, waiting at
a till), and the box height follows a simple perspective (small far away, at the top of the image;
large near the camera, at the bottom). Paths cross at random, so crossings and overlaps happen as
often as the number of people makes them. Box width and height wobble a little with the gait.

The output is the ground truth only, one :class:`~rva.core.detections.Detections` per frame with
``tracker_id`` = the person's identity and confidence 1; a detector noise model
(:func:`rva.evaluation.perturb`) turns it into tracker input.
"""

from __future__ import annotations

import numpy as np

from rva.core.detections import Detections

_PERSON_M = 1.7  # metres: converts walking speed to pixels via the box height


def walking_people(
    n_people: int,
    seconds: float,
    fps: float = 25.0,
    image_size: tuple[int, int] = (1280, 720),
    seed: int = 0,
    stop_fraction: float = 0.3,
    far_height: float = 80.0,
    near_height: float = 260.0,
) -> list[Detections]:
    """People walking across the view, as ground-truth frames.

    Args:
        n_people: People that appear over the clip (entries are spread over its first 70 %).
        seconds: Clip length.
        fps: Frame rate; frame ``t`` is at ``t / fps`` s.
        image_size: ``(width, height)`` in pixels.
        seed: Seed of every random draw: the same arguments give the same frames.
        stop_fraction: Share of people who stop once, for 2-8 s, on their way.
        far_height: Box height (px) of a person standing at the top edge of the image.
        near_height: Box height (px) of a person standing at the bottom edge.

    Returns:
        ``round(seconds * fps)`` frames; each row is one visible person, ``tracker_id`` = identity
        (from 1), boxes clipped to the image.

    """
    rng = np.random.default_rng(seed)
    width, height = image_size
    n_frames = round(seconds * fps)
    horizon = 0.25 * height  # nobody stands above this line (the back wall)

    def box_height(y: np.ndarray) -> np.ndarray:
        return far_height + (near_height - far_height) * np.clip((y - horizon) / (height - horizon), 0, 1)

    foot = np.full((n_people, n_frames, 2), np.nan)  # bottom-centre per person per frame
    for p in range(n_people):
        start, end = _edge_points(rng, width, height, horizon)
        direction = (end - start) / np.linalg.norm(end - start)
        speed = rng.uniform(0.8, 1.6)  # m/s
        stop_at = rng.uniform(0.2, 0.8) * np.linalg.norm(end - start) if rng.random() < stop_fraction else -1.0
        stop_for = rng.uniform(2.0, 8.0)
        t0 = int(rng.uniform(0.0, 0.7) * n_frames)
        pos, travelled, waited = start.copy(), 0.0, 0.0
        for t in range(t0, n_frames):
            foot[p, t] = pos
            dt = 1.0 / fps
            if 0.0 <= stop_at <= travelled and waited < stop_for:
                waited += dt
                continue
            step = speed * float(box_height(pos[1:2])[0]) / _PERSON_M * dt
            travelled += step
            pos = pos + direction * step
            if not (0 <= pos[0] <= width and horizon <= pos[1] <= height + 1):
                break

    frames = []
    for t in range(n_frames):
        seen = np.flatnonzero(~np.isnan(foot[:, t, 0]))
        xy = foot[seen, t]
        h = box_height(xy[:, 1]) * (1.0 + 0.02 * np.sin(2 * np.pi * 1.8 * t / fps + seen))
        w = 0.4 * h * (1.0 + 0.05 * np.sin(2 * np.pi * 0.9 * t / fps + 2 * seen))
        xyxy = np.stack([xy[:, 0] - w / 2, xy[:, 1] - h, xy[:, 0] + w / 2, xy[:, 1]], axis=1)
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
        ok = (xyxy[:, 2] - xyxy[:, 0] > 4) & (xyxy[:, 3] - xyxy[:, 1] > 4)
        frames.append(
            Detections.from_arrays(xyxy[ok], np.ones(int(ok.sum()), np.float32)).with_tracker_id(seen[ok] + 1)
        )
    return frames


def _edge_points(
    rng: np.random.Generator, width: int, height: int, horizon: float
) -> tuple[np.ndarray, np.ndarray]:
    """A start and an end on two different edges of the walkable area (left, right, back, front)."""

    def point(edge: int) -> np.ndarray:
        if edge == 0:
            return np.array([0.0, rng.uniform(horizon, height)])
        if edge == 1:
            return np.array([float(width), rng.uniform(horizon, height)])
        if edge == 2:
            return np.array([rng.uniform(0, width), horizon])
        return np.array([rng.uniform(0, width), float(height)])

    first, second = rng.choice(4, size=2, replace=False)
    return point(int(first)), point(int(second))
