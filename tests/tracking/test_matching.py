"""IoU against hand-computed values, and the gated assignment against hand-solved tables."""

from __future__ import annotations

import numpy as np
import pytest

from rva.tracking.matching import assign, iou_matrix

SQUARE = [0.0, 0.0, 10.0, 10.0]


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        (SQUARE, 1.0),  # identical
        ([5.0, 0.0, 15.0, 10.0], 50 / 150),  # half shifted: 50 shared of 150
        ([0.0, 0.0, 5.0, 5.0], 25 / 100),  # contained quarter
        ([10.0, 0.0, 20.0, 10.0], 0.0),  # touching edges
        ([20.0, 20.0, 30.0, 30.0], 0.0),  # apart
        ([5.0, 5.0, 15.0, 15.0], 25 / 175),  # corner overlap
        ([-5.0, 2.0, 15.0, 8.0], 60 / 160),  # a wide bar across: 10 x 6 shared
        ([3.0, 3.0, 3.0, 8.0], 0.0),  # zero width
    ],
)
def test_iou_matches_hand_values(other: list[float], expected: float) -> None:
    assert iou_matrix([SQUARE], [other])[0, 0] == pytest.approx(expected)
    assert iou_matrix([other], [SQUARE])[0, 0] == pytest.approx(expected)  # symmetric


def test_iou_matrix_shape_and_empty_boxes() -> None:
    a = [[0, 0, 10, 10], [0, 0, 0, 0]]
    b = [[5, 0, 15, 10], [0, 0, 0, 0], [0, 0, 5, 5]]
    np.testing.assert_allclose(iou_matrix(a, b), [[1 / 3, 0.0, 0.25], [0.0, 0.0, 0.0]])
    assert iou_matrix(np.empty((0, 4)), b).shape == (0, 3)
    assert iou_matrix(a, np.empty((0, 4))).shape == (2, 0)


@pytest.mark.parametrize(
    ("similarity", "gate", "pairs"),
    [
        # Greedy would take (0, 0) = 0.9 and leave row 1 with nothing allowed; the optimum matches both.
        ([[0.9, 0.8], [0.85, 0.1]], 0.2, {(0, 1), (1, 0)}),
        # Below the gate nothing matches, even when nothing else is on offer.
        ([[0.15, 0.1], [0.05, 0.19]], 0.2, set()),
        # More rows than columns: the best row wins, the other stays free.
        ([[0.3], [0.7], [0.5]], 0.2, {(1, 0)}),
        # More columns than rows.
        ([[0.6, 0.0, 0.7]], 0.5, {(0, 2)}),
        # One allowed pair per row and column: all of them.
        ([[0.9, 0.0, 0.0], [0.0, 0.0, 0.4], [0.0, 0.6, 0.0]], 0.3, {(0, 0), (1, 2), (2, 1)}),
        # Sum of similarities decides: 0.5 + 0.5 beats 0.9 + nothing.
        ([[0.9, 0.5], [0.5, 0.0]], 0.3, {(0, 1), (1, 0)}),
    ],
)
def test_assign_maximises_total_similarity_within_the_gate(
    similarity: list[list[float]], gate: float, pairs: set[tuple[int, int]]
) -> None:
    sim = np.asarray(similarity)
    rows, cols = assign(1.0 - sim, sim >= gate)
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == pairs
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)


def test_assign_with_nothing_allowed_or_empty() -> None:
    rows, cols = assign(np.zeros((3, 2)), np.zeros((3, 2), bool))
    assert rows.size == cols.size == 0
    rows, cols = assign(np.zeros((0, 2)), np.zeros((0, 2), bool))
    assert rows.size == cols.size == 0
