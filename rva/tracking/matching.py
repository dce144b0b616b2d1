"""Box overlap and gated one-to-one assignment, the two primitives of IoU tracking."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

FloatMatrix = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

_EMPTY = np.empty(0, np.intp)


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatMatrix:
    """Intersection over union of every box in ``a`` with every box in ``b``.

    Args:
        a: ``(n, 4)`` boxes ``(x1, y1, x2, y2)``.
        b: ``(m, 4)`` boxes ``(x1, y1, x2, y2)``.

    Returns:
        ``(n, m)`` IoU in ``[0, 1]``; 0 where either box has no area.

    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), np.float64)
    ax1, ay1, ax2, ay2 = a.T
    bx1, by1, bx2, by2 = b.T
    area_a = np.maximum(ax2 - ax1, 0.0) * np.maximum(ay2 - ay1, 0.0)
    area_b = np.maximum(bx2 - bx1, 0.0) * np.maximum(by2 - by1, 0.0)
    with np.errstate(invalid="ignore"):  # 0 / 0 where both boxes are empty: IoU 0
        return np.nan_to_num(iou_of_corners(a.T, area_a, b.T, area_b), copy=False)


def iou_of_corners(
    a: FloatMatrix, area_a: npt.NDArray[np.float64], b: FloatMatrix, area_b: npt.NDArray[np.float64]
) -> FloatMatrix:
    """:func:`iou_matrix` for boxes given as corner rows with their areas (the tracker's hot path).

    Args:
        a: ``(4, n)`` rows ``x1, y1, x2, y2``.
        area_a: ``(n,)`` areas of ``a``, ``> 0`` (else a pair of empty boxes divides by zero).
        b: ``(4, m)`` rows ``x1, y1, x2, y2``.
        area_b: ``(m,)`` areas of ``b``, ``>= 0``.

    Returns:
        ``(n, m)`` IoU.

    """
    # Outer products of corner rows: a dozen NumPy calls whatever the sizes.
    inter: FloatMatrix = np.minimum.outer(a[2], b[2])
    inter -= np.maximum.outer(a[0], b[0])
    np.maximum(inter, 0.0, out=inter)
    ih = np.minimum.outer(a[3], b[3])
    ih -= np.maximum.outer(a[1], b[1])
    np.maximum(ih, 0.0, out=ih)
    inter *= ih
    union = np.add.outer(area_a, area_b)
    union -= inter
    inter /= union
    return inter


def assign(cost: FloatMatrix, valid: npt.NDArray[np.bool_]) -> tuple[IndexArray, IndexArray]:
    """One-to-one pairs of least total cost among the allowed pairs.

    Costs are in ``[0, 1]`` (e.g. ``1 - IoU``) and leaving a row or a column unmatched costs 1,
    so a match is made whenever it is allowed and the total ``sum(1 - cost)`` of the matches is
    as large as possible: ByteTrack's ``lapjv(cost, extend_cost=True, cost_limit=1)`` after
    gating. scipy's ``linear_sum_assignment`` solves it: at tracking sizes (up to ~60 x 60) it
    measured 3-6x faster here than ``lap.lapjv`` with ``extend_cost``.

    Args:
        cost: ``(n, m)`` costs in ``[0, 1]``, lower is better.
        valid: ``(n, m)`` pairs allowed to match (the gate).

    Returns:
        ``(rows, cols)``: matched row and column indices, ordered by row.

    """
    if not valid.any():
        return _EMPTY, _EMPTY
    # A gated-out pair costs what leaving both unmatched does, so it never beats a real match.
    rows, cols = linear_sum_assignment(np.where(valid, cost, 1.0))
    keep = valid[rows, cols]
    return rows[keep], cols[keep]
