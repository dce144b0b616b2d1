"""A time-aware constant-velocity Kalman filter for boxes, batched over every track at once.

The state of one track is ``(cx, cy, w, h)`` and their velocities in pixels **per second**, as in
BoT-SORT's ``xywh`` filter, so :meth:`BoxKalmanFilter.predict` takes the seconds elapsed since the
previous frame: sampled frames, dropped frames and stream gaps all move a box by the right amount.

Process and measurement noise follow ByteTrack's weights (``1/20`` of the box size for positions,
``1/160`` for velocities) per frame at :data:`REFERENCE_FPS`; for another step the process variance
scales linearly with elapsed time (a Wiener process), so at 30 fps the filter equals ByteTrack's.
As in BoT-SORT, ``cx`` and ``w`` noise scale with the box width, ``cy`` and ``h`` noise with its
height.

Because every noise matrix is diagonal and each coordinate only couples to its own velocity, the
8x8 covariance is four independent 2x2 blocks. The filter keeps just those blocks and runs on
element-wise NumPy: no per-track loops, no matrix inverse. The state of ``n`` tracks is one
``(20, n)`` array, a column per track (so each quantity is a contiguous row for NumPy), with rows

``[cx, cy, w, h, vcx, vcy, vw, vh, Pxx(4), Pxv(4), Pvv(4)]``

where ``Pxx``/``Pxv``/``Pvv`` are the position variance, position-velocity covariance and velocity
variance of each of the four coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

StateArray = npt.NDArray[np.float64]

#: Frame rate ByteTrack's per-frame noise weights were tuned at.
REFERENCE_FPS = 30.0
#: Rows of the state array.
STATE_ROWS = 20

POS = slice(0, 4)
VEL = slice(4, 8)
PXX = slice(8, 12)
PXV = slice(12, 16)
PVV = slice(16, 20)
#: Rows of the size velocities (``vw``, ``vh``).
SIZE_VEL = slice(6, 8)

#: For each of (cx, cy, w, h), the box dimension its noise scales with (w, h, w, h).
_SIZE_OF = np.array([2, 3, 2, 3])
_MIN_SIZE = 1.0  # px; keeps noise and boxes positive when a coasting box would shrink to nothing


def xyxy_to_xywh(xyxy: npt.ArrayLike) -> StateArray:
    """Convert ``(n, 4)`` corner boxes to centre-size boxes ``(cx, cy, w, h)``."""
    b = np.asarray(xyxy, np.float64)
    out = np.empty_like(b)
    out[:, 2:] = b[:, 2:] - b[:, :2]
    out[:, :2] = b[:, :2] + 0.5 * out[:, 2:]
    return out


@dataclass(frozen=True, slots=True)
class BoxKalmanFilter:
    """Noise model and batched operations of the box filter.

    Every method works on a ``(20, n)`` state array (one column per track, rows in the module
    docstring); ``predict`` and ``update`` change it in place.

    Attributes:
        std_weight_position: Position noise as a fraction of box size, per reference frame.
        std_weight_velocity: Velocity noise as a fraction of box size, per reference frame.
        reference_fps: Frame rate the per-frame weights refer to.

    """

    std_weight_position: float = 1.0 / 20.0
    std_weight_velocity: float = 1.0 / 160.0
    reference_fps: float = REFERENCE_FPS
    _noise_rates: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Process variance per reference frame per squared pixel of box size: position, velocity.
        rates = [self.std_weight_position**2, (self.std_weight_velocity * self.reference_fps) ** 2]
        object.__setattr__(self, "_noise_rates", np.array(rates).reshape(2, 1, 1))

    def initiate(self, xywh: npt.ArrayLike) -> StateArray:
        """Start filters at rest from first measurements, with ByteTrack's initial uncertainty.

        Args:
            xywh: ``(n, 4)`` measured boxes ``(cx, cy, w, h)``.

        Returns:
            ``(20, n)`` state.

        """
        z = np.asarray(xywh, np.float64).reshape(-1, 4).T
        state = np.zeros((STATE_ROWS, z.shape[1]), np.float64)
        state[POS] = z
        size = np.maximum(z[_SIZE_OF], _MIN_SIZE)
        state[PXX] = (2.0 * self.std_weight_position * size) ** 2
        state[PVV] = (10.0 * self.std_weight_velocity * self.reference_fps * size) ** 2
        return state

    def predict(self, state: StateArray, dt: float) -> None:
        """Advance every track by ``dt`` seconds, in place.

        Args:
            state: ``(20, n)`` state.
            dt: Seconds since the last predict; ``0`` leaves the state unchanged.

        """
        n = state.shape[1]
        if dt <= 0.0 or n == 0:
            return
        size = state[_SIZE_OF]  # (a copy) noise variances scale with the squared box size, as it was
        np.maximum(size, _MIN_SIZE, out=size)
        size *= size
        # The 5 row blocks x, v, Pxx, Pxv, Pvv, each (4, n); strided views pair them up.
        block = state.reshape(5, 4, n)
        block[0:4:2] += dt * block[1:4:2]  # x += dt v;  Pxx += dt Pxv
        block[3] += dt * block[4]  # Pxv += dt Pvv
        block[2] += dt * block[3]  # Pxx += dt Pxv': in all, Pxx + 2 dt Pxv + dt^2 Pvv
        block[2:5:2] += (self._noise_rates * (dt * self.reference_fps)) * size  # Pxx += Qx, Pvv += Qv

    def update(self, state: StateArray, tracks: npt.NDArray[np.intp], xywh: npt.ArrayLike) -> None:
        """Correct the columns ``tracks`` of ``state`` with measured boxes, in place.

        Args:
            state: ``(20, n)`` state.
            tracks: ``(k,)`` column indices of the tracks measured.
            xywh: ``(k, 4)`` measured boxes ``(cx, cy, w, h)``, one per track.

        """
        k = len(tracks)
        if k == 0:
            return
        s = state[:, tracks]
        block = s.reshape(5, 4, k)
        innovation = s[_SIZE_OF]
        np.maximum(innovation, _MIN_SIZE, out=innovation)
        innovation *= innovation
        innovation *= self.std_weight_position**2  # measurement noise R
        innovation += block[2]  # Pxx + R
        gain = block[2:4] / innovation  # position and velocity gains Kx, Kv: [Pxx; Pxv] / (Pxx + R)
        residual = np.asarray(xywh, np.float64).T - block[0]
        block[0:2] += gain * residual
        # P' = (I - K H) P per block: Pvv -= Kv Pxv first, then [Pxx; Pxv] *= 1 - Kx.
        block[4] -= gain[1] * block[3]
        block[2:4] *= 1.0 - gain[0]
        state[:, tracks] = s

    @staticmethod
    def corners(state: StateArray) -> StateArray:
        """Return the current box estimates as a ``(4, n)`` array of rows ``x1, y1, x2, y2``."""
        half = np.maximum(state[2:4], _MIN_SIZE)
        half *= 0.5
        return np.concatenate([state[0:2] - half, state[0:2] + half])

    @staticmethod
    def boxes(state: StateArray) -> StateArray:
        """Return the current box estimates as ``(n, 4)`` corners ``x1, y1, x2, y2``."""
        return BoxKalmanFilter.corners(state).T
