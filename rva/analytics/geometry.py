"""Vectorised floor-point geometry: point-in-polygon, side of a line, segment crossings.

Every function takes all of a frame's foot points at once as an ``(n, 2)`` array and answers with
``(n,)`` arrays, so a frame costs a few NumPy operations per zone or line, not a Python loop per
person. Coordinates are frame pixels with the image convention: x to the right, **y down**.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rva.core.detections import NO_TRACK, Detections

Points = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Slack for comparisons between stream timestamps (0.1 * 3 is not 0.3 in binary floating point).
TIME_EPS = 1e-9


def as_points(points: npt.ArrayLike, name: str = "points") -> Points:
    """Coerce to a float64 ``(n, 2)`` array, raising ``ValueError`` on another shape."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name}: expected shape (n, 2), got {arr.shape}")
    return arr


def confirmed_foot_points(tracked: Detections) -> tuple[IntArray, Points]:
    """Track ids and foot points of the rows a confirmed track owns.

    Rows with :data:`~rva.core.detections.NO_TRACK` are dropped here, whatever the caller passed:
    unconfirmed detections share the id -1 and would otherwise be counted as one busy person.

    Args:
        tracked: One frame's tracked detections.

    Returns:
        ``(ids, points)``: ``(n,)`` int64 track ids and ``(n, 2)`` float64 bottom-centre points.

    """
    keep = tracked.tracker_id != NO_TRACK
    ids = tracked.tracker_id[keep].astype(np.int64, copy=False)
    return ids, tracked.anchors[keep].astype(np.float64)


def points_in_polygon(points: npt.ArrayLike, polygon: npt.ArrayLike) -> BoolArray:
    """Which points lie inside a polygon (crossing-number rule, all points at once).

    A horizontal ray from each point is tested against every edge in one ``(n, m)`` broadcast.
    Edges are half-open in y, so a point on an edge shared by two adjacent zones is counted in at most
    one of them; points exactly on the boundary may fall either way.

    Args:
        points: ``(n, 2)`` points.
        polygon: ``(m, 2)`` vertices, ``m >= 3``, either winding, not repeated at the end.

    Returns:
        ``(n,)`` boolean mask.

    """
    pts = as_points(points)
    poly = as_points(polygon, "polygon")
    if poly.shape[0] < 3:
        raise ValueError(f"polygon: expected at least 3 vertices, got {poly.shape[0]}")
    if pts.shape[0] == 0:
        return np.zeros(0, np.bool_)
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    px, py = pts[:, :1], pts[:, 1:]  # (n, 1) against (m,) edges
    spans = (y0 > py) != (y1 > py)
    dy = np.where(y1 == y0, 1.0, y1 - y0)  # horizontal edges never span; avoid 0/0
    x_cross = x0 + (py - y0) * (x1 - x0) / dy
    hits = spans & (px < x_cross)
    inside: BoolArray = np.count_nonzero(hits, axis=1) % 2 == 1
    return inside


def side_of_line(points: npt.ArrayLike, start: tuple[float, float], end: tuple[float, float]) -> FloatArray:
    """Signed side of each point relative to the directed line ``start -> end``, on screen.

    The value is the 2-D cross product ``(end - start) x (point - start)`` in image coordinates
    (y down). **Positive means the point is to the right** of someone walking from ``start`` to
    ``end`` as drawn on the screen, negative to the left, zero on the line. Example: for a line from
    (0, 100) to (200, 100), drawn left to right, the point (50, 150) (below it on screen) is on the
    right: ``200 * 50 - 0 * 50 = 10000 > 0``.

    Args:
        points: ``(n, 2)`` points.
        start: First end point of the line.
        end: Second end point of the line.

    Returns:
        ``(n,)`` float64 cross products (pixels squared; only the sign is meaningful).

    """
    pts = as_points(points)
    dx, dy = end[0] - start[0], end[1] - start[1]
    return dx * (pts[:, 1] - start[1]) - dy * (pts[:, 0] - start[0])


def segment_crossings(
    p0: npt.ArrayLike, p1: npt.ArrayLike, start: tuple[float, float], end: tuple[float, float]
) -> tuple[BoolArray, FloatArray]:
    """Which moves ``p0[i] -> p1[i]`` cross the line SEGMENT ``start``-``end``, and where along the move.

    A move crosses when its two ends lie strictly on opposite sides of the infinite line and the
    intersection point lies within the segment's extent (its end points included). Moves that pass
    beyond either end of the segment do not cross it.

    Args:
        p0: ``(n, 2)`` previous foot points.
        p1: ``(n, 2)`` current foot points.
        start: First end point of the line.
        end: Second end point of the line.

    Returns:
        ``(crossed, u)``: ``(n,)`` mask, and ``(n,)`` fraction in ``(0, 1)`` of the way from ``p0`` to
        ``p1`` where the crossing happens (undefined where ``crossed`` is False), for interpolating the
        crossing time.

    """
    a, b = as_points(p0, "p0"), as_points(p1, "p1")
    s0, s1 = side_of_line(a, start, end), side_of_line(b, start, end)
    opposite = (s0 * s1) < 0
    seg = np.array(end, np.float64) - np.array(start, np.float64)
    move = b - a
    denom = move[:, 0] * seg[1] - move[:, 1] * seg[0]
    safe = np.where(opposite, denom, 1.0)
    rel = np.array(start, np.float64) - a
    # Solve a + u*move = start + v*seg for (u, v) by Cramer's rule.
    u = (rel[:, 0] * seg[1] - rel[:, 1] * seg[0]) / safe
    v = (rel[:, 0] * move[:, 1] - rel[:, 1] * move[:, 0]) / safe
    crossed = opposite & (v >= 0.0) & (v <= 1.0)
    return crossed, np.clip(u, 0.0, 1.0)
