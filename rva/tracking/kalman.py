"""A time-aware constant-velocity Kalman filter for boxes, batched over every track at once.

The state of one track is ``(cx, cy, w, h)`` and their velocities in pixels **per second**, as in
BoT-SORT's ``xywh`` filter, so :meth:`BoxKalmanFilter.predict` takes the seconds elapsed since the
previous frame: sampled frames, dropped frames and stream gaps all move a box by the right amount.

Process and measurement noise follow ByteTrack's weights (``1/20`` of the box size for positions,
``1/160`` for velocities) per frame at :data:`REFERENCE_FPS`; for another step the process variance
scales linearly with elapsed time (a Wiener process), so at 30 fps the filter equals ByteTrack's.

Because every noise matrix is diagonal and each coordinate only couples to its own velocity, the
8x8 covariance is four independent 2x2 blocks. The filter keeps just those blocks and runs on
element-wise NumPy: no per-track loops, no matrix inverse. One row of the state array holds

``[cx, cy, w, h, vcx, vcy, vw, vh, Pxx(4), Pxv(4), Pvv(4)]``

where ``Pxx``/``Pxv``/``Pvv`` are the position variance, position-velocity covariance and velocity
variance of each of the four coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

StateArray = npt.NDArray[np.float64]

#: Frame rate ByteTrack's per-frame noise weights were tuned at.
REFERENCE_FPS = 30.0
#: Width of one row of the state array.
STATE_WIDTH = 20

POS = slice(0, 4)
VEL = slice(4, 8)
PXX = slice(8, 12)
PXV = slice(12, 16)
PVV = slice(16, 20)
#: Columns of the size velocities (``vw``, ``vh``).
SIZE_VEL = slice(6, 8)

_MIN_SIZE = 1.0  # px; keeps noise and boxes positive when a coasting box would shrink to nothing


def xyxy_to_xywh(xyxy: npt.ArrayLike) -> StateArray:
    """``(n, 4)`` corner boxes to centre-size boxes ``(cx, cy, w, h)``."""
    b = np.asarray(xyxy, np.float64)
    out = np.empty_like(b)
    out[:, 2:] = b[:, 2:] - b[:, :2]
    out[:, :2] = b[:, :2] + 0.5 * out[:, 2:]
    return out


def xywh_to_xyxy(xywh: npt.ArrayLike) -> StateArray:
    """``(n, 4)`` centre-size boxes to corner boxes ``(x1, y1, x2, y2)``."""
    b = np.asarray(xywh, np.float64)
    half = 0.5 * np.maximum(b[:, 2:], _MIN_SIZE)
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


@dataclass(frozen=True, slots=True)
class BoxKalmanFilter:
    """Noise model and batched operations of the box filter.

    Every method works on a ``(n, 20)`` state array (one row per track, layout in the module
    docstring); ``predict`` and ``update`` change it in place.

    Attributes:
        std_weight_position: Position noise as a fraction of box size, per reference frame.
        std_weight_velocity: Velocity noise as a fraction of box size, per reference frame.
        reference_fps: Frame rate the per-frame weights refer to.
    """

    std_weight_position: float = 1.0 / 20.0
    std_weight_velocity: float = 1.0 / 160.0
    reference_fps: float = REFERENCE_FPS

    def initiate(self, xywh: npt.ArrayLike) -> StateArray:
        """New filter rows for first measurements, at rest with ByteTrack's initial uncertainty.

        Args:
            xywh: ``(n, 4)`` measured boxes ``(cx, cy, w, h)``.

        Returns:
            ``(n, 20)`` state rows.
        """
        z = np.asarray(xywh, np.float64).reshape(-1, 4)
        state = np.zeros((z.shape[0], STATE_WIDTH), np.float64)
        state[:, POS] = z
        size = np.maximum(z[:, (2, 3, 2, 3)], _MIN_SIZE)
        state[:, PXX] = (2.0 * self.std_weight_position * size) ** 2
        state[:, PVV] = (10.0 * self.std_weight_velocity * self.reference_fps * size) ** 2
        return state

    def predict(self, state: StateArray, dt: float) -> None:
        """Advance every row by ``dt`` seconds, in place.

        Args:
            state: ``(n, 20)`` state rows.
            dt: Seconds since the last predict; ``0`` leaves the state unchanged.
        """
        if dt <= 0.0 or state.shape[0] == 0:
            return
        size = np.maximum(state[:, (2, 3, 2, 3)], _MIN_SIZE)
        size *= size  # squared box size: the noise variances scale with it
        steps = dt * self.reference_fps  # reference frames elapsed
        q_pos = (self.std_weight_position**2 * steps) * size
        q_vel = ((self.std_weight_velocity * self.reference_fps) ** 2 * steps) * size
        pxv = state[:, PXV]
        pvv = state[:, PVV]
        state[:, POS] += dt * state[:, VEL]
        # P' = F P F^T + Q per 2x2 block; Pxx first, while Pxv and Pvv still hold the old values.
        state[:, PXX] += dt * (2.0 * pxv + dt * pvv) + q_pos
        pxv += dt * pvv
        pvv += q_vel

    def update(self, state: StateArray, rows: npt.NDArray[np.intp], xywh: npt.ArrayLike) -> None:
        """Correct ``state[rows]`` with measured boxes, in place.

        Args:
            state: ``(n, 20)`` state rows.
            rows: ``(k,)`` indices of the rows measured.
            xywh: ``(k, 4)`` measured boxes ``(cx, cy, w, h)``, one per row.
        """
        if len(rows) == 0:
            return
        s = state[rows]
        z = np.asarray(xywh, np.float64)
        size = np.maximum(s[:, (2, 3, 2, 3)], _MIN_SIZE)
        r = (self.std_weight_position * size) ** 2
        pxx = s[:, PXX]
        pxv = s[:, PXV]
        inv_innovation = 1.0 / (pxx + r)
        gain_pos = pxx * inv_innovation
        gain_vel = pxv * inv_innovation
        residual = z - s[:, POS]
        s[:, POS] += gain_pos * residual
        s[:, VEL] += gain_vel * residual
        s[:, PVV] -= gain_vel * pxv
        keep = 1.0 - gain_pos
        s[:, PXV] *= keep
        s[:, PXX] *= keep
        state[rows] = s

    @staticmethod
    def boxes(state: StateArray) -> StateArray:
        """``(n, 4)`` current box estimates as corners ``(x1, y1, x2, y2)``."""
        return xywh_to_xyxy(state[:, POS])
