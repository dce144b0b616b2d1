"""Where people stand: person-seconds on a grid of foot points, fading with a half-life."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rva.analytics.geometry import confirmed_foot_points
from rva.analytics.presence import StreamClock
from rva.config import HeatmapConfig
from rva.core.detections import Detections

#: Re-base the lazily decayed grid after this many half-lives, long before float64 could overflow.
_REBASE_HALF_LIVES = 64.0


@dataclass(frozen=True, slots=True)
class Hotspot:
    """A local maximum of the heat grid.

    Attributes:
        x: Centre of the cell in frame pixels.
        y: Centre of the cell in frame pixels.
        row: Grid row.
        col: Grid column.
        heat: Person-seconds (decayed) in the 3x3 cells around it.
        share: ``heat`` as a fraction of the whole grid's heat.

    """

    x: float
    y: float
    row: int
    col: int
    heat: float
    share: float


def _blur121(grid: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Blur with a separable ``[1, 2, 1] / 4`` kernel, zero padded: a cell spreads but keeps its peak."""
    p = np.pad(grid, 1)
    rows = (p[:-2, :] + 2.0 * p[1:-1, :] + p[2:, :]) * 0.25
    return (rows[:, :-2] + 2.0 * rows[:, 1:-1] + rows[:, 2:]) * 0.25


def _sum3x3(grid: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    p = np.pad(grid, 1)
    h, w = grid.shape
    return sum((p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)), np.zeros_like(grid))


class Heatmap:
    """Person-seconds at foot points on a grid of ``cell_px`` cells, halving every ``half_life_s``.

    Each frame adds, at each confirmed foot point's cell, the stream time since the previous frame
    (capped at ``max_gap_s`` so a stalled stream does not paint one frame for minutes), decayed over
    that interval exactly. Weighting by time, not by frame, makes the grid the same at 5 fps and at
    30 fps: someone standing still for ``T`` seconds leaves ``T`` person-seconds, less the decay.
    Decay is applied lazily: the grid is stored relative to a reference time and scaled when read,
    so an update costs O(people), never O(grid).

    Args:
        cfg: Cell size, half-life and how many hotspots to report.
        frame_size: ``(width, height)`` of the frames in pixels.
        max_gap_s: Longest frame gap credited to the people in a frame.

    """

    def __init__(self, cfg: HeatmapConfig, frame_size: tuple[int, int], max_gap_s: float = 2.0) -> None:
        w, h = frame_size
        if w <= 0 or h <= 0:
            raise ValueError(f"heatmap frame_size: expected positive (width, height), got {frame_size}")
        if max_gap_s <= 0:
            raise ValueError(f"heatmap max_gap_s: expected > 0, got {max_gap_s}")
        self.cfg = cfg
        self.frame_size = (int(w), int(h))
        self.max_gap_s = max_gap_s
        self.shape = (math.ceil(h / cfg.cell_px), math.ceil(w / cfg.cell_px))
        self._acc = np.zeros(self.shape, np.float64)  # heat at time _ref_ts
        self._ref_ts: float | None = None
        self._clock = StreamClock("heatmap")

    def _decay(self, from_ts: float, to_ts: float) -> float:
        return float(2.0 ** (-(to_ts - from_ts) / self.cfg.half_life_s))

    def update(self, tracked: Detections, ts: float) -> None:
        """Add one frame's confirmed foot points, weighted by the time since the previous frame.

        Args:
            tracked: Confirmed tracks seen this frame (rows without a track id are ignored).
            ts: Stream time of the frame, in seconds; must not go backwards.

        """
        previous = self._clock.advance(ts)
        if self._ref_ts is None:
            self._ref_ts = ts
        if ts - self._ref_ts > _REBASE_HALF_LIVES * self.cfg.half_life_s:
            self._acc *= self._decay(self._ref_ts, ts)
            self._ref_ts = ts
        dt = 0.0 if previous is None else min(ts - previous, self.max_gap_s)
        _, points = confirmed_foot_points(tracked)
        if dt <= 0 or points.shape[0] == 0:
            return
        rows = np.clip((points[:, 1] // self.cfg.cell_px).astype(np.int64), 0, self.shape[0] - 1)
        cols = np.clip((points[:, 0] // self.cfg.cell_px).astype(np.int64), 0, self.shape[1] - 1)
        # Person-seconds over (previous, ts], each decayed from its own instant to ts: the exact integral,
        # so the grid does not depend on how finely the frames sample it (for small dt it is just dt).
        ln2_per_s = math.log(2.0) / self.cfg.half_life_s
        weight = -math.expm1(-dt * ln2_per_s) / ln2_per_s
        # Store as heat at _ref_ts: growing the weight instead of shrinking the grid is the lazy decay.
        np.add.at(self._acc, (rows, cols), weight / self._decay(self._ref_ts, ts))

    def grid(self, ts: float | None = None) -> npt.NDArray[np.float32]:
        """Heat per cell at ``ts`` (default: the last update), in decayed person-seconds.

        Returns:
            ``(rows, cols)`` float32 array; row ``r``, column ``c`` covers pixels
            ``[c * cell_px, (c + 1) * cell_px) x [r * cell_px, (r + 1) * cell_px)``.

        """
        at = self._clock.last_ts if ts is None else ts
        if self._ref_ts is None or at is None:
            return np.zeros(self.shape, np.float32)
        return (self._acc * self._decay(self._ref_ts, at)).astype(np.float32)

    def total(self, ts: float | None = None) -> float:
        """All heat on the grid at ``ts`` (default: the last update), in decayed person-seconds."""
        return float(self.grid(ts).sum(dtype=np.float64))

    def hotspots(self, ts: float | None = None, count: int | None = None) -> list[Hotspot]:
        """Find the hottest places, strongest first.

        The grid is blurred with a small ``[1, 2, 1]`` kernel so one person straddling two cells makes
        one hotspot; then the hottest cell is taken and every cell within two of it suppressed, so the
        3x3 neighbourhoods that carry the reported heat never overlap and the shares sum to at most 1.

        Args:
            ts: Evaluate at this stream time (default: the last update).
            count: How many at most (default: ``cfg.hotspots``).

        Returns:
            Up to ``count`` :class:`Hotspot` objects; empty while the grid is cold.

        """
        n = self.cfg.hotspots if count is None else count
        heat = self.grid(ts).astype(np.float64)
        total = float(heat.sum())
        if n <= 0 or total <= 0:
            return []
        score = _blur121(heat)
        around = _sum3x3(heat)
        cell, (w, h) = self.cfg.cell_px, self.frame_size
        out: list[Hotspot] = []
        while len(out) < n:
            r, c = np.unravel_index(int(np.argmax(score)), score.shape)
            if score[r, c] <= 0:
                break
            out.append(Hotspot(
                x=min((c + 0.5) * cell, float(w)), y=min((r + 0.5) * cell, float(h)),
                row=int(r), col=int(c), heat=float(around[r, c]), share=float(around[r, c]) / total,
            ))
            score[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3] = 0.0
        return out
