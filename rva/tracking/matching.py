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
    # Outer products of the corner rows: a dozen NumPy calls whatever the sizes.
    ax1, ay1, ax2, ay2 = a.T
    bx1, by1, bx2, by2 = b.T
    inter = np.minimum.outer(ax2, bx2)
    inter -= np.maximum.outer(ax1, bx1)
    np.maximum(inter, 0.0, out=inter)
    ih = np.minimum.outer(ay2, by2)
    ih -= np.maximum.outer(ay1, by1)
    np.maximum(ih, 0.0, out=ih)
    inter *= ih
    area_a = np.maximum(ax2 - ax1, 0.0) * np.maximum(ay2 - ay1, 0.0)
    area_b = np.maximum(bx2 - bx1, 0.0) * np.maximum(by2 - by1, 0.0)
    union = np.add.outer(area_a, area_b)
    union -= inter
    return np.divide(inter, union, out=inter, where=union > 0.0)


def assign(similarity: FloatMatrix, valid: npt.NDArray[np.bool_]) -> tuple[IndexArray, IndexArray]:
    """One-to-one pairs that maximise the summed similarity over allowed pairs.

    A pair outside ``valid`` is never returned; leaving a row or column unmatched costs nothing,
    so this equals ByteTrack's ``lapjv(1 - sim, extend_cost=True, cost_limit=1)`` after gating.
    scipy's ``linear_sum_assignment`` is used: at tracking sizes (up to ~60 x 60) it measured 3-6x
    faster than ``lap.lapjv`` with ``extend_cost`` on this machine.

    Args:
        similarity: ``(n, m)`` scores, higher is better, in ``[0, 1]``.
        valid: ``(n, m)`` pairs allowed to match (the gate).

    Returns:
        ``(rows, cols)``: matched row and column indices, ordered by row.

    """
    if not valid.any():
        return _EMPTY, _EMPTY
    # A gated-out pair costs what leaving both unmatched does, so it never beats a real match.
    cost = np.where(valid, 1.0 - similarity, 1.0)
    rows, cols = linear_sum_assignment(cost)
    keep = valid[rows, cols]
    return rows[keep], cols[keep]
