"""The batched box Kalman filter against a textbook 8x8 filter and against constant-velocity motion."""

from __future__ import annotations

import numpy as np
import pytest

from rva.tracking.kalman import PVV, PXV, PXX, BoxKalmanFilter, xyxy_to_xywh

KF = BoxKalmanFilter()
SP, SV, FPS = 1.0 / 20.0, 1.0 / 160.0, 30.0  # ByteTrack's weights at the reference frame rate


class ReferenceFilter:
    """One track, full 8x8 matrices, written the textbook way: x' = F x, P' = F P F^T + Q, ..."""

    def __init__(self, z: np.ndarray) -> None:
        s = np.maximum(z[[2, 3, 2, 3]], 1.0)
        self.x = np.concatenate([z, np.zeros(4)])
        self.P = np.diag(np.concatenate([(2 * SP * s) ** 2, (10 * SV * FPS * s) ** 2]))

    def predict(self, dt: float) -> None:
        s = np.maximum(self.x[[2, 3, 2, 3]], 1.0)
        F = np.eye(8)
        F[:4, 4:] = dt * np.eye(4)
        Q = np.diag(np.concatenate([(SP * s) ** 2, (SV * FPS * s) ** 2])) * (dt * FPS)
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + Q

    def update(self, z: np.ndarray) -> None:
        H = np.hstack([np.eye(4), np.zeros((4, 4))])
        R = np.diag((SP * np.maximum(self.x[[2, 3, 2, 3]], 1.0)) ** 2)
        S = H @ self.P @ H.T + R
        K = self.P @ H.T @ np.linalg.inv(S)
        self.x = self.x + K @ (z - H @ self.x)
        self.P = (np.eye(8) - K @ H) @ self.P


def _blocks_to_matrix(col: np.ndarray) -> np.ndarray:
    P = np.zeros((8, 8))
    for i in range(4):
        P[i, i], P[i, 4 + i], P[4 + i, i], P[4 + i, 4 + i] = col[PXX][i], col[PXV][i], col[PXV][i], col[PVV][i]
    return P


@pytest.mark.parametrize(
    ("dts", "seed"),
    [
        ([0.1] * 8, 0),  # 10 fps
        ([1 / 30] * 12, 1),  # ByteTrack's own rate
        ([0.04, 0.5, 0.04, 0.04, 2.0, 0.04], 2),  # dropped frames and a stream gap
        ([0.2, 0.0, 0.2, 0.2], 3),  # a repeated timestamp
    ],
)
def test_batched_filter_equals_textbook_filter(dts: list[float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    first = np.array([[300.0, 200.0, 50.0, 120.0], [40.0, 60.0, 12.0, 30.0], [900.0, 500.0, 80.0, 200.0]])
    state = KF.initiate(first)
    refs = [ReferenceFilter(z) for z in first]
    for step, dt in enumerate(dts):
        KF.predict(state, dt)
        for ref in refs:
            if dt > 0:
                ref.predict(dt)
        rows = np.array([0, 2]) if step % 3 == 2 else np.array([2, 1, 0])  # not every track every frame
        z = first[rows] + rng.normal(0, 5, (len(rows), 4)) + np.array([40.0, -10.0, 0, 0]) * step * 0.1
        KF.update(state, rows, z)
        for row, meas in zip(rows, z, strict=True):
            refs[row].update(meas)
    for i, ref in enumerate(refs):
        np.testing.assert_allclose(state[:8, i], ref.x, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(_blocks_to_matrix(state[:, i]), ref.P, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("offset", "size"),
    [((10.0, 0.0, 0.0, 0.0), (50.0, 120.0)), ((-4.0, 8.0, 2.0, -6.0), (20.0, 40.0)), ((0.0, 0.0, 0.0, 0.0), (5, 5))],
)
def test_first_update_moves_four_fifths_of_the_way(offset: tuple[float, ...], size: tuple[float, float]) -> None:
    # A new track's position variance is (2 sigma)^2 and the measurement's sigma^2: gain = 4 / (4 + 1).
    z0 = np.array([[100.0, 100.0, *size]])
    state = KF.initiate(z0)
    KF.update(state, np.array([0]), z0 + np.array(offset))
    np.testing.assert_allclose(state[0:4, 0], z0[0] + 0.8 * np.array(offset))
    np.testing.assert_allclose(state[4:8, 0], 0.0)  # no position-velocity covariance yet
    w, h = size  # posterior variance: (1 - 4/5) of the prior (2 sigma)^2, i.e. 4/5 of the measurement's
    np.testing.assert_allclose(state[PXX, 0], 0.8 * (SP * np.array([w, h, w, h])) ** 2)


@pytest.mark.parametrize(
    ("velocity", "fps", "horizon_s"),
    [((60.0, -20.0), 10.0, 1.0), ((120.0, 0.0), 30.0, 0.5), ((30.0, 15.0), 5.0, 2.0), ((200.0, 50.0), 25.0, 3.0)],
)
def test_constant_velocity_target_is_predicted_over_dt(
    velocity: tuple[float, float], fps: float, horizon_s: float
) -> None:
    v = np.array(velocity)
    z0 = np.array([300.0, 200.0, 50.0, 120.0])
    state = KF.initiate(z0[None])
    n = int(3 * fps)
    for k in range(1, n):
        KF.predict(state, 1 / fps)
        z = z0.copy()
        z[:2] += v * k / fps
        KF.update(state, np.array([0]), z[None])
    np.testing.assert_allclose(state[4:6, 0], v, atol=0.01)  # pixels per second, whatever the fps
    KF.predict(state, horizon_s)
    np.testing.assert_allclose(state[0:2, 0], z0[:2] + v * ((n - 1) / fps + horizon_s), atol=0.01)


def test_zero_dt_is_a_no_op_and_uncertainty_grows_with_time() -> None:
    state = KF.initiate([[100.0, 100.0, 40.0, 90.0]])
    before = state.copy()
    KF.predict(state, 0.0)
    np.testing.assert_array_equal(state, before)
    short, long_ = state.copy(), state.copy()
    KF.predict(short, 0.1)
    KF.predict(long_, 1.0)
    assert np.all(long_[PXX] > short[PXX]) and np.all(short[PXX] > before[PXX])


@pytest.mark.parametrize(
    ("xyxy", "xywh"),
    [([[0, 0, 10, 20]], [[5, 10, 10, 20]]), ([[10, 10, 11, 13], [2, 4, 6, 8]], [[10.5, 11.5, 1, 3], [4, 6, 4, 4]])],
)
def test_xyxy_to_xywh(xyxy: list[list[float]], xywh: list[list[float]]) -> None:
    np.testing.assert_allclose(xyxy_to_xywh(xyxy), xywh)
    np.testing.assert_allclose(KF.boxes(KF.initiate(xywh)), xyxy)
