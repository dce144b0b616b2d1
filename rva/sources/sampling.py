"""Pick frames to analyse by presentation time, so the analysis rate is the same at any camera rate."""

from __future__ import annotations

import math


class FrameSampler:
    """Decides, frame by frame, which frames to keep so that about ``target_fps`` survive per second.

    Kept frames are the first at or after each point of a fixed grid ``origin + k / target_fps``; the
    grid is computed from an integer ``k``, never by adding periods up, so the rate does not drift
    over hours. A forward jump in PTS (an outage) moves ``k`` past the gap without a burst of
    catch-up frames; a backward jump (a restarted clock) starts a new grid at that frame. When the
    source is slower than the target, every frame is kept.

    Pure and cheap: no I/O, no clocks of its own.

    Example:
        >>> sampler = FrameSampler(5.0)
        >>> [sampler.keep(i / 10) for i in range(6)]
        [True, False, True, False, True, False]

    """

    def __init__(self, target_fps: float) -> None:
        """Create a sampler.

        Args:
            target_fps: Frames per second to keep; must be positive.

        Raises:
            ValueError: ``target_fps`` is not a positive finite number.

        """
        if not (math.isfinite(target_fps) and target_fps > 0):
            raise ValueError(f"target_fps must be a positive number, got {target_fps!r}")
        self.target_fps = float(target_fps)
        self._period = 1.0 / self.target_fps
        # Timestamps are floats derived from rationals (0.1 * 3 != 0.3): a frame within this much of
        # its grid point counts as on it.
        self._tolerance = 1e-6 + 1e-3 * self._period
        self._origin: float | None = None
        self._k = 0
        self._last_pts = -math.inf

    def keep(self, pts: float) -> bool:
        """Whether the frame at ``pts`` (seconds) should be analysed.

        Args:
            pts: Presentation time of the frame, in seconds.

        Returns:
            True for the first frame at or after the next grid point.

        """
        if self._origin is None or pts < self._last_pts:
            self._origin, self._k = pts, 0
        self._last_pts = pts
        due = self._origin + self._k * self._period
        if pts + self._tolerance < due:
            return False
        # Next grid point strictly after this frame: skips the whole gap after a forward jump.
        self._k = max(self._k + 1, math.floor((pts + self._tolerance - self._origin) / self._period) + 1)
        return True

    def reset(self) -> None:
        """Forget the grid; the next frame is kept and starts a new one."""
        self._origin = None
        self._k = 0
        self._last_pts = -math.inf
